use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Scoring(#[from] scoring::ScoringError),
    #[error("{folder}: no images to post")]
    NoImages { folder: PathBuf },
}
