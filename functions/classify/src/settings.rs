//! Configuration from the environment, read once at cold start.

use contract::DecodeLimits;

use crate::error::LoadError;

#[derive(Debug, Clone)]
pub struct Settings {
    /// `s3://bucket/key.onnx`, `s3://bucket/prefix/models/latest.json` or `file://path`;
    /// unset means the model embedded in the binary.
    pub model_uri: Option<String>,
    /// `*`, or exact origins allowed to call from a browser.
    pub allowed_origins: Vec<String>,
    /// Largest request body in bytes, after base64 decoding of the transport.
    pub max_body_bytes: usize,
    /// Most images in one JSON batch.
    pub max_images: usize,
    pub limits: DecodeLimits,
    /// Default top-1 probability under which an image matches no class (`label: null`);
    /// 0 answers with the top class always. Requests may set their own.
    pub min_probability: f32,
    /// Seconds between checks of the model pointer on a warm instance (0: never; only an
    /// `s3://.../latest.json` MODEL_URI is followed).
    pub model_refresh_seconds: u64,
}

pub use api::DEFAULT_MAX_BODY_BYTES;
pub const DEFAULT_MAX_IMAGES: usize = 64;
pub const DEFAULT_MAX_SIDE: u32 = 4096;
pub const DEFAULT_MAX_PIXELS: u64 = 16_777_216;
pub const DEFAULT_MODEL_REFRESH_SECONDS: u64 = 60;

fn parse_env<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, LoadError>
where
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|e: T::Err| LoadError::Setting {
            name,
            value: v.clone(),
            reason: e.to_string(),
        }),
        _ => Ok(default),
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, LoadError> {
        let model_uri = std::env::var("MODEL_URI").ok().filter(|v| !v.trim().is_empty());
        let allowed_origins = std::env::var("ALLOWED_ORIGINS")
            .unwrap_or_else(|_| "*".into())
            .split(',')
            .map(|s| s.trim().trim_end_matches('/').to_string())
            .filter(|s| !s.is_empty())
            .collect();
        let max_side: u32 = parse_env("MAX_IMAGE_SIDE", DEFAULT_MAX_SIDE)?;
        let max_pixels: u64 = parse_env("MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS)?;
        Ok(Self {
            model_uri,
            allowed_origins,
            max_body_bytes: parse_env("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?,
            max_images: parse_env("MAX_IMAGES", DEFAULT_MAX_IMAGES)?,
            limits: DecodeLimits {
                max_side,
                max_pixels,
                max_alloc: max_pixels * 4 + (64 << 20),
            },
            model_refresh_seconds: parse_env("MODEL_REFRESH_SECONDS", DEFAULT_MODEL_REFRESH_SECONDS)?,
            min_probability: {
                let p: f32 = parse_env("MIN_PROBABILITY", 0.0)?;
                if !(0.0..=1.0).contains(&p) {
                    return Err(LoadError::Setting {
                        name: "MIN_PROBABILITY",
                        value: p.to_string(),
                        reason: "must be from 0 to 1".into(),
                    });
                }
                p
            },
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model_uri: None,
            allowed_origins: vec!["*".into()],
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_images: DEFAULT_MAX_IMAGES,
            limits: DecodeLimits {
                max_side: DEFAULT_MAX_SIDE,
                max_pixels: DEFAULT_MAX_PIXELS,
                max_alloc: DEFAULT_MAX_PIXELS * 4 + (64 << 20),
            },
            min_probability: 0.0,
            model_refresh_seconds: DEFAULT_MODEL_REFRESH_SECONDS,
        }
    }
}
