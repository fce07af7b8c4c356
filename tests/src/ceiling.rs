//! Peak memory of the function for the largest inputs it accepts: each request alone in a
//! fresh release process, through the Lambda runtime API on loopback.

use std::io::Cursor;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{ImageFormat, RgbImage, RgbaImage};
use serde_json::{Value, json};

use crate::soak::event;
use crate::{Service, bin, runtime_api};

/// The function's limits (its defaults): a side of 4096 and 16.7 M pixels, 4.5 MB bodies,
/// 64 images a batch.
pub const SIDE: u32 = 4096;
pub const BODY: usize = api::DEFAULT_MAX_BODY_BYTES;

fn encode(img: image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// Noise, so a JPEG of it is as large as its quality makes it.
fn noise(w: u32, h: u32, seed: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    RgbImage::from_fn(w, h, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        image::Rgb([state as u8, (state >> 8) as u8, (state >> 16) as u8])
    })
}

/// The largest JPEG under the body limit at 4096x4096: the highest quality that fits.
fn jpeg_at_limit() -> Vec<u8> {
    let img = noise(SIDE, SIDE, 1);
    for q in [60u8, 45, 30, 20, 12, 8] {
        let mut out = Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q)
            .encode_image(&img)
            .expect("jpeg");
        if out.get_ref().len() <= BODY {
            return out.into_inner();
        }
    }
    panic!("no quality fits the body limit")
}

/// `(what, event)` for each worst case.
pub fn cases() -> Vec<(String, Value)> {
    let gradient = RgbaImage::from_fn(SIDE, SIDE, |x, y| {
        image::Rgba([(x / 16) as u8, (y / 16) as u8, 128, 200])
    });
    let png = encode(gradient.clone().into(), ImageFormat::Png);
    let webp = {
        let mut out = Cursor::new(Vec::new());
        image::codecs::webp::WebPEncoder::new_lossless(&mut out)
            .encode(gradient.as_raw(), SIDE, SIDE, image::ExtendedColorType::Rgba8)
            .expect("webp");
        out.into_inner()
    };
    let gif = {
        let mut out = Vec::new();
        {
            let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 30);
            for k in 0..3u8 {
                let frame = RgbaImage::from_pixel(SIDE, SIDE, image::Rgba([k * 80, 10, 10, 255]));
                enc.encode_frame(image::Frame::new(frame)).expect("gif frame");
            }
        }
        out
    };
    let jpeg = jpeg_at_limit();
    // 64 JPEGs filling the body limit once base64'd in JSON.
    let per = (BODY / 64) * 3 / 4 - 2_000;
    let one = {
        let img = noise(512, 384, 2);
        let mut q = 90u8;
        loop {
            let mut out = Cursor::new(Vec::new());
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, q)
                .encode_image(&img)
                .expect("jpeg");
            if out.get_ref().len() <= per || q <= 5 {
                break out.into_inner();
            }
            q -= 5;
        }
    };
    let batch = json!({"images": vec![STANDARD.encode(&one); 64]}).to_string();
    vec![
        ("/health (baseline)".into(), event("GET", "/health", "", b"", false)),
        (
            format!("PNG {SIDE}x{SIDE} RGBA, {} KB", png.len() / 1000),
            event("POST", "/predict", "image/png", &png, true),
        ),
        (
            format!("JPEG {SIDE}x{SIDE} at the body limit, {} KB", jpeg.len() / 1000),
            event("POST", "/predict", "image/jpeg", &jpeg, true),
        ),
        (
            format!("WebP lossless {SIDE}x{SIDE}, {} KB", webp.len() / 1000),
            event("POST", "/predict", "image/webp", &webp, true),
        ),
        (
            format!("GIF {SIDE}x{SIDE}, 3 frames, {} KB", gif.len() / 1000),
            event("POST", "/predict", "image/gif", &gif, true),
        ),
        (
            format!("batch of 64 JPEGs 512x384, {} KB JSON", batch.len() / 1000),
            event("POST", "/predict", "application/json", batch.as_bytes(), false),
        ),
    ]
}

/// `(status code, peak RSS KiB)` of a fresh function process that answers `event`.
pub fn peak(event: Value) -> (u16, u64) {
    peak_with(event, &[])
}

/// [`peak`] with `env` added (a model pointer, say).
pub fn peak_with(event: Value, env: &[(&'static str, String)]) -> (u16, u64) {
    let (port, rx) = runtime_api::start(vec![event]);
    let work = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(bin("classify"));
    cmd.envs(runtime_api::lambda_env(port)).env("RUST_LOG", "warn");
    cmd.envs(env.iter().cloned());
    let service = Service::spawn("classify-ceiling", cmd, work.path());
    let (_, answer) = rx
        .recv_timeout(Duration::from_secs(120))
        .unwrap_or_else(|_| panic!("no answer:\n{}", service.log_text()));
    let status = answer["statusCode"].as_u64().unwrap_or(0) as u16;
    (status, crate::soak::status_kib(service.pid(), "VmHWM:"))
}

/// A loopback S3 whose pointer names the shipped model with a second one (other version,
/// same weights) as a shadow candidate on every request: both loaded, both run on each
/// image. Returns the server (kept alive by the caller) and the function's environment.
pub fn two_models(work: &std::path::Path) -> (crate::S3Server, Vec<(&'static str, String)>) {
    let s3 = crate::S3Server::with_bucket(work, "models");
    let shipped = std::fs::read(crate::root().join("models/cifar10.onnx")).expect("shipped model");
    let b = crate::with_metadata(&shipped, contract::meta::MODEL_VERSION, "bbbbbbbbbbbbbbbb");
    crate::publish_run(&crate::stage_run(&work.join("b"), &b), "s3://models/", &s3);
    crate::publish_run(&crate::stage_run(&work.join("a"), &shipped), "s3://models/", &s3);
    let (_, bytes) = s3.get_object("models", "models/latest.json");
    let mut pointer: contract::ModelPointer = serde_json::from_slice(&bytes).expect("pointer");
    let candidate = pointer.previous.take().expect("B published before A");
    pointer.candidate = Some(Box::new(contract::Candidate {
        model: *candidate,
        percent: 100,
        mode: contract::Split::Shadow,
        since: contract::pointer::now_rfc3339(),
    }));
    s3.put_object(
        "models",
        "models/latest.json",
        serde_json::to_vec(&pointer).expect("json"),
    );
    let mut env = s3.env();
    env.push(("MODEL_URI", "s3://models/models/latest.json".into()));
    (s3, env)
}
