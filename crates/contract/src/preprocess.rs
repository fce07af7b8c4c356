//! Bytes of any supported image -> the model's uint8 32x32 RGB input. The trainer
//! loads image folders through this too, so training and serving see the same pixels.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, imageops::FilterType};

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

/// A JPEG whose sides are both at least twice this many pixels is decoded at a reduced DCT
/// scale (1/2, 1/4 or 1/8) that still leaves at least this many on each side for the
/// resize filter: a 12 MP phone photo decodes at 504x378 instead of 4032x3024. At 1/8
/// (sides of at least 8x this) only the DC coefficients are needed (`jpeg_dc`).
/// Smaller JPEGs (the training set's included) take the ordinary full-size path.
pub const JPEG_SCALED_MIN_SIDE: u16 = 4 * IMAGE_SIDE as u16;

/// Decode, apply the EXIF orientation, flatten alpha onto white, convert to RGB and
/// resize to 32x32.
pub fn decode_rgb32(bytes: &[u8], limits: &DecodeLimits) -> Result<Rgb32, ImageError> {
    if let Some(name) = unsupported_container(bytes) {
        return Err(ImageError::Unsupported(name.into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let format = reader.format().ok_or(ImageError::UnknownFormat)?;
    if !SUPPORTED.contains(&format) {
        return Err(ImageError::Unsupported(format!("{format:?}")));
    }
    // image's JPEG decoder copies the whole file to read its header (about 1 ms for a
    // 3.6 MB photo); the frame header gives the same size from a few bytes.
    let (width, height) = match jpeg_dc::dimensions(bytes).filter(|_| format == ImageFormat::Jpeg) {
        Some(size) => size,
        None => reader.into_dimensions().map_err(map_err)?,
    };
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
    let min_side = u32::from(JPEG_SCALED_MIN_SIDE);
    let jpeg_dc = (format == ImageFormat::Jpeg && width >= 8 * min_side && height >= 8 * min_side)
        .then(|| jpeg_dc::decode(bytes, limits.max_pixels))
        .flatten();
    let (mut image, orientation) = if let Some(dc) = jpeg_dc {
        let rgb = image::RgbImage::from_raw(dc.width, dc.height, dc.rgb).ok_or_else(fewer_pixels)?;
        (DynamicImage::ImageRgb8(rgb), exif_orientation(dc.exif))
    } else if format == ImageFormat::Jpeg && width >= 2 * min_side && height >= 2 * min_side {
        decode_jpeg_scaled(bytes, limits)?
    } else {
        let mut decoder = reader.into_decoder().map_err(map_err)?;
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        (DynamicImage::from_decoder(decoder).map_err(map_err)?, orientation)
    };
    image.apply_orientation(orientation);
    Ok(to_rgb32(image))
}

/// Formats phones send that we cannot decode, named from their ISO-BMFF `ftyp` brand
/// (HEIC/HEIF and AVIF share the container), so the client is told what it sent.
fn unsupported_container(bytes: &[u8]) -> Option<&'static str> {
    if bytes.len() < 12 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    match &bytes[8..12] {
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1" => Some("HEIC/HEIF"),
        b"avif" | b"avis" => Some("AVIF"),
        _ => None,
    }
}

/// The orientation an EXIF payload records. A missing or unreadable tag means "as
/// stored", which is what cameras without one mean.
fn exif_orientation(exif: Option<&[u8]>) -> Orientation {
    exif.and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms)
}

fn fewer_pixels() -> ImageError {
    ImageError::Corrupt("JPEG decoded to fewer pixels than its header says".into())
}

/// A large JPEG decoded at the smallest DCT scale that keeps [`JPEG_SCALED_MIN_SIDE`]
/// pixels on each side: the IDCT of 1/8 of the coefficients, an 8x8 block average,
/// for a fraction of the work and memory of a full decode. Returns the EXIF orientation
/// from the same parse.
fn decode_jpeg_scaled(bytes: &[u8], limits: &DecodeLimits) -> Result<(DynamicImage, Orientation), ImageError> {
    use jpeg_decoder::{Decoder, PixelFormat};
    let corrupt = |e: jpeg_decoder::Error| ImageError::Corrupt(e.to_string());
    let mut decoder = Decoder::new(Cursor::new(bytes));
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_alloc).unwrap_or(usize::MAX));
    decoder.read_info().map_err(corrupt)?;
    let orientation = exif_orientation(decoder.exif_data());
    let (w, h) = decoder
        .scale(JPEG_SCALED_MIN_SIDE, JPEG_SCALED_MIN_SIDE)
        .map_err(corrupt)?;
    let pixels = decoder.decode().map_err(corrupt)?;
    let info = decoder
        .info()
        .ok_or_else(|| ImageError::Corrupt("JPEG header unreadable".into()))?;
    let (w, h) = (u32::from(w), u32::from(h));
    let image = match info.pixel_format {
        PixelFormat::RGB24 => {
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels).ok_or_else(fewer_pixels)?)
        }
        PixelFormat::L8 => DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, pixels).ok_or_else(fewer_pixels)?),
        PixelFormat::L16 => {
            let wide = pixels
                .chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .collect();
            DynamicImage::ImageLuma16(image::ImageBuffer::from_raw(w, h, wide).ok_or_else(fewer_pixels)?)
        }
        PixelFormat::CMYK32 => {
            // Adobe JPEGs store inverted CMYK; jpeg-decoder hands it back as stored.
            let rgb = pixels
                .chunks_exact(4)
                .flat_map(|p| {
                    let k = u32::from(p[3]);
                    [0, 1, 2].map(|c| (u32::from(p[c]) * k / 255) as u8)
                })
                .collect();
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, rgb).ok_or_else(fewer_pixels)?)
        }
    };
    Ok((image, orientation))
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
        resize_triangle(&rgb, side, side)
    };
    let mut out = [0u8; IMAGE_BYTES];
    out.copy_from_slice(rgb.as_raw());
    out
}

