//! Clients of a deployed endpoint: classify files, and score the endpoint on a labelled
//! folder with bounded concurrency, retries with backoff, and latency percentiles.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Result, TrainError, io};
use crate::metrics::Confusion;

/// Request behaviour shared by both commands.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub timeout: Duration,
    pub retries: u32,
    pub top_k: usize,
    /// Sent as `min_probability` when set.
    pub min_probability: Option<f32>,
}

/// One answered request.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub file: String,
    pub status: u16,
    pub body: Value,
    pub latency_ms: f64,
    pub attempts: u32,
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        Some("bmp") => "image/bmp",
        _ => "application/octet-stream",
    }
}

fn agent(opts: &ClientOptions) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(opts.timeout))
        .build()
        .into()
}

/// POST one image's bytes as a raw body, retrying 429, 5xx and transport errors with
/// exponential backoff (0.25 s, 0.5 s, 1 s, ...).
pub fn post_image(agent: &ureq::Agent, predict_url: &str, file: &Path, bytes: &[u8], opts: &ClientOptions) -> Answer {
    let mut url = format!("{predict_url}?top_k={}", opts.top_k);
    if let Some(p) = opts.min_probability {
        url += &format!("&min_probability={p}");
    }
    let start = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = agent.post(&url).header("content-type", content_type(file)).send(bytes);
        let (status, body) = match result {
            Ok(mut r) => {
                let status = r.status().as_u16();
                let text = r.body_mut().read_to_string().unwrap_or_default();
                (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
            }
            Err(e) => (0, Value::String(e.to_string())),
        };
        let retryable = status == 0 || status == 429 || status >= 500;
        if !retryable || attempts > opts.retries {
            return Answer {
                file: file.display().to_string(),
                status,
                body,
                latency_ms: start.elapsed().as_secs_f64() * 1e3,
                attempts,
            };
        }
        std::thread::sleep(Duration::from_millis(250 << (attempts - 1).min(5)));
    }
}

/// `<url>/predict` from a base URL or the predict URL itself.
pub fn predict_url(url: &str) -> String {
    let url = url.trim_end_matches('/');
    if url.ends_with("/predict") {
        url.to_string()
    } else {
        format!("{url}/predict")
    }
}

/// Classify `files` one by one.
pub fn classify(url: &str, files: &[PathBuf], opts: &ClientOptions) -> Result<Vec<Answer>> {
    let agent = agent(opts);
    let predict = predict_url(url);
    files
        .iter()
        .map(|f| {
            let bytes = std::fs::read(f).map_err(io(f))?;
            Ok(post_image(&agent, &predict, f, &bytes, opts))
        })
        .collect()
}

/// What `evaluate --url` reports.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub url: String,
    pub images: usize,
    pub answered: usize,
    pub failed: usize,
    pub accuracy: f64,
    pub per_class_accuracy: Vec<(String, f64)>,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub seconds: f64,
    pub confusion: Confusion,
    pub failures: Vec<Answer>,
}

/// Post every image of an image folder with `concurrency` workers and score the answers.
pub fn evaluate(url: &str, folder: &Path, concurrency: usize, opts: &ClientOptions) -> Result<EndpointReport> {
    let files = crate::data::read_image_files(folder)?;
    let classes = crate::data::class_names(&files);
    let files: Vec<_> = files.into_iter().collect();
    let predict = predict_url(url);
    let agent = agent(opts);
    let next = AtomicUsize::new(0);
    let answers: Mutex<Vec<Option<Answer>>> = Mutex::new(vec![None; files.len()]);
    let bar = crate::progress::bar(files.len() as u64, "posting");
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(((class, name), bytes)) = files.get(i) else {
                        break;
                    };
                    let answer = post_image(&agent, &predict, &Path::new(class).join(name), bytes, opts);
                    answers.lock().expect("no poisoned lock")[i] = Some(answer);
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let seconds = start.elapsed().as_secs_f64();
    let answers: Vec<Answer> = answers
        .into_inner()
        .expect("no poisoned lock")
        .into_iter()
        .flatten()
        .collect();
    let (mut truth, mut predicted, mut failures, mut latencies) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (((class, _), _), answer) in files.iter().zip(&answers) {
        latencies.push(answer.latency_ms);
        let label = answer.body["label"].as_str();
        match (answer.status, label.and_then(|l| classes.iter().position(|c| c == l))) {
            (200, Some(p)) => {
                truth.push(
                    classes
                        .iter()
                        .position(|c| c == class)
                        .expect("class of its own folder") as u8,
                );
                predicted.push(p as u8);
            }
            _ => failures.push(answer.clone()),
        }
    }
    if answers.is_empty() {
        return Err(TrainError::Dataset {
            path: folder.into(),
            reason: "no images to post".into(),
        });
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let confusion = Confusion::new(&classes, &truth, &predicted);
    Ok(EndpointReport {
        url: predict,
        images: files.len(),
        answered: truth.len(),
        failed: failures.len(),
        accuracy: confusion.accuracy(),
        per_class_accuracy: classes.iter().cloned().zip(confusion.per_class_accuracy()).collect(),
        latency_p50_ms: pct(0.5),
        latency_p99_ms: pct(0.99),
        seconds,
        confusion,
        failures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predict_urls_and_content_types() {
        assert_eq!(predict_url("https://x/"), "https://x/predict");
        assert_eq!(predict_url("https://x/predict"), "https://x/predict");
        assert_eq!(content_type(Path::new("a.JPG")), "image/jpeg");
        assert_eq!(content_type(Path::new("a")), "application/octet-stream");
    }
}
