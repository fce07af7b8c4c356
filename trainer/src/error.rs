use std::path::PathBuf;

use thiserror::Error;

/// Everything the trainer can fail on, each naming what to fix.
#[derive(Debug, Error)]
pub enum TrainError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source} (pass --skip-bad-images to skip and count such files)")]
    BadImage {
        path: PathBuf,
        source: contract::ImageError,
    },
    #[error("dataset at {path} is unusable: {reason}")]
    Dataset { path: PathBuf, reason: String },
    #[error(
        "could not download the CIFAR-10 binary release from {url}: {reason}. \
         Download it elsewhere into {cache} or train on an image folder with --data DIR"
    )]
    Download {
        url: String,
        cache: PathBuf,
        reason: String,
    },
    #[error("{path}: MD5 {actual} does not match the published {expected}; delete it and retry")]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("ONNX export failed: {0}")]
    Export(String),
    #[error(transparent)]
    Model(#[from] inference::ModelError),
    #[error(transparent)]
    Scoring(#[from] scoring::ScoringError),
    #[error(transparent)]
    Shards(#[from] shards::ShardError),
    #[error("{0}")]
    Store(String),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;

/// Attach the path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.into();
    move |source| TrainError::Io { path, source }
}
