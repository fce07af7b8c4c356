//! The real arm64 `bootstrap` (cargo lambda build --release --arm64) under qemu-aarch64,
//! served by a minimal Lambda runtime API on loopback: it must answer `/health` and a
//! prediction. Timings under emulation mean nothing and are not looked at.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e::*;
use serde_json::{Value, json};

/// Serves queued invocations on `/next` and sends back what the function posts.
fn runtime_api(events: Vec<Value>) -> (u16, mpsc::Receiver<(String, Value)>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(events.into_iter().enumerate().collect::<Vec<_>>()));
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
                 content-length: {}\r\n\r\n",
                payload.len()
            );
            let _ = out.write_all(head.as_bytes()).and_then(|_| out.write_all(payload.as_bytes()));
        } else {
            let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let _ = tx.send((path, value));
            let _ = out.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}");
        }
    }
}

fn event(method: &str, path: &str, content_type: &str, body: Option<String>, b64: bool) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": content_type},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                           "requestId": "r", "stage": "$default", "timeEpoch": 0},
        "body": body, "isBase64Encoded": b64,
    })
}

#[test]
#[ignore = "needs the arm64 build and qemu-user; run by `make test`"]
fn arm64_bootstrap_answers_health_and_a_prediction() {
    let bootstrap = root().join("target/lambda/classify/bootstrap");
    assert!(bootstrap.is_file(), "{} missing: run `make build-arm64`", bootstrap.display());
    let image = sample_images(1).remove(3); // a cat
    // Queue pops from the back: health first, then the prediction.
    let events = vec![
        event("POST", "/predict", "image/jpeg", Some(STANDARD.encode(&image.2)), true),
        event("GET", "/health", "", None, false),
    ];
    let (port, rx) = runtime_api(events);
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("qemu-aarch64");
    cmd.args(["-L", "/usr/aarch64-linux-gnu"]).arg(&bootstrap).envs([
        ("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}")),
        ("AWS_LAMBDA_FUNCTION_NAME", "classify".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/classify".into()),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]);
    let service = Service::spawn("qemu-bootstrap", cmd, work.path());
    let mut answers = Vec::new();
    for _ in 0..2 {
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(a) => answers.push(a),
            Err(e) => panic!("no answer from the arm64 bootstrap ({e}):\n{}", service.log_text()),
        }
    }
    let (path, health) = &answers[0];
    assert!(path.ends_with("req-1/response"), "{path}: {health}");
    assert_eq!(health["statusCode"], 200, "{health}");
    let body: Value = serde_json::from_str(health["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["status"], "ok");
    let (path, predict) = &answers[1];
    assert!(path.ends_with("req-0/response"), "{path}: {predict}");
    assert_eq!(predict["statusCode"], 200, "{predict}");
    let body: Value = serde_json::from_str(predict["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["predictions"].as_array().unwrap().len(), 5);
    assert!(body["probability"].as_f64().unwrap() > 0.0);
    let log = service.log_text();
    assert!(log.contains("model loaded"), "cold start is logged:\n{log}");
}
