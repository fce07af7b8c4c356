//! What scoring a classifier on labelled images needs, whoever runs the classifier: the
//! trainer (a model file through tract) and the client (a deployed endpoint) read the
//! same folders, count the same confusion matrix and draw the same picture.

pub mod confusion;
pub mod folder;
pub mod plot;
pub mod progress;

pub use confusion::Confusion;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("plot {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ScoringError {
    let path = path.into();
    move |source| ScoringError::Io { path, source }
}
