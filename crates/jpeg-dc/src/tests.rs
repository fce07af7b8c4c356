//! Checked against jpeg-decoder's own 1/8 scale on files written by jpeg-encoder and libjpeg.

use super::*;
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

/// Gradients, blocky shapes and noise, so DC values, AC runs and chroma all vary.
fn picture(w: usize, h: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % 40) as usize;
            let disc = ((x as i64 - 400).pow(2) + (y as i64 - 300).pow(2)) < 200 * 200;
            out.extend([
                ((x * 255 / w + n) % 256) as u8,
                if disc { 220 } else { ((y * 255 / h) % 256) as u8 },
                (((x / 37 + y / 23) % 5) * 50 + n) as u8,
            ]);
        }
    }
    out
}

fn encode(rgb: &[u8], w: usize, h: usize, sampling: SamplingFactor, progressive: bool, restart: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = Encoder::new(&mut out, 80);
    enc.set_sampling_factor(sampling);
    enc.set_progressive(progressive);
    enc.set_restart_interval(restart);
    enc.encode(rgb, w as u16, h as u16, ColorType::Rgb).unwrap();
    out
}

fn gray(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks(3).map(|p| p[1]).collect()
}

/// jpeg-decoder at its 1/8 scale, as RGB.
fn reference(jpeg: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut d = jpeg_decoder::Decoder::new(jpeg);
    d.read_info().unwrap();
    let info = d.info().unwrap();
    let (w, h) = d.scale(info.width.div_ceil(8), info.height.div_ceil(8)).unwrap();
    let px = d.decode().unwrap();
    let rgb = match d.info().unwrap().pixel_format {
        jpeg_decoder::PixelFormat::L8 => px.iter().flat_map(|&l| [l, l, l]).collect(),
        jpeg_decoder::PixelFormat::RGB24 => px,
        other => panic!("{other:?}"),
    };
    (u32::from(w), u32::from(h), rgb)
}

fn compare(jpeg: &[u8], what: &str, max_mean: f64, max_abs: u8) {
    let ours = decode(jpeg, u64::MAX).unwrap_or_else(|| panic!("{what}: fell back"));
    let (w, h, want) = reference(jpeg);
    assert_eq!((ours.width, ours.height), (w, h), "{what}");
    let diffs: Vec<u8> = ours.rgb.iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).collect();
    let mean = diffs.iter().map(|&d| f64::from(d)).sum::<f64>() / diffs.len() as f64;
    let max = diffs.iter().copied().max().unwrap();
    assert!(mean <= max_mean && max <= max_abs, "{what}: mean {mean:.3}, max {max}");
}

#[test]
fn matches_jpeg_decoders_eighth_scale() {
    // Sides that are not multiples of the MCU, so partial MCUs and padding blocks occur.
    let (w, h) = (1037, 771);
    let rgb = picture(w, h);
    // Full-resolution chroma: the same values but for jpeg-decoder's SIMD colour
    // conversion, which rounds at lower precision than its scalar code (and this).
    for (progressive, restart) in [(false, 0), (false, 7), (true, 0), (true, 5)] {
        let jpeg = encode(&rgb, w, h, SamplingFactor::F_1_1, progressive, restart);
        compare(
            &jpeg,
            &format!("4:4:4 progressive {progressive} restart {restart}"),
            0.05,
            1,
        );
        assert_eq!(dimensions(&jpeg), Some((w as u32, h as u32)));
    }
    // Subsampled chroma, upsampled the same way (4:1:1 by repetition in both).
    for sampling in [
        SamplingFactor::F_2_2,
        SamplingFactor::F_2_1,
        SamplingFactor::F_1_2,
        SamplingFactor::F_4_1,
    ] {
        for (progressive, restart) in [(false, 0), (false, 3), (true, 2)] {
            let jpeg = encode(&rgb, w, h, sampling, progressive, restart);
            compare(
                &jpeg,
                &format!("{sampling:?} progressive {progressive} restart {restart}"),
                0.05,
                1,
            );
        }
    }
    // Quality 100: blocks coded to their last position (no end-of-block code) and long
    // codes, the skip loop's slow paths.
    let mut jpeg = Vec::new();
    let mut enc = Encoder::new(&mut jpeg, 100);
    enc.set_sampling_factor(SamplingFactor::F_2_2);
    enc.set_restart_interval(6);
    enc.encode(&rgb, w as u16, h as u16, ColorType::Rgb).unwrap();
    compare(&jpeg, "quality 100, 4:2:0, restart 6", 0.05, 1);
    // Greyscale.
    for (progressive, restart) in [(false, 0), (true, 4)] {
        let mut jpeg = Vec::new();
        let mut enc = Encoder::new(&mut jpeg, 80);
        enc.set_progressive(progressive);
        enc.set_restart_interval(restart);
        enc.encode(&gray(&rgb), w as u16, h as u16, ColorType::Luma).unwrap();
        compare(&jpeg, &format!("grey progressive {progressive}"), 0.0, 0);
    }
}

