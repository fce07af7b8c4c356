//! Helpers for the end-to-end tests: real processes (moto_server, cargo lambda watch,
//! the trainer, qemu) started on loopback with ephemeral ports and stopped on drop,
//! also when a test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A release binary of the workspace (`make test` builds them first).
pub fn bin(name: &str) -> PathBuf {
    let p = root().join("target/release").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo build --release --workspace --bins` (make test does)",
        p.display()
    );
    p
}

/// A tool from the project's `.venv` (installed by `make setup`).
pub fn venv_tool(name: &str) -> PathBuf {
    let p = root().join(".venv/bin").join(name);
    assert!(p.is_file(), "{} is missing: run `make setup`", p.display());
    p
}

/// The shared CIFAR-10 JPEG training archive.
pub fn dataset_tgz() -> PathBuf {
    let p = root().join("../shared/datasets/cifar10-jpeg/train.tar.gz");
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A child process in its own process group, killed with its descendants on drop.
pub struct Service {
    child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Service {
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Service {
        use std::os::unix::process::CommandExt;
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log"))
            .stderr(file)
            .process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Service {
            child,
            name: name.into(),
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll `ready` until it holds, failing with the service's log if it exits or times out.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before it was ready:\n{}",
                    self.name,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{} not ready after {timeout:?}:\n{}", self.name, self.log_text());
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signalling our own child's process group.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Run a command to completion: whether it succeeded, and its stdout then stderr.
pub fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// An HTTP agent that returns 4xx/5xx as responses instead of errors.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// The function under `cargo lambda watch` (function-URL emulation, API Gateway v2
/// events) on an ephemeral loopback port.
pub struct Watch {
    pub service: Service,
    /// `http://127.0.0.1:PORT/lambda-url/classify`
    pub base: String,
}