/// `image::imageops::resize(rgb, nw, nh, RESIZE_FILTER)`, bit for bit: the same taps,
/// weights and f32 operations in the same order, but the vertical pass runs along whole
/// rows, which vectorises; image's per-pixel generic loop took 0.7 ms of a 12 MP photo's
/// 13 ms (its 504x378 DC image to 32x32).
fn resize_triangle(rgb: &image::RgbImage, nw: u32, nh: u32) -> image::RgbImage {
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return image::RgbImage::new(nw, nh);
    }
    let row = w as usize * 3;
    let mut ws = Vec::new();
    let mut tmp = vec![0f32; row * nh as usize];
    for (oy, acc) in tmp.chunks_exact_mut(row).enumerate() {
        let top = triangle_taps(oy as u32, h, nh, &mut ws);
        for (i, &wt) in ws.iter().enumerate() {
            let src = &rgb.as_raw()[(top + i) * row..][..row];
            for (a, &p) in acc.iter_mut().zip(src) {
                *a += f32::from(p) * wt;
            }
        }
    }
    let mut out = image::RgbImage::new(nw, nh);
    for ox in 0..nw {
        let left = triangle_taps(ox, w, nw, &mut ws);
        for (y, acc) in tmp.chunks_exact(row).enumerate() {
            let mut t = [0f32; 3];
            for (i, &wt) in ws.iter().enumerate() {
                let p = &acc[(left + i) * 3..][..3];
                for c in 0..3 {
                    t[c] += p[c] * wt;
                }
            }
            let px = out.get_pixel_mut(ox, y as u32);
            for c in 0..3 {
                px[c] = t[c].clamp(0.0, 255.0).round() as u8;
            }
        }
    }
    out
}

