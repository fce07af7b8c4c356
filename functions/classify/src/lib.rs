//! The classification function: settings and model loading at cold start, then per
//! request a route, a decoded request and a typed answer, each in its own module.

pub mod error;
pub mod handler;
pub mod model_source;
pub mod request;
pub mod response;
pub mod routes;
pub mod settings;

pub use handler::App;

use error::LoadError;
use settings::Settings;

/// Cold start: settings, model bytes, tract optimisation. Logs the timings.
pub async fn init(settings: Settings) -> Result<App, LoadError> {
    let start = std::time::Instant::now();
    let uri = settings.model_uri.clone();
    let (bytes, source) = model_source::fetch(uri.as_deref()).await?;
    let fetched = start.elapsed();
    let classifier = contract::Classifier::from_bytes(&bytes).map_err(|source| LoadError::Model {
        uri: uri.clone().unwrap_or_else(|| "embedded".into()),
        source,
    })?;
    tracing::info!(
        source = %source,
        model_version = classifier.version(),
        bytes = bytes.len(),
        fetch_ms = fetched.as_secs_f64() * 1e3,
        optimise_ms = (start.elapsed() - fetched).as_secs_f64() * 1e3,
        "model loaded"
    );
    Ok(App {
        classifier,
        settings,
        source,
    })
}
