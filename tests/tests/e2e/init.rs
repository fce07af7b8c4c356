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
