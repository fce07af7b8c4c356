use thiserror::Error;

/// Why a model file cannot be served.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("not a valid ONNX model: {0}")]
    Parse(String),
    #[error("model metadata `{0}` is missing")]
    MissingMetadata(&'static str),
    #[error("model metadata `{key}` is invalid: {reason}")]
    BadMetadata { key: &'static str, reason: String },
    #[error("model does not follow the contract: {0}")]
    Contract(String),
    #[error("inference failed: {0}")]
    Inference(String),
}
