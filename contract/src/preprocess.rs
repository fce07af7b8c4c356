//! Bytes of any supported image -> the model's uint8 32x32 RGB input. The trainer
//! loads image folders through this too, so training and serving see the same pixels.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits, imageops::FilterType};

use crate::{IMAGE_BYTES, IMAGE_SIDE, ImageError};

/// One preprocessed image: 32x32 RGB, row-major HWC.
pub type Rgb32 = [u8; IMAGE_BYTES];

/// Decompression-bomb guards. The header's dimensions are checked before any pixel
/// is decoded, and `max_alloc` caps what the decoder may allocate.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    pub max_side: u32,
    pub max_pixels: u64,
    pub max_alloc: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_side: 8192,
            max_pixels: 40_000_000,
            max_alloc: 512 << 20,
        }
    }
}

/// Resampling filter for downscaling: triangle (bilinear) widens its support with the
/// scale factor, so a large photo is area-averaged rather than aliased.
pub const RESIZE_FILTER: FilterType = FilterType::Triangle;

const SUPPORTED: [ImageFormat; 5] = [
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Bmp,
];

/// Decode, flatten alpha onto white, convert to RGB and resize to 32x32.
pub fn decode_rgb32(bytes: &[u8], limits: &DecodeLimits) -> Result<Rgb32, ImageError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let format = reader.format().ok_or(ImageError::UnknownFormat)?;
    if !SUPPORTED.contains(&format) {
        return Err(ImageError::Unsupported(format!("{format:?}")));
    }
    let (width, height) = reader.into_dimensions().map_err(map_err)?;
    if width == 0 || height == 0 {
        return Err(ImageError::Empty);
    }
    if width > limits.max_side || height > limits.max_side || u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(ImageError::TooLarge {
            width,
            height,
            max: limits.max_side,
        });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut decode_limits = Limits::default();
    decode_limits.max_image_width = Some(limits.max_side);
    decode_limits.max_image_height = Some(limits.max_side);
    decode_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(decode_limits);
    let image = reader.decode().map_err(map_err)?;
    Ok(to_rgb32(image))
}

fn map_err(e: image::ImageError) -> ImageError {
    match e {
        image::ImageError::Unsupported(u) => ImageError::Unsupported(u.to_string()),
        image::ImageError::Limits(l) => ImageError::Corrupt(format!("decoder limit reached: {l}")),
        other => ImageError::Corrupt(other.to_string()),
    }
}

/// Flatten alpha onto white (transparent pixels would otherwise read as black), then resize.
pub fn to_rgb32(image: DynamicImage) -> Rgb32 {
    let rgb = if image.color().has_alpha() {
        let rgba = image.into_rgba8();
        let (w, h) = rgba.dimensions();
        let mut out = image::RgbImage::new(w, h);
        for (o, p) in out.pixels_mut().zip(rgba.pixels()) {
            let a = u32::from(p[3]);
            for c in 0..3 {
                o[c] = ((u32::from(p[c]) * a + 255 * (255 - a) + 127) / 255) as u8;
            }
        }
        out
    } else {
        image.into_rgb8()
    };
    let side = IMAGE_SIDE as u32;
    let rgb = if rgb.dimensions() == (side, side) {
        rgb
    } else {
        image::imageops::resize(&rgb, side, side, RESIZE_FILTER)
    };
    let mut out = [0u8; IMAGE_BYTES];
    out.copy_from_slice(rgb.as_raw());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, RgbImage, Rgba};

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, format).unwrap();
        buf.into_inner()
    }

    #[test]
    fn png_32x32_is_passed_through_exactly() {
        let img = RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 7]));
        let out = decode_rgb32(&encode(img.clone().into(), ImageFormat::Png), &DecodeLimits::default()).unwrap();
        assert_eq!(&out[..], img.as_raw().as_slice());
    }

    #[test]
    fn large_image_is_resized_and_transparent_is_white() {
        let img = ImageBuffer::from_pixel(300, 200, Rgba([10u8, 20, 30, 0]));
        let out = decode_rgb32(&encode(img.into(), ImageFormat::Png), &DecodeLimits::default()).unwrap();
        assert!(out.iter().all(|&v| v == 255));
    }

    #[test]
    fn bad_inputs_get_specific_errors() {
        let limits = DecodeLimits::default();
        assert!(matches!(
            decode_rgb32(b"hello world", &limits),
            Err(ImageError::UnknownFormat)
        ));
        let png = encode(RgbImage::new(64, 64).into(), ImageFormat::Png);
        assert!(matches!(
            decode_rgb32(&png[..png.len() / 2], &limits),
            Err(ImageError::Corrupt(_))
        ));
        let small = DecodeLimits { max_side: 16, ..limits };
        assert!(matches!(
            decode_rgb32(&png, &small),
            Err(ImageError::TooLarge { width: 64, .. })
        ));
        let tiff_magic = b"II*\0\x08\0\0\0rest-of-a-tiff";
        assert!(matches!(
            decode_rgb32(tiff_magic, &limits),
            Err(ImageError::Unsupported(_))
        ));
    }
}