/// Start the function with `env`, waiting until `/health` answers.
pub fn start_function(env: &[(&'static str, String)], logs: &Path) -> Watch {
    let port = free_port();
    let mut cmd = Command::new(venv_tool("cargo-lambda"));
    cmd.current_dir(root())
        .args([
            "lambda",
            "watch",
            "--release",
            "--disable-cors",
            "-p",
            "classify",
            "--bin",
            "classify",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .env(
            "PATH",
            format!(
                "{}:{}",
                root().join(".venv/bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut service = Service::spawn("cargo-lambda-watch", cmd, logs);
    let base = format!("http://127.0.0.1:{port}/lambda-url/classify");
    let agent = http();
    let health = format!("{base}/health");
    service.wait_until(Duration::from_secs(600), || {
        agent
            .get(&health)
            .call()
            .map(|r| r.status().as_u16() == 200)
            .unwrap_or(false)
    });
    Watch { service, base }
}

/// moto_server on an ephemeral port: a real S3 API on loopback.
pub struct S3Server {
    pub service: Service,
    pub endpoint: String,
}

impl S3Server {
    pub fn start(log_dir: &Path) -> S3Server {
        let port = free_port();
        let mut cmd = Command::new(venv_tool("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let mut service = Service::spawn("moto_server", cmd, log_dir);
        let endpoint = format!("http://127.0.0.1:{port}");
        let agent = http();
        let probe = format!("{endpoint}/");
        service.wait_until(Duration::from_secs(60), || agent.get(&probe).call().is_ok());
        S3Server { service, endpoint }
    }

    pub fn create_bucket(&self, bucket: &str) {
        let r = http()
            .put(&format!("{}/{bucket}", self.endpoint))
            .send_empty()
            .expect("create bucket");
        assert_eq!(r.status().as_u16(), 200, "create bucket {bucket}");
    }

    /// A signed S3 client for this server, and a runtime to drive it from a plain test.
    fn client(&self) -> (aws_sdk_s3::Client, tokio::runtime::Runtime) {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "e2e"))
            .force_path_style(true)
            .build();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (aws_sdk_s3::Client::from_conf(config), rt)
    }

    /// Read an object with real (signed) S3 requests: `(status, body)`, 404 when missing.
    pub fn get_object(&self, bucket: &str, key: &str) -> (u16, Vec<u8>) {
        let (client, rt) = self.client();
        rt.block_on(async {
            match client.get_object().bucket(bucket).key(key).send().await {
                Ok(out) => (200, out.body.collect().await.expect("body").into_bytes().to_vec()),
                Err(e) => (e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0), Vec::new()),
            }
        })
    }

    /// Write an object with a real (signed) S3 request.
    pub fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) {
        let (client, rt) = self.client();
        rt.block_on(client.put_object().bucket(bucket).key(key).body(body.into()).send())
            .expect("put object");
    }

    /// Environment that points the AWS SDK at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_S3", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

/// Real JPEGs from the shared dataset: the first `per_class` files of each class,
/// as (class, file name, bytes).
pub fn sample_images(per_class: usize) -> Vec<(String, String, Vec<u8>)> {
    use std::io::Read;
    let file = std::fs::File::open(dataset_tgz()).expect("open dataset");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().expect("path").into_owned();
        let class = path
            .parent()
            .and_then(Path::file_name)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let n = counts.entry(class.clone()).or_default();
        if *n >= per_class {
            continue;
        }
        *n += 1;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        out.push((class, name, bytes));
        if counts.len() == 10 && counts.values().all(|&c| c >= per_class) {
            break;
        }
    }
    out
}

/// Write images into an image-folder layout under `dir`.
pub fn write_folder(dir: &Path, images: &[(String, String, Vec<u8>)]) {
    for (class, name, bytes) in images {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(name), bytes).expect("write image");
    }
}

/// A minimal Lambda runtime API (the `/2018-06-01/runtime/...` endpoints a function polls),
/// for running a built `bootstrap` outside `cargo lambda watch`.
pub mod runtime_api {
    /// The environment Lambda gives a function whose runtime API listens on `port`.
    pub fn lambda_env(port: u16) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}")),
            ("AWS_LAMBDA_FUNCTION_NAME", "classify".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/classify".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "local".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::time::Duration;

    use serde_json::Value;

    /// Serves queued invocations on `/next` and sends back what the function posts.
    pub fn start(events: Vec<Value>) -> (u16, mpsc::Receiver<(String, Value)>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        let queue = std::sync::Arc::new(std::sync::Mutex::new(
            events.into_iter().enumerate().collect::<Vec<_>>(),
        ));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (tx, queue) = (tx.clone(), queue.clone());
                std::thread::spawn(move || serve(stream, tx, queue));
            }
        });
        (port, rx)
    }

    type Queue = std::sync::Arc<std::sync::Mutex<Vec<(usize, Value)>>>;

    fn serve(stream: TcpStream, tx: mpsc::Sender<(String, Value)>, queue: Queue) {
        let _ = stream.set_nodelay(true);
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut out = stream;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let mut length = 0usize;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) == 0 {
                    return;
                }
                if h == "\r\n" {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            if path.ends_with("/invocation/next") {
                let next = { queue.lock().unwrap().pop() };
                let Some((id, event)) = next else {
                    std::thread::sleep(Duration::from_secs(600));
                    return;
                };
                let payload = event.to_string();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-{id}\r\n\
                     lambda-runtime-deadline-ms: 9999999999999\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-east-1:000000000000:function:classify\r\n\
                     lambda-runtime-trace-id: Root=1-674731a2-{id:024x};Parent={id:016x};Sampled=0;Lineage=1:8e3c1f2a:0\r\n\
                     content-length: {}\r\n\r\n",
                    payload.len()
                );
                // One write: a head and body sent apart wait out the peer's delayed ACK.
                let _ = out.write_all(format!("{head}{payload}").as_bytes());
            } else {
                let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let _ = tx.send((path, value));
                let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}");
            }
        }
    }
}

/// Sustained traffic through the real Lambda runtime loop: the release `classify` binary
/// polls [`runtime_api`] for a bounded queue of mixed requests while its resident memory
/// is sampled, so per-request growth shows up as numbers.
pub mod soak {
    use std::process::Command;
    use std::time::{Duration, Instant};

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{Value, json};

    use super::{Service, bin, root, runtime_api};

