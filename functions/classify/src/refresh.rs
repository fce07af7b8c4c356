//! Following the published pointer: a warm instance re-reads `models/latest.json` (a
//! conditional GET, so an unchanged pointer costs one small request) once the last check
//! is older than `MODEL_REFRESH_SECONDS`, and swaps in a changed model only after it is
//! fetched, checksummed, parsed, optimised, probed and found to have the same labels. A
//! candidate is loaded the same way; one that fails leaves the current model answering
//! every request, and `/health` says why.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api::{RefreshOutcome, RefreshStatus};
use contract::ModelPointer;

use crate::error::LoadError;
use crate::model_source::{PointerWatch, Poll};
use crate::served::{CandidateModel, Loaded, ModelSlot, Served};

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
                    from = current.current.classifier.version(),
                    to = served.current.classifier.version(),
                    source = %served.current.source,
                    candidate = served.candidate.as_ref().map_or("", |c| c.model.classifier.version()),
                    candidate_percent = served.candidate.as_ref().map_or(0, |c| c.terms.percent),
                    candidate_mode = served.candidate.as_ref().map_or("", |c| c.terms.mode.as_str()),
                    swap_ms = start.elapsed().as_secs_f64() * 1e3,
                    "model refreshed"
                );
                model.replace(*served);
                watch.etag = etag;
                status.last_outcome = Some(RefreshOutcome::Updated);
                status.last_error = None;
            }
            Err((e, etag)) => {
                let mut logged = self.logged_failure.lock().expect("log lock");
                let key = etag.clone().or_else(|| Some(e.to_string()));
                if *logged != key {
                    tracing::error!(
                        serving = current.current.classifier.version(),
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
    New(Box<Served>, Option<String>),
}

/// A failure comes with the pointer ETag it was about, if any.
async fn check(watch: &PointerWatch, serving: &Served) -> Result<Checked, (LoadError, Option<String>)> {
    let (pointer, etag) = match watch.poll().await {
        // Nothing published (yet, or any more): keep serving what serves.
        Ok(Poll::Unchanged | Poll::Missing) => return Ok(Checked::Same(None)),
        Ok(Poll::Found(pointer, etag)) => (pointer, etag),
        Err(e) => return Err((e, None)),
    };
    if serving.pointer.as_ref() == Some(&pointer) || (serving.pointer.is_none() && same_models(&pointer, serving)) {
        return Ok(Checked::Same(etag));
    }
    let fail = |e: LoadError| (e, etag.clone());
    let current = if pointer.sha256 == serving.current.sha256 {
        serving.current.clone()
    } else {
        let loaded = load(watch, &pointer).await.map_err(fail)?;
        if loaded.classifier.labels() != serving.current.classifier.labels() {
            return Err(fail(LoadError::Labels {
                uri: watch.object_uri(&pointer),
                serving: serving.current.classifier.labels().to_vec(),
                new: loaded.classifier.labels().to_vec(),
            }));
        }
        Arc::new(loaded)
    };
    let (candidate, candidate_error) = candidate(watch, &pointer, &current, Some(serving)).await;
    Ok(Checked::New(
        Box::new(Served {
            current,
            candidate,
            candidate_error,
            pointer: Some(pointer),
        }),
        etag,
    ))
}

/// A pointer naming exactly what serves (no candidate either side), read for the first
/// time: a cold start on the embedded model, or before the pointer was remembered.
fn same_models(pointer: &ModelPointer, serving: &Served) -> bool {
    pointer.sha256 == serving.current.sha256 && pointer.candidate.is_none() && serving.candidate.is_none()
}

/// The model a pointer (or its candidate) names: fetched, checksummed, optimised.
async fn load(watch: &PointerWatch, pointer: &ModelPointer) -> Result<Loaded, LoadError> {
    let (bytes, source) = watch.model(pointer).await?;
    let classifier = inference::Classifier::from_bytes(&bytes).map_err(|source| LoadError::Model {
        uri: watch.object_uri(pointer),
        source,
    })?;
    Ok(Loaded {
        classifier,
        source,
        sha256: pointer.sha256.clone(),
    })
}

/// The pointer's candidate beside `current`, reusing the one `serving` holds when it is
/// the same model. A candidate that cannot serve (fetch, checksum, model or labels) is
/// logged and reported instead: the current model keeps answering every request.
pub async fn candidate(
    watch: &PointerWatch,
    pointer: &ModelPointer,
    current: &Loaded,
    serving: Option<&Served>,
) -> (Option<CandidateModel>, Option<String>) {
    let Some(terms) = pointer.candidate.as_deref().cloned() else {
        return (None, None);
    };
    let reuse = serving
        .and_then(|s| s.candidate.as_ref())
        .filter(|c| c.model.sha256 == terms.model.sha256)
        .map(|c| c.model.clone());
    let model = match reuse {
        Some(model) => Ok(model),
        None => load(watch, &terms.model).await.and_then(|loaded| {
            if loaded.classifier.labels() == current.classifier.labels() {
                Ok(Arc::new(loaded))
            } else {
                Err(LoadError::Labels {
                    uri: watch.object_uri(&terms.model),
                    serving: current.classifier.labels().to_vec(),
                    new: loaded.classifier.labels().to_vec(),
                })
            }
        }),
    };
    match model {
        Ok(model) => (Some(CandidateModel { model, terms }), None),
        Err(e) => {
            tracing::error!(
                pointer = %watch.uri(),
                candidate = %terms.model.version,
                error = %e,
                "candidate failed to load; the current model answers every request"
            );
            (None, Some(e.to_string()))
        }
    }
}
