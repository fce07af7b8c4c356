//! The classification function: settings and model loading at cold start, then per
//! request a route, a decoded request and a typed answer, each in its own module.

pub mod error;
pub mod handler;
pub mod metrics;
pub mod model_source;
pub mod refresh;
pub mod request;
pub mod response;
pub mod routes;
pub mod saliency;
pub mod served;
pub mod settings;

pub use handler::App;

use error::LoadError;
use settings::Settings;

/// Cold start: settings, model bytes, tract optimisation. Logs the timings.
pub async fn init(settings: Settings) -> Result<App, LoadError> {
    let start = std::time::Instant::now();
    let uri = settings.model_uri.clone();
    let fetched = model_source::fetch(uri.as_deref()).await?;
    let fetch_time = start.elapsed();
    let classifier = inference::Classifier::from_bytes(&fetched.bytes).map_err(|source| LoadError::Model {
        uri: uri.clone().unwrap_or_else(|| "embedded".into()),
        source,
    })?;
    tracing::info!(
        source = %fetched.source,
        model_version = classifier.version(),
        bytes = fetched.bytes.len(),
        fetch_ms = fetch_time.as_secs_f64() * 1e3,
        optimise_ms = (start.elapsed() - fetch_time).as_secs_f64() * 1e3,
        refresh_seconds = settings.model_refresh_seconds,
        "model loaded"
    );
    let current = served::Loaded {
        sha256: contract::sha256_hex(&fetched.bytes),
        classifier,
        source: fetched.source,
    };
    let served = match (&fetched.pointer, fetched.named) {
        (Some(watch), Some(pointer)) => {
            let (candidate, candidate_error) = refresh::candidate(watch, &pointer, &current, None).await;
            if let Some(c) = &candidate {
                tracing::info!(
                    candidate = c.model.classifier.version(),
                    percent = c.terms.percent,
                    mode = c.terms.mode.as_str(),
                    "candidate loaded"
                );
            }
            served::Served {
                current: std::sync::Arc::new(current),
                candidate,
                candidate_error,
                pointer: Some(pointer),
            }
        }
        _ => served::Served::only(current),
    };
    let refresher = match (fetched.pointer, settings.model_refresh_seconds) {
        (Some(watch), secs) if secs > 0 => Some(refresh::Refresher::new(watch, std::time::Duration::from_secs(secs))),
        _ => None,
    };
    let feedback = match settings.feedback_uri.clone() {
        Some(uri) => Some(objects::Store::open(&uri).map_err(|e| LoadError::Setting {
            name: "FEEDBACK_URI",
            value: uri.clone(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let app = App::new(served, settings, refresher);
    Ok(match feedback {
        Some(store) => app.with_feedback(store),
        None => app,
    })
}
