//! A function whose model cannot be loaded fails its init with one clear line naming the
//! URI and the reason, instead of failing every request.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::*;

/// The function's log after it exits on its own.
fn run_with_model_uri(uri: &str) -> String {
    // A request waits in the queue: a function that served despite a failed init would
    // fetch and answer it.
    let waiting = soak::event("GET", "/health", "application/json", b"", false);
    let (port, rx) = runtime_api::start(vec![waiting]);
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(bin("classify"));
    cmd.env("MODEL_URI", uri).envs(runtime_api::lambda_env(port)).envs([
        ("AWS_ACCESS_KEY_ID", String::from("x")),
        ("AWS_SECRET_ACCESS_KEY", "x".into()),
        ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9".into()),
        ("AWS_MAX_ATTEMPTS", "1".into()),
    ]);
    let mut service = Service::spawn("classify", cmd, work.path());
    let start = Instant::now();
    while service.is_running() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !service.is_running(),
        "init should fail and exit:\n{}",
        service.log_text()
    );
    assert!(
        rx.try_recv().is_err(),
        "the queued invocation was answered:\n{}",
        service.log_text()
    );
    service.log_text()
}

#[test]
#[ignore = "needs release binaries; run by `make test`"]
fn missing_corrupt_or_unreachable_models_fail_init_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.onnx");
    std::fs::write(&corrupt, b"\x08\x07garbage").unwrap();
    let cases = [
        (format!("file://{}/missing.onnx", dir.path().display()), "No such file"),
        (format!("file://{}", corrupt.display()), "not a valid ONNX model"),
        (
            "s3://bucket/models/latest.json".to_string(),
            "s3://bucket/models/latest.json",
        ),
        ("http://example.com/m.onnx".to_string(), "neither s3://"),
    ];
    for (uri, reason) in cases {
        let log = run_with_model_uri(&uri);
        let line = log
            .lines()
            .find(|l| l.contains("init failed"))
            .unwrap_or_else(|| panic!("no init line for {uri}:\n{log}"));
        assert!(line.contains(reason), "{uri}: {line}");
        assert_eq!(log.matches("init failed").count(), 1, "{log}");
        assert!(!log.contains("panicked"), "{log}");
    }
}

/// The function's S3 client over TLS, as in Lambda: a real S3 server (moto) behind a
/// certificate from a test CA. Trusting that CA (`SSL_CERT_FILE`, which the client's
/// system-root loader reads), the model loads from `s3://` and `/health` names it; trusting
/// only the system roots, init fails on the certificate instead of fetching anything.
#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn the_model_is_fetched_over_tls_and_an_untrusted_certificate_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let helper = root().join("tests/fixtures/tls_s3.py");
    let (ok, text) = run(Command::new(venv_tool("python"))
        .arg(&helper)
        .arg("cert")
        .arg(work.path()));
    assert!(ok, "certificate: {text}");
    let (ca, cert, key) = (
        work.path().join("ca.pem"),
        work.path().join("cert.pem"),
        work.path().join("key.pem"),
    );
    let port = free_port();
    let mut moto = Command::new(venv_tool("moto_server"));
    moto.args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .arg("-c")
        .arg(&cert)
        .arg("-k")
        .arg(&key);
    let mut server = Service::spawn("moto_server_tls", moto, work.path());
    server.wait_until(Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let endpoint = format!("https://127.0.0.1:{port}");
    let (ok, text) = run(Command::new(venv_tool("python"))
        .arg(&helper)
        .args(["put", &endpoint])
        .arg(&ca)
        .args(["models", "m/cifar10.onnx"])
        .arg(root().join("models/cifar10.onnx")));
    assert!(ok, "upload over https: {text}");

    let start = |trust: &std::path::Path| {
        let health = soak::event("GET", "/health", "application/json", b"", false);
        let (rt_port, rx) = runtime_api::start(vec![health]);
        let mut cmd = Command::new(bin("classify"));
        cmd.env("MODEL_URI", "s3://models/m/cifar10.onnx")
            .env("SSL_CERT_FILE", trust)
            .env_remove("SSL_CERT_DIR")
            .envs(runtime_api::lambda_env(rt_port))
            .envs([
                ("AWS_ACCESS_KEY_ID", String::from("test")),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
                ("AWS_ENDPOINT_URL_S3", endpoint.clone()),
                ("AWS_MAX_ATTEMPTS", "1".into()),
            ]);
        (Service::spawn("classify_tls", cmd, work.path()), rx)
    };

    let (trusted, rx) = start(&ca);
    let (_, answer) = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("no answer over TLS ({e}):\n{}", trusted.log_text()));
    let health: api::Health = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(health.source, "s3://models/m/cifar10.onnx", "{answer}");
    drop(trusted);

    let system_roots = std::path::Path::new("/etc/ssl/certs/ca-certificates.crt");
    let (mut untrusted, rx) = start(system_roots);
    let begun = Instant::now();
    while untrusted.is_running() && begun.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = untrusted.log_text();
    assert!(
        !untrusted.is_running() && rx.try_recv().is_err(),
        "init should fail:\n{log}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("init failed"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("s3://models/m/cifar10.onnx") && line.to_lowercase().contains("certificate"),
        "{line}"
    );
    drop(server);
}
