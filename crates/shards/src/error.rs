use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ShardError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("shard {shard}: {reason}")]
    Format { shard: String, reason: String },
    #[error("{what}: {reason}")]
    Source { what: String, reason: String },
}

pub type Result<T, E = ShardError> = std::result::Result<T, E>;

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ShardError {
    let path = path.into();
    move |source| ShardError::Io { path, source }
}
