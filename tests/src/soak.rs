//! Sustained traffic through the real Lambda runtime loop: the release `classify` binary
//! polls [`runtime_api`] for a bounded queue of mixed requests while its resident memory
//! is sampled, so per-request growth shows up as numbers.

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::{Service, bin, root, runtime_api};

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
