use thiserror::Error;

/// Why an image could not be turned into model input. Each maps to a 4xx at the API.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error("the bytes are not an image in a supported format (PNG, JPEG, WebP, GIF, BMP)")]
    UnknownFormat,
    #[error(
        "image format {0} is not supported; send PNG, JPEG, WebP, GIF or BMP (on a phone, share or export the photo as JPEG)"
    )]
    Unsupported(String),
    #[error("image is {width}x{height}, above the limit of {max}x{max} pixels per side")]
    TooLarge { width: u32, height: u32, max: u32 },
    #[error("image could not be decoded (truncated or corrupt): {0}")]
    Corrupt(String),
    #[error("image is empty (0 pixels)")]
    Empty,
}

/// Why a model file cannot be served.
#[derive(Debug, Error)]
pub enum ContractError {
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
