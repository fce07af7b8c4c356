//! A minimal Lambda runtime API (the `/2018-06-01/runtime/...` endpoints a function polls),
//! for running a built `bootstrap` outside `cargo lambda watch`.

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