/// The first input index and normalised weights of output position `out`, as image's
/// resampler computes them for a kernel of support 1 (widened by the scale factor).
fn triangle_taps(out: u32, len_in: u32, len_out: u32, ws: &mut Vec<f32>) -> usize {
    let ratio = len_in as f32 / len_out as f32;
    let sratio = if ratio < 1.0 { 1.0 } else { ratio };
    let centre = (out as f32 + 0.5) * ratio;
    let left = ((centre - sratio).floor() as i64).clamp(0, i64::from(len_in) - 1);
    let right = ((centre + sratio).ceil() as i64).clamp(left + 1, i64::from(len_in));
    let centre = centre - 0.5;
    ws.clear();
    let mut sum = 0.0;
    for i in left..right {
        let x = ((i as f32 - centre) / sratio).abs();
        let w = if x < 1.0 { 1.0 - x } else { 0.0 };
        ws.push(w);
        sum += w;
    }
    for w in ws.iter_mut() {
        *w /= sum;
    }
    left as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_row_resize_is_images_triangle_resize_bit_for_bit() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let sizes = [
            (504, 378),
            (378, 504),
            (200, 150),
            (33, 32),
            (32, 47),
            (31, 20),
            (5, 3),
            (1, 1),
            (1000, 7),
            (64, 64),
        ];
        for (w, h) in sizes {
            let rgb = image::RgbImage::from_fn(w, h, |x, y| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Noise over a gradient, with runs of 0 and 255 for the clamp.
                let n = (state % 96) as u32;
                let v = |c: u32| ((x * 7 + y * 3 + c * 50 + n) % 320).min(255) as u8;
                image::Rgb([v(0), v(1), v(2)])
            });
            for (nw, nh) in [(32, 32), (17, 9), (w * 2, h), (1, 1)] {
                assert_eq!(
                    resize_triangle(&rgb, nw, nh),
                    image::imageops::resize(&rgb, nw, nh, RESIZE_FILTER),
                    "{w}x{h} to {nw}x{nh}"
                );
            }
        }
        assert_eq!(
            resize_triangle(&image::RgbImage::new(0, 5), 32, 32),
            image::RgbImage::new(32, 32)
        );
    }
    use image::{ImageBuffer, RgbImage, Rgba};

    fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        img.write_to(&mut buf, format).unwrap();
        buf.into_inner()
    }

    /// Many frames are no bomb: only the first is decoded, so a 5,000-frame GIF costs what
    /// its first frame costs.
    #[test]
    fn only_the_first_gif_frame_is_decoded() {
        let mut gif = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut gif, 30);
            for k in 0..5_000u32 {
                let frame = image::RgbaImage::from_pixel(16, 16, Rgba([(k % 251) as u8, 0, 0, 255]));
                enc.encode_frame(image::Frame::new(frame)).unwrap();
            }
        }
        let img = decode_rgb32(&gif, &DecodeLimits::default()).unwrap();
        // Frame 0 is black; the last (4,999 % 251 = 230) would be red.
        assert_eq!(&img[..3], &[0, 0, 0], "the first frame's colour");
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

    /// A JPEG with an APP1 EXIF segment carrying only the Orientation tag.
    fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
        let mut jpeg = Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(img)
            .unwrap();
        let jpeg = jpeg.into_inner();
        // TIFF header (big-endian), one IFD entry: tag 0x0112, SHORT, count 1, value.
        let mut tiff = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
        tiff.extend(orientation.to_be_bytes());
        tiff.extend([0, 0, 0, 0, 0, 0]);
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend([0xFF, 0xE1]);
        out.extend(((app1.len() + 2) as u16).to_be_bytes());
        out.extend(app1);
        out.extend(&jpeg[2..]);
        out
    }

    /// Which of red, green, blue, white a pixel is closest to.
    fn colour(p: &[u8]) -> char {
        let refs = [
            ('R', [255, 0, 0]),
            ('G', [0, 255, 0]),
            ('B', [0, 0, 255]),
            ('W', [255, 255, 255]),
        ];
        refs.iter()
            .min_by_key(|(_, c)| (0..3).map(|i| (i32::from(p[i]) - c[i]).abs()).sum::<i32>())
            .unwrap()
            .0
    }

    #[test]
    fn every_exif_orientation_is_applied_before_the_resize() {
        // Stored quadrants R G / B W; each row: the quadrants after the tag's transform.
        let expected = [
            (1, "RGBW"),
            (2, "GRWB"),
            (3, "WBGR"),
            (4, "BWRG"),
            (5, "RBGW"),
            (6, "BRWG"),
            (7, "WGBR"),
            (8, "GWRB"),
        ];
        // 64 px takes the ordinary decoder, 256 px jpeg-decoder's DCT scaling, 1024 px the
        // DC-only decoder.
        for side in [64u32, 256, 1024] {
            let half = side / 2;
            let img = RgbImage::from_fn(side, side, |x, y| {
                image::Rgb(match (x < half, y < half) {
                    (true, true) => [255, 0, 0],
                    (false, true) => [0, 255, 0],
                    (true, false) => [0, 0, 255],
                    (false, false) => [255, 255, 255],
                })
            });
            for (tag, quadrants) in expected {
                let out = decode_rgb32(&jpeg_with_orientation(&img, tag), &DecodeLimits::default()).unwrap();
                let at = |x: usize, y: usize| colour(&out[(y * IMAGE_SIDE + x) * 3..][..3]);
                let got: String = [at(8, 8), at(24, 8), at(8, 24), at(24, 24)].iter().collect();
                assert_eq!(got, quadrants, "orientation {tag} at {side} px");
            }
        }
    }

    #[test]
    fn a_large_jpeg_decoded_at_reduced_scale_matches_the_full_decode() {
        let img = RgbImage::from_fn(2048, 1536, |x, y| {
            let (fx, fy) = (x as f32 / 2048.0, y as f32 / 1536.0);
            image::Rgb([
                (255.0 * fx) as u8,
                (255.0 * fy) as u8,
                (128.0 + 100.0 * (fx * 9.0).sin() * (fy * 7.0).cos()) as u8,
            ])
        });
        let jpeg = encode(img.into(), ImageFormat::Jpeg);
        let scaled = decode_rgb32(&jpeg, &DecodeLimits::default()).unwrap();
        let full = to_rgb32(image::load_from_memory(&jpeg).unwrap());
        let mean_abs: f64 = scaled
            .iter()
            .zip(full.iter())
            .map(|(a, b)| f64::from((i16::from(*a) - i16::from(*b)).abs()))
            .sum::<f64>()
            / scaled.len() as f64;
        assert!(mean_abs < 2.0, "mean |scaled - full| = {mean_abs}");
    }

    #[test]
    fn heic_and_avif_are_named_in_the_error() {
        for (brand, name) in [(&b"heic"[..], "HEIC/HEIF"), (b"mif1", "HEIC/HEIF"), (b"avif", "AVIF")] {
            let mut bytes = b"\0\0\0\x18ftyp".to_vec();
            bytes.extend(brand);
            bytes.extend([0u8; 40]);
            match decode_rgb32(&bytes, &DecodeLimits::default()) {
                Err(ImageError::Unsupported(n)) => assert_eq!(n, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// Headers that claim huge images, a few dozen bytes each: each must be refused as
    /// too large from its header, before any pixel buffer is allocated.
    #[test]
    fn decompression_bombs_of_every_format_are_refused_from_the_header() {
        let (w, h) = (30_000u32, 30_000u32);
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        let mut ihdr = w.to_be_bytes().to_vec();
        ihdr.extend(h.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        png.extend(&ihdr);
        png.extend(crc32(&[b"IHDR".as_slice(), &ihdr].concat()).to_be_bytes());
        png.extend(b"\0\0\0\0IDAT");
        png.extend(crc32(b"IDAT").to_be_bytes());
        png.extend(b"\0\0\0\0IEND\xaeB`\x82");

        let mut gif = b"GIF89a".to_vec();
        gif.extend((w as u16 * 2).to_le_bytes());
        gif.extend((h as u16 * 2).to_le_bytes());
        gif.extend([0, 0, 0, 0x2C, 0, 0, 0, 0]);
        gif.extend((w as u16 * 2).to_le_bytes());
        gif.extend((h as u16 * 2).to_le_bytes());
        gif.extend([0, 2, 2, 0x44, 0x01, 0, 0x3B]);

        let mut bmp = b"BM".to_vec();
        bmp.extend(1000u32.to_le_bytes());
        bmp.extend([0, 0, 0, 0]);
        bmp.extend(54u32.to_le_bytes());
        bmp.extend(40u32.to_le_bytes());
        bmp.extend((w as i32).to_le_bytes());
        bmp.extend((h as i32).to_le_bytes());
        bmp.extend(1u16.to_le_bytes());
        bmp.extend(24u16.to_le_bytes());
        bmp.extend([0u8; 24]);
        bmp.extend([0u8; 64]);

        // Extended WebP: a VP8X canvas and a lossless frame header, both 16384x16384.
        let mut body = b"WEBPVP8X".to_vec();
        body.extend(10u32.to_le_bytes());
        body.extend([0, 0, 0, 0]);
        body.extend(&(16_383u32).to_le_bytes()[..3]);
        body.extend(&(16_383u32).to_le_bytes()[..3]);
        body.extend(b"VP8L");
        body.extend(16u32.to_le_bytes());
        body.push(0x2F);
        body.extend((0x3FFFu32 | (0x3FFF << 14)).to_le_bytes());
        body.extend([0u8; 11]);
        let mut webp = b"RIFF".to_vec();
        webp.extend((body.len() as u32).to_le_bytes());
        webp.extend(body);

        // A baseline JPEG: quantisation and Huffman tables from a real 8x8 file, its frame
        // header rewritten to claim 30000x30000.
        let mut jpeg = encode(RgbImage::new(8, 8).into(), ImageFormat::Jpeg);
        let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC0]).expect("SOF0");
        jpeg[sof + 5..sof + 7].copy_from_slice(&(h as u16).to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&(w as u16).to_be_bytes());

        let limits = DecodeLimits::default();
        for (name, bytes) in [("PNG", png), ("GIF", gif), ("BMP", bmp), ("WebP", webp), ("JPEG", jpeg)] {
            match decode_rgb32(&bytes, &limits) {
                Err(ImageError::TooLarge { width, height, .. }) => {
                    assert!(
                        width > limits.max_side || height > limits.max_side,
                        "{name}: {width}x{height}"
                    )
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