    /// One API Gateway HTTP API (payload 2.0) event.
    pub fn event(method: &str, path: &str, content_type: &str, body: &[u8], base64: bool) -> Value {
        let body = if base64 {
            STANDARD.encode(body)
        } else {
            String::from_utf8_lossy(body).into_owned()
        };
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": {"content-type": content_type},
            "requestContext": {
                "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": "127.0.0.1", "userAgent": "soak"},
                "requestId": "soak", "stage": "$default", "timeEpoch": 0
            },
            "body": body,
            "isBase64Encoded": base64,
        })
    }

    /// The i-th request of the mix: raw JPEG, JSON single, JSON batch of 8, PNG, and one
    /// malformed request in every eight.
    pub fn mixed_event(i: usize) -> Value {
        let cat = std::fs::read(root().join("tests/fixtures/cat.jpg")).expect("cat.jpg");
        let ship = std::fs::read(root().join("tests/fixtures/ship.jpg")).expect("ship.jpg");
        match i % 8 {
            0 | 4 => event("POST", "/predict", "image/jpeg", &cat, true),
            1 | 5 => event(
                "POST",
                "/predict",
                "application/json",
                json!({"image": STANDARD.encode(&ship)}).to_string().as_bytes(),
                false,
            ),
            2 => {
                let images: Vec<String> = (0..8)
                    .map(|k| STANDARD.encode(if k % 2 == 0 { &cat } else { &ship }))
                    .collect();
                event(
                    "POST",
                    "/predict",
                    "application/json",
                    json!({"images": images, "top_k": 3}).to_string().as_bytes(),
                    false,
                )
            }
            3 | 6 => event("POST", "/predict", "image/png", &png(i), true),
            _ => event("POST", "/predict", "application/json", b"{\"image\": 7}", false),
        }
    }

    /// A small PNG whose pixels depend on `seed`.
    fn png(seed: usize) -> Vec<u8> {
        let img = image::RgbImage::from_fn(48, 40, |x, y| {
            image::Rgb([(x as usize * 5 + seed) as u8, (y as usize * 3) as u8, (seed * 7) as u8])
        });
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).expect("encode png");
        out.into_inner()
    }

    /// Resident set size of a process, in KiB.
    pub fn rss_kib(pid: u32) -> u64 {
        status_kib(pid, "VmRSS:")
    }

    /// A `kB` field of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`), 0 when unreadable.
    pub fn status_kib(pid: u32, field: &str) -> u64 {
        scoring::proc_status_kib(&pid.to_string(), field).unwrap_or(0)
    }

    /// What a soak run saw.
    #[derive(Debug, Default)]
    pub struct Report {
        /// `(requests answered, RSS KiB)` every `every` requests, starting after warm-up.
        pub samples: Vec<(usize, u64)>,
        /// Answers by status code.
        pub statuses: std::collections::BTreeMap<u16, usize>,
        pub seconds: f64,
    }

    /// Send `requests` mixed requests through the function's runtime loop, sampling RSS
    /// every `every` answers; stops by itself after `limit`.
    pub fn run(requests: usize, every: usize, limit: Duration) -> Report {
        let events: Vec<Value> = (0..requests).rev().map(mixed_event).collect();
        let (port, rx) = runtime_api::start(events);
        let work = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(bin("classify"));
        cmd.envs(runtime_api::lambda_env(port)).env("RUST_LOG", "warn");
        let mut service = Service::spawn("classify", cmd, work.path());
        let pid = service.pid();
        let start = Instant::now();
        let mut report = Report::default();
        for answered in 1..=requests {
            let left = limit.saturating_sub(start.elapsed());
            let (_, value) = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "no answer {answered}/{requests} within {limit:?} (running: {}):\n{}",
                    service.is_running(),
                    service.log_text()
                )
            });
            let status = value["statusCode"].as_u64().unwrap_or(0) as u16;
            *report.statuses.entry(status).or_default() += 1;
            if answered % every == 0 {
                report.samples.push((answered, rss_kib(pid)));
            }
        }
        report.seconds = start.elapsed().as_secs_f64();
        report
    }
}

/// A loopback HTTP proxy in front of a real S3 server that answers 503 to every request
/// whose request line contains `fail_on` and forwards the rest, one request per
/// connection: a failure injected at a chosen step of an otherwise real upload.
pub struct FaultyProxy {
    pub endpoint: String,
    /// Request lines seen, in order.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FaultyProxy {
    pub fn start(upstream: &str, fail_on: &str) -> FaultyProxy {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (fail_on, log) = (fail_on.to_string(), seen.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, fail_on, log) = (upstream.clone(), fail_on.clone(), log.clone());
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut reader = BufReader::new(client.try_clone()?);
                    let mut head = Vec::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line)? == 0 {
                            return Ok(());
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if !lower.starts_with("connection:") {
                            head.push(line);
                        }
                    }
                    log.lock().unwrap().push(head[0].trim_end().to_string());
                    let mut client = client;
                    if head[0].contains(&fail_on) {
                        client.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )?;
                        return Ok(());
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body)?;
                    let mut up = std::net::TcpStream::connect(&upstream)?;
                    up.write_all(head.concat().as_bytes())?;
                    up.write_all(b"connection: close\r\n\r\n")?;
                    up.write_all(&body)?;
                    std::io::copy(&mut up, &mut client)?;
                    Ok(())
                });
            }
        });
        FaultyProxy { endpoint, seen }
    }
}

/// Bounded concurrent load on loopback: `clients` threads, each sending `per_client`
/// requests of the soak mix (raw JPEG, JSON single, JSON batch of 8, PNG, malformed),
/// stopping by itself at `limit`.
pub mod load {
    use std::time::{Duration, Instant};

