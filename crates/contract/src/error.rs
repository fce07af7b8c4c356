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
