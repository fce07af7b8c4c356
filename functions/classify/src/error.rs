use thiserror::Error;

/// A request the API refuses, with the status and the stable `code` clients switch on.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// The image error of item `index` (batch position, when there is a batch).
    pub fn from_image(err: contract::ImageError, index: Option<usize>) -> Self {
        use contract::ImageError::*;
        let at = index.map(|i| format!("images[{i}]: ")).unwrap_or_default();
        let (status, code) = match &err {
            UnknownFormat => (400, "invalid_image"),
            Unsupported(_) => (415, "unsupported_image_format"),
            TooLarge { .. } => (413, "image_too_large"),
            Corrupt(_) | Empty => (400, "invalid_image"),
        };
        Self::new(status, code, format!("{at}{err}"))
    }
}

/// Why the function cannot start; logged once at init, with the URI.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("MODEL_URI is invalid: {0}")]
    Uri(String),
    #[error("reading {uri}: {reason}")]
    Fetch { uri: String, reason: String },
    #[error("pointer {uri} is not a model pointer: {reason}")]
    Pointer { uri: String, reason: String },
    #[error("{uri}: sha256 {actual} does not match the pointer's {expected}")]
    Checksum {
        uri: String,
        expected: String,
        actual: String,
    },
    #[error("{uri}: {source}")]
    Model {
        uri: String,
        source: contract::ContractError,
    },
    #[error("setting {name}={value} is invalid: {reason}")]
    Setting {
        name: &'static str,
        value: String,
        reason: String,
    },
}
