//! Bounded concurrent load on loopback: `clients` threads, each sending `per_client`
//! requests of the soak mix (raw JPEG, JSON single, JSON batch of 8, PNG, malformed),
//! stopping by itself at `limit`.

use std::time::{Duration, Instant};

use crate::http;
use crate::soak::mixed_event;

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
