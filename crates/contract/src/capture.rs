//! What the function keeps of real traffic, and what the trainer reads back. A capture
//! record: the 32x32 image the model saw (lossless), the answer, the model and the
//! request; one JSON line per image on stdout, marked by its top-level `capture` field,
//! which the stack's log subscription matches. A feedback record: a user's correction,
//! one JSON object under `feedback/`. Never the upload, its headers, the caller's address
//! or token.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::{IMAGE_SIDE, Rgb32};

/// The format version, and the field that marks a capture line.
pub const CAPTURE_VERSION: u32 = 1;

/// One captured image and what the model answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureRecord {
    /// [`CAPTURE_VERSION`]; its presence is what makes a log line a capture.
    pub capture: u32,
    /// The request's id, as in `x-request-id`: what feedback names.
    pub request_id: String,
    /// The image's place in the request (0 for a single image).
    pub index: usize,
    /// RFC 3339 UTC.
    pub time: String,
    /// The model that answered, and which of the pointer's it was.
    pub model_version: String,
    pub variant: String,
    /// The answer: its label (none when it abstained under `min_probability`), and the
    /// top class with its probability whether or not it abstained.
    pub label: Option<String>,
    pub top1: String,
    pub probability: f32,
    /// The 32x32 RGB image the model saw, as a base64 PNG.
    pub image: String,
}

/// Why a capture record's image cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("image is not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("image is not a PNG: {0}")]
    Png(#[from] image::ImageError),
    #[error("image is {0}x{1}, not {IMAGE_SIDE}x{IMAGE_SIDE}")]
    Size(u32, u32),
}

/// The model's input as a base64 PNG: lossless, about 3 KB for a photo.
pub fn encode_image(pixels: &Rgb32) -> String {
    let img = image::RgbImage::from_raw(IMAGE_SIDE as u32, IMAGE_SIDE as u32, pixels.to_vec()).expect("32x32x3 bytes");
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("PNG into memory");
    STANDARD.encode(out.into_inner())
}

/// The pixels of an image field written by [`encode_image`].
pub fn decode_image(field: &str) -> Result<Rgb32, CaptureError> {
    let bytes = STANDARD.decode(field)?;
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)?.into_rgb8();
    if img.dimensions() != (IMAGE_SIDE as u32, IMAGE_SIDE as u32) {
        return Err(CaptureError::Size(img.width(), img.height()));
    }
    let mut out = [0u8; crate::IMAGE_BYTES];
    out.copy_from_slice(img.as_raw());
    Ok(out)
}

impl CaptureRecord {
    pub fn pixels(&self) -> Result<Rgb32, CaptureError> {
        decode_image(&self.image)
    }
}

/// The format version of a stored correction.
pub const FEEDBACK_VERSION: u32 = 1;

/// A user's correction (`POST /feedback`), as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackRecord {
    /// [`FEEDBACK_VERSION`].
    pub feedback: u32,
    /// The correction's own id (its request's).
    pub id: String,
    /// RFC 3339 UTC.
    pub time: String,
    /// What the image is, one of the model's labels.
    pub label: String,
    /// The captured prediction it corrects, or else
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// the image itself, as [`encode_image`] writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The model serving when the correction arrived.
    pub model_version: String,
}

/// Where a correction is stored under the feedback prefix: by day, then by its id.
pub fn feedback_key(time: &str, id: &str) -> String {
    let day = time.get(..10).unwrap_or("unknown-day");
    format!("{day}/{id}.json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_round_trips_losslessly() {
        let mut pixels = [0u8; crate::IMAGE_BYTES];
        for (i, p) in pixels.iter_mut().enumerate() {
            *p = (i * 7 % 251) as u8;
        }
        let field = encode_image(&pixels);
        assert_eq!(decode_image(&field).unwrap(), pixels);
        assert!(field.len() < 6000, "{} bytes", field.len());
        assert!(matches!(decode_image("not base64!"), Err(CaptureError::Base64(_))));
        let big = {
            let mut out = std::io::Cursor::new(Vec::new());
            image::RgbImage::new(8, 8)
                .write_to(&mut out, image::ImageFormat::Png)
                .unwrap();
            STANDARD.encode(out.into_inner())
        };
        assert!(matches!(decode_image(&big), Err(CaptureError::Size(8, 8))));
    }
}
