//! Score an endpoint on a labelled image folder.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use scoring::{Confusion, percentile};
use serde::Serialize;

use crate::error::ClientError;
use crate::http::{Answer, Client};

/// What `classify-client evaluate` reports.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub url: String,
    /// Versions that answered (more than one: the model changed during the run).
    pub model_versions: BTreeSet<String>,
    pub images: usize,
    pub answered: usize,
    pub failed: usize,
    pub accuracy: f64,
    pub per_class_accuracy: Vec<(String, f64)>,
    pub latency_p50_ms: f64,
    pub latency_p90_ms: f64,
    pub latency_p99_ms: f64,
    pub seconds: f64,
    pub confusion: Confusion,
    pub failures: Vec<Answer>,
}

/// Post every image of an image folder with `concurrency` workers and score the answers.
/// Classes are ordered as the served model's labels when the folder has exactly those.
pub fn evaluate(client: &Client, folder: &Path, concurrency: usize) -> Result<EndpointReport, ClientError> {
    let files = scoring::folder::read_image_files(folder)?;
    if files.is_empty() {
        return Err(ClientError::NoImages { folder: folder.into() });
    }
    let labels = client.model_info().map(|m| m.labels).unwrap_or_default();
    let classes = scoring::folder::class_names(&files, &labels);
    let files: Vec<_> = files.into_iter().collect();
    let next = AtomicUsize::new(0);
    let answers: Mutex<Vec<Option<Answer>>> = Mutex::new(vec![None; files.len()]);
    let bar = scoring::progress::bar(files.len() as u64, "posting");
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..concurrency.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(((class, name), bytes)) = files.get(i) else {
                        break;
                    };
                    let answer = client.post_image(&Path::new(class).join(name), bytes);
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
    let mut model_versions = BTreeSet::new();
    for (((class, _), _), answer) in files.iter().zip(&answers) {
        latencies.push(answer.latency_ms);
        let prediction = answer.prediction();
        let label = prediction.and_then(|p| p.result.predictions.first()).map(|p| &p.label);
        match label.and_then(|l| classes.iter().position(|c| c == l)) {
            Some(p) => {
                model_versions.insert(prediction.expect("a label").model_version.clone());
                let t = classes
                    .iter()
                    .position(|c| c == class)
                    .expect("class of its own folder");
                truth.push(t as u8);
                predicted.push(p as u8);
            }
            None => failures.push(answer.clone()),
        }
    }
    latencies.sort_by(f64::total_cmp);
    let confusion = Confusion::new(&classes, &truth, &predicted);
    Ok(EndpointReport {
        url: client.predict_url(),
        model_versions,
        images: files.len(),
        answered: truth.len(),
        failed: failures.len(),
        accuracy: confusion.accuracy(),
        per_class_accuracy: classes.iter().cloned().zip(confusion.per_class_accuracy()).collect(),
        latency_p50_ms: percentile(&latencies, 0.5),
        latency_p90_ms: percentile(&latencies, 0.9),
        latency_p99_ms: percentile(&latencies, 0.99),
        seconds,
        confusion,
        failures,
    })
}