    use super::http;
    use super::soak::mixed_event;

    #[derive(Debug, Default)]
    pub struct Report {
        pub statuses: std::collections::BTreeMap<u16, usize>,
        /// Requests that got no HTTP answer (refused, reset, timed out).
        pub transport_errors: Vec<String>,
        /// Milliseconds per answered request, sorted.
        pub latencies_ms: Vec<f64>,
        pub seconds: f64,
    }

    impl Report {
        pub fn percentile(&self, q: f64) -> f64 {
            scoring::percentile(&self.latencies_ms, q)
        }
    }

    /// The `classify` process that `cargo lambda watch` started (the newest, if several).
    pub fn function_pid() -> u32 {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "classify") {
                found.push(pid);
            }
        }
        *found.iter().max().expect("the function process is running")
    }

    pub fn run(base: &str, clients: usize, per_client: usize, limit: Duration) -> Report {
        // The soak mix as HTTP requests: (content type, body) per kind.
        let requests: Vec<(String, Vec<u8>)> = (0..8)
            .map(|i| {
                let e = mixed_event(i);
                let body = e["body"].as_str().unwrap_or_default();
                let body = if e["isBase64Encoded"] == true {
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).expect("base64")
                } else {
                    body.as_bytes().to_vec()
                };
                (e["headers"]["content-type"].as_str().unwrap().to_string(), body)
            })
            .collect();
        let predict = format!("{base}/predict");
        let deadline = Instant::now() + limit;
        let start = Instant::now();
        let results: Vec<Vec<(Result<u16, String>, f64)>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..clients)
                .map(|c| {
                    let (requests, predict) = (&requests, &predict);
                    scope.spawn(move || {
                        let agent = http();
                        let mut out = Vec::new();
                        for i in 0..per_client {
                            if Instant::now() > deadline {
                                break;
                            }
                            let (ct, body) = &requests[(c + i) % requests.len()];
                            let t = Instant::now();
                            let r = agent.post(predict).header("content-type", ct).send(&body[..]);
                            let status = r
                                .map(|mut r| {
                                    let _ = r.body_mut().read_to_vec();
                                    r.status().as_u16()
                                })
                                .map_err(|e| e.to_string());
                            out.push((status, t.elapsed().as_secs_f64() * 1e3));
                        }
                        out
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("client thread")).collect()
        });
        let mut report = Report {
            seconds: start.elapsed().as_secs_f64(),
            ..Report::default()
        };
        for (status, ms) in results.into_iter().flatten() {
            match status {
                Ok(s) => {
                    *report.statuses.entry(s).or_default() += 1;
                    report.latencies_ms.push(ms);
                }
                Err(e) => report.transport_errors.push(e),
            }
        }
        report.latencies_ms.sort_by(f64::total_cmp);
        report
    }
}

/// Peak memory of the function for the largest inputs it accepts: each request alone in a
/// fresh release process, through the Lambda runtime API on loopback.
pub mod ceiling {
    use std::io::Cursor;
    use std::process::Command;
    use std::time::Duration;

    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use image::{ImageFormat, RgbImage, RgbaImage};
    use serde_json::{Value, json};

    use super::soak::event;
    use super::{Service, bin, runtime_api};

    /// The function's limits (its defaults): a side of 4096 and 16.7 M pixels, 6 MB bodies,
    /// 64 images a batch.
    pub const SIDE: u32 = 4096;
    pub const BODY: usize = 6_000_000;

