use api::ErrorCode;
use thiserror::Error;

/// A request the API refuses: the stable code clients switch on (its HTTP status comes
/// with it), a message that says what to fix, and any header the answer must carry.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// `Allow` of a 405.
    pub allow: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            allow: None,
        }
    }

    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The image error of item `at` (`image`, `images[3]`; none for a raw body).
    pub fn from_image(err: contract::ImageError, at: Option<&str>) -> Self {
        use contract::ImageError::*;
        let code = match &err {
            Unsupported(_) => ErrorCode::UnsupportedImageFormat,
            TooLarge { .. } => ErrorCode::ImageTooLarge,
            UnknownFormat | Corrupt(_) | Empty => ErrorCode::InvalidImage,
        };
        let at = at.map(|a| format!("{a}: ")).unwrap_or_default();
        Self::new(code, format!("{at}{err}"))
    }
}

impl From<api::RequestError> for ApiError {
    fn from(e: api::RequestError) -> Self {
        Self::new(e.code, e.message)
    }
}

/// Why the function cannot start; logged once at init, with the URI.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("MODEL_URI is invalid: {0}")]
    Uri(String),
    #[error("reading {uri}: {reason}")]
    Fetch { uri: String, reason: String },
    /// An S3 request that failed; the error names the object.
    #[error(transparent)]
    Object(#[from] objects::ObjectError),
    #[error("pointer {uri} is not a model pointer: {reason}")]
    Pointer { uri: String, reason: String },
    #[error("{uri}: sha256 {actual} does not match the pointer's {expected}")]
    Checksum {
        uri: String,
        expected: String,
        actual: String,
    },
    #[error("{uri}: {source}")]
    Model { uri: String, source: inference::ModelError },
    #[error("{uri}: labels {new:?} differ from the serving model's {serving:?}; a new label set needs a redeploy")]
    Labels {
        uri: String,
        serving: Vec<String>,
        new: Vec<String>,
    },
    #[error("setting {name}={value} is invalid: {reason}")]
    Setting {
        name: &'static str,
        value: String,
        reason: String,
    },
}