#[test]
fn dimensions_come_from_the_frame_header() {
    let jpeg = encode(&picture(53, 29), 53, 29, SamplingFactor::F_2_2, true, 0);
    assert_eq!(dimensions(&jpeg), Some((53, 29)));
    let sof = jpeg.windows(2).position(|m| m == [0xFF, 0xC2]).unwrap();
    // Cut inside the frame header, or with no frame header before the scan.
    assert_eq!(dimensions(&jpeg[..sof + 6]), None);
    let mut no_frame = jpeg.clone();
    no_frame[sof + 1] = 0xDA;
    assert_eq!(dimensions(&no_frame), None);
    assert_eq!(dimensions(b"not a jpeg"), None);
    assert_eq!(dimensions(&[0xFF, 0xD8]), None);
}

#[test]
fn libjpeg_files_match_too() {
    // Written by Pillow's libjpeg: another encoder's tables, padding and restart
    // markers, at sides (40x24) that leave partial MCUs. The fuzzer starts from them.
    let seeds = [
        &include_bytes!("../fuzz/seeds/baseline-420.jpg")[..],
        include_bytes!("../fuzz/seeds/baseline-422.jpg"),
        include_bytes!("../fuzz/seeds/baseline-444.jpg"),
        include_bytes!("../fuzz/seeds/progressive-420.jpg"),
        include_bytes!("../fuzz/seeds/grey-progressive.jpg"),
        include_bytes!("../fuzz/seeds/restart-420.jpg"),
    ];
    for (i, jpeg) in seeds.iter().enumerate() {
        compare(jpeg, &format!("libjpeg seed {i}"), 0.5, 1);
    }
}

#[test]
fn the_exif_payload_is_found() {
    let rgb = picture(64, 48);
    let mut jpeg = Vec::new();
    let mut enc = Encoder::new(&mut jpeg, 80);
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(b"MM\0\x2a\0\0\0\x08\0\0");
    enc.add_app_segment(1, exif.clone()).unwrap();
    enc.encode(&rgb, 64, 48, ColorType::Rgb).unwrap();
    assert_eq!(decode(&jpeg, u64::MAX).unwrap().exif, Some(&exif[6..]));
}

#[test]
fn cmyk_falls_back_and_damaged_files_never_panic() {
    let (w, h) = (96, 80);
    let mut cmyk = Vec::new();
    Encoder::new(&mut cmyk, 80)
        .encode(&vec![100u8; w * h * 4], w as u16, h as u16, ColorType::Cmyk)
        .unwrap();
    assert_eq!(decode(&cmyk, u64::MAX), None);
    // Found by the fuzzer: a frame far larger than its scan's data, once decoded to
    // the end on zero bits until a counter overflowed.
    let overrun = include_bytes!("../fuzz/seeds/regression-scan-past-its-data.jpg");
    assert_eq!(decode(overrun, u64::MAX), None);
    assert_eq!(decode(b"not a jpeg", u64::MAX), None);
    let rgb = picture(w, h);
    for (progressive, restart) in [(false, 0), (false, 2), (true, 0)] {
        let jpeg = encode(&rgb, w, h, SamplingFactor::F_2_2, progressive, restart);
        assert!(decode(&jpeg, u64::MAX).is_some());
        assert_eq!(decode(&jpeg, (w * h - 1) as u64), None, "larger than the limit");
        let mut state = 0x2545_F491u64;
        for cut in (0..jpeg.len()).step_by(7) {
            let _ = decode(&jpeg[..cut], u64::MAX);
        }
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bad = jpeg.clone();
            let i = (state % bad.len() as u64) as usize;
            bad[i] = (state >> 32) as u8;
            let _ = decode(&bad, u64::MAX);
        }
    }
}
