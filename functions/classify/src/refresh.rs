//! Following the published pointer: a warm instance re-reads `models/latest.json` (a
//! conditional GET, so an unchanged pointer costs one small request) once the last check
//! is older than `MODEL_REFRESH_SECONDS`, and swaps in a changed model only after it is
//! fetched, checksummed, parsed, optimised, probed and found to have the same labels.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use api::{RefreshOutcome, RefreshStatus};

use crate::error::LoadError;
use crate::model_source::{PointerWatch, Poll};
use crate::served::{ModelSlot, Served};

/// The pointer, when to look at it next, and what the last look found.
pub struct Refresher {
    watch: tokio::sync::Mutex<PointerWatch>,
    interval: Duration,
    next: Mutex<Instant>,
    status: Mutex<RefreshStatus>,
    /// The pointer ETag whose failure was last logged: one log line per pointer version.
    logged_failure: Mutex<Option<String>>,
}

impl Refresher {
    pub fn new(watch: PointerWatch, interval: Duration) -> Self {
        Self {
            watch: tokio::sync::Mutex::new(watch),
            interval,
            next: Mutex::new(Instant::now() + interval),
            status: Mutex::new(RefreshStatus {
                enabled: true,
                interval_seconds: interval.as_secs(),
                last_check: None,
                last_outcome: None,
                last_error: None,
            }),
            logged_failure: Mutex::new(None),
        }
    }

    pub fn status(&self) -> RefreshStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Check the pointer when due and swap `model` on a verified change. Requests that
    /// already hold the old model's `Arc` finish on it.
    pub async fn refresh_if_due(&self, model: &ModelSlot) {
        {
            let mut next = self.next.lock().expect("next lock");
            if Instant::now() < *next {
                return;
            }
            *next = Instant::now() + self.interval;
        }
        let start = Instant::now();
        let mut watch = self.watch.lock().await;
        let current = model.current();
        let outcome = check(&watch, &current).await;
        let mut status = self.status.lock().expect("status lock");
        status.last_check = Some(contract::pointer::now_rfc3339());
        match outcome {
            Ok(Checked::Same(etag)) => {
                // A rewritten pointer naming the serving model: remember its ETag so the
                // next checks are 304s again rather than full reads.
                if etag.is_some() {
                    watch.etag = etag;
                }
                tracing::debug!(check_ms = start.elapsed().as_secs_f64() * 1e3, "pointer unchanged");
                status.last_outcome = Some(RefreshOutcome::Unchanged);
                status.last_error = None;
            }
            Ok(Checked::New(served, etag)) => {
                tracing::info!(
                    from = current.classifier.version(),
                    to = served.classifier.version(),
                    source = %served.source,
                    swap_ms = start.elapsed().as_secs_f64() * 1e3,
                    "model refreshed"
                );
                model.replace(served);
                watch.etag = etag;
                status.last_outcome = Some(RefreshOutcome::Updated);
                status.last_error = None;
            }
            Err((e, etag)) => {
                let mut logged = self.logged_failure.lock().expect("log lock");
                let key = etag.clone().or_else(|| Some(e.to_string()));
                if *logged != key {
                    tracing::error!(
                        serving = current.classifier.version(),
                        pointer = %watch.uri(),
                        pointer_etag = etag.as_deref().unwrap_or("-"),
                        error = %e,
                        "model refresh failed; the current model keeps serving"
                    );
                    *logged = key;
                }
                status.last_outcome = Some(RefreshOutcome::Failed);
                status.last_error = Some(e.to_string());
            }
        }
    }
}

/// What a pointer check found: the serving model still (with the pointer's new ETag when
/// it was rewritten), or a verified new model with its pointer's ETag.
enum Checked {
    Same(Option<String>),
    New(Served, Option<String>),
}

/// A failure comes with the pointer ETag it was about, if any.
async fn check(watch: &PointerWatch, current: &Served) -> Result<Checked, (LoadError, Option<String>)> {
    let (pointer, etag) = match watch.poll().await {
        // Nothing published (yet, or any more): keep serving what serves.
        Ok(Poll::Unchanged | Poll::Missing) => return Ok(Checked::Same(None)),
        Ok(Poll::Found(pointer, etag)) => (pointer, etag),
        Err(e) => return Err((e, None)),
    };
    if pointer.sha256 == current.sha256 {
        return Ok(Checked::Same(etag));
    }
    let fail = |e: LoadError| (e, etag.clone());
    let (bytes, source) = watch.model(&pointer).await.map_err(fail)?;
    let classifier = inference::Classifier::from_bytes(&bytes).map_err(|source| {
        fail(LoadError::Model {
            uri: format!("s3://{}/{}", watch.bucket, pointer.key),
            source,
        })
    })?;
    if classifier.labels() != current.classifier.labels() {
        return Err(fail(LoadError::Labels {
            uri: format!("s3://{}/{}", watch.bucket, pointer.key),
            serving: current.classifier.labels().to_vec(),
            new: classifier.labels().to_vec(),
        }));
    }
    Ok(Checked::New(
        Served {
            classifier,
            source,
            sha256: pointer.sha256,
        },
        etag,
    ))
}
