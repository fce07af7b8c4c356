use thiserror::Error;

/// What reading traffic or judging drift can fail on.
#[derive(Debug, Error)]
pub enum TrafficError {
    #[error(transparent)]
    Store(#[from] registry::RegistryError),
    #[error(transparent)]
    Plot(#[from] scoring::ScoringError),
    #[error("{0}")]
    Profile(String),
}

pub type Result<T, E = TrafficError> = std::result::Result<T, E>;