    fn encode(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, format).expect("encode");
        out.into_inner()
    }

    /// Noise, so a JPEG of it is as large as its quality makes it.
    fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
        let mut state = seed.wrapping_mul(2_654_435_761).max(1);
        RgbImage::from_fn(w, h, |_, _| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
        })
    }

    /// The largest JPEG under the body limit at 4096x4096: the highest quality that fits.
    fn jpeg_at_limit() -> Vec<u8> {
        let img = noise(SIDE, SIDE, 1);
        for q in [60u8, 45, 30, 20, 12, 8] {
            let mut out = Cursor::new(Vec::new());
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q)
                .encode_image(&img)
                .expect("jpeg");
            if out.get_ref().len() <= BODY {
                return out.into_inner();
            }
        }
        panic!("no quality fits the body limit")
    }

    /// `(what, event)` for each worst case.
    pub fn cases() -> Vec<(String, Value)> {
        let gradient = RgbaImage::from_fn(SIDE, SIDE, |x, y| {
            image::Rgba([(x / 16) as u8, (y / 16) as u8, 128, 200])
        });
        let png = encode(gradient.clone().into(), ImageFormat::Png);
        let webp = {
            let mut out = Cursor::new(Vec::new());
            image::codecs::webp::WebPEncoder::new_lossless(&mut out)
                .encode(gradient.as_raw(), SIDE, SIDE, image::ExtendedColorType::Rgba8)
                .expect("webp");
            out.into_inner()
        };
        let gif = {
            let mut out = Vec::new();
            {
                let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 30);
                for k in 0..3u8 {
                    let frame = RgbaImage::from_pixel(SIDE, SIDE, image::Rgba([k * 80, 10, 10, 255]));
                    enc.encode_frame(image::Frame::new(frame)).expect("gif frame");
                }
            }
            out
        };
        let jpeg = jpeg_at_limit();
        // 64 JPEGs filling the body limit once base64'd in JSON.
        let per = (BODY / 64) * 3 / 4 - 2_000;
        let one = {
            let img = noise(512, 384, 2);
            let mut q = 90u8;
            loop {
                let mut out = Cursor::new(Vec::new());
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q)
                    .encode_image(&img)
                    .expect("jpeg");
                if out.get_ref().len() <= per || q <= 5 {
                    break out.into_inner();
                }
                q -= 5;
            }
        };
        let batch = json!({"images": vec![STANDARD.encode(&one); 64]}).to_string();
        vec![
            ("/health (baseline)".into(), event("GET", "/health", "", b"", false)),
            (
                format!("PNG {SIDE}x{SIDE} RGBA, {} KB", png.len() / 1000),
                event("POST", "/predict", "image/png", &png, true),
            ),
            (
                format!("JPEG {SIDE}x{SIDE} at the body limit, {} KB", jpeg.len() / 1000),
                event("POST", "/predict", "image/jpeg", &jpeg, true),
            ),
            (
                format!("WebP lossless {SIDE}x{SIDE}, {} KB", webp.len() / 1000),
                event("POST", "/predict", "image/webp", &webp, true),
            ),
            (
                format!("GIF {SIDE}x{SIDE}, 3 frames, {} KB", gif.len() / 1000),
                event("POST", "/predict", "image/gif", &gif, true),
            ),
            (
                format!("batch of 64 JPEGs 512x384, {} KB JSON", batch.len() / 1000),
                event("POST", "/predict", "application/json", batch.as_bytes(), false),
            ),
        ]
    }

    /// `(status code, peak RSS KiB)` of a fresh function process that answers `event`.
    pub fn peak(event: Value) -> (u16, u64) {
        let (port, rx) = runtime_api::start(vec![event]);
        let work = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(bin("classify"));
        cmd.envs(runtime_api::lambda_env(port)).env("RUST_LOG", "warn");
        let service = Service::spawn("classify-ceiling", cmd, work.path());
        let (_, answer) = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no answer:\n{}", service.log_text()));
        let status = answer["statusCode"].as_u64().unwrap_or(0) as u16;
        (status, super::soak::status_kib(service.pid(), "VmHWM:"))
    }
}

/// `trainer publish --run RUN --to TO` against `s3`, not yet run.
pub fn publish_command(run: &Path, to: &str, s3: &S3Server) -> Command {
    let mut cmd = Command::new(bin("trainer"));
    cmd.args(["publish", "--run"])
        .arg(run)
        .args(["--to", to])
        .envs(s3.env());
    cmd
}

/// Publish a run directory, which must succeed.
pub fn publish_run(run: &Path, to: &str, s3: &S3Server) {
    let out = publish_command(run, to, s3).output().expect("trainer runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Where a metadata value starts in an ONNX file: after its key, the value's tag byte and
/// one length byte (values under 128 bytes).
fn metadata_value_at(model: &[u8], key: &str) -> usize {
    let at = model
        .windows(key.len())
        .position(|w| w == key.as_bytes())
        .unwrap_or_else(|| panic!("no {key} key"));
    at + key.len() + 2
}

/// A second valid model: `model` with the start of a metadata value overwritten in place
/// (same length, so the protobuf stays valid).
pub fn with_metadata(model: &[u8], key: &str, prefix: &str) -> Vec<u8> {
    let start = metadata_value_at(model, key);
    let mut out = model.to_vec();
    out[start..start + prefix.len()].copy_from_slice(prefix.as_bytes());
    assert_ne!(out, model, "{key} already starts with {prefix}");
    out
}

/// The same weights and version with another training date: another sha256.
pub fn retrained(model: &[u8]) -> Vec<u8> {
    let first = model[metadata_value_at(model, "trained_at")];
    with_metadata(model, "trained_at", if first == b'1' { "2" } else { "1" })
}
