use std::path::PathBuf;

use thiserror::Error;

/// What publishing, listing or promoting a model can fail on, each naming what to fix.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{dest}: {reason}")]
    Store { dest: String, reason: String },
    #[error(transparent)]
    Model(#[from] inference::ModelError),
    #[error("no published model under {at} matches `{query}`; published: {available}")]
    UnknownModel {
        at: String,
        query: String,
        available: String,
    },
    #[error("`{query}` matches {matches} under {at}; give more of the version or sha256")]
    AmbiguousModel { at: String, query: String, matches: String },
    #[error("{at}: {reason}; the pointer was left alone")]
    Release { at: String, reason: String },
    #[error("{uri}: sha256 {actual} does not match the published {expected}; the pointer was left alone")]
    PublishedChecksum {
        uri: String,
        expected: String,
        actual: String,
    },
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Attach the path to an I/O error.
pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> RegistryError {
    let path = path.into();
    move |source| RegistryError::Io { path, source }
}
