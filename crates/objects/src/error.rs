use thiserror::Error;

/// What reading or writing an object can fail on, each naming the object.
#[derive(Debug, Error)]
pub enum ObjectError {
    #[error("{uri}: {reason}")]
    Request { uri: String, reason: String },
    #[error("{uri}: S3 answered {status}: {body}")]
    Status { uri: String, status: u16, body: String },
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setting(String),
}

pub type Result<T, E = ObjectError> = std::result::Result<T, E>;
