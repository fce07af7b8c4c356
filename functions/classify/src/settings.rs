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
    /// The shared value CloudFront adds as `x-origin-verify` in an `edge` stack: a request
    /// without it came around CloudFront and its web ACL, and is refused.
    pub origin_verify: Option<String>,
    /// The hosted sign-in the page offers (a Cognito stack); none: the page has no sign-in.
    pub sign_in: Option<SignIn>,
    /// Where `POST /feedback` stores corrections (`s3://bucket/prefix/` or `file://dir/`);
    /// none: the route answers 404.
    pub feedback_uri: Option<String>,
    /// Largest `POST /feedback` body in bytes.
    pub max_feedback_bytes: usize,
    /// Share of predictions, 0 to 100, whose images and answers are printed as capture
    /// records (picked by request id); 0 keeps nothing.
    pub capture_percent: u8,
    /// Answer images whose `ood_score` is over the model's threshold with a null label,
    /// as under `min_probability` (off: they are answered and flagged).
    pub abstain_out_of_distribution: bool,
}

/// Where the page sends users to sign in (authorization code with PKCE) and as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The OAuth 2.0 server's base URL (`https://<prefix>.auth.<region>.amazoncognito.com`),
    /// holding `/oauth2/authorize` and `/oauth2/token`.
    pub url: String,
    /// The public app client (no secret) the page signs in as.
    pub client_id: String,
}

/// The request header that proves a request came through the stack's CloudFront.
pub const ORIGIN_VERIFY_HEADER: &str = "x-origin-verify";

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

impl SignIn {
    /// From `SIGN_IN_URL` and `SIGN_IN_CLIENT_ID`: both or neither. Tokens travel to the
    /// URL, so it is https, except on loopback for tests and `make run`.
    fn from_env() -> Result<Option<Self>, LoadError> {
        match (non_empty_env("SIGN_IN_URL"), non_empty_env("SIGN_IN_CLIENT_ID")) {
            (None, None) => Ok(None),
            (Some(url), Some(client_id)) => {
                let url = url.trim_end_matches('/').to_string();
                let loopback = ["http://127.0.0.1:", "http://localhost:"]
                    .iter()
                    .any(|p| url.starts_with(p));
                if !url.starts_with("https://") && !loopback {
                    return Err(LoadError::Setting {
                        name: "SIGN_IN_URL",
                        value: url,
                        reason: "must be an https URL (http only on loopback)".into(),
                    });
                }
                Ok(Some(Self { url, client_id }))
            }
            (url, _) => Err(LoadError::Setting {
                name: if url.is_some() {
                    "SIGN_IN_CLIENT_ID"
                } else {
                    "SIGN_IN_URL"
                },
                value: String::new(),
                reason: "SIGN_IN_URL and SIGN_IN_CLIENT_ID go together".into(),
            }),
        }
    }
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
        let model_uri = non_empty_env("MODEL_URI");
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
            origin_verify: non_empty_env("ORIGIN_VERIFY"),
            sign_in: SignIn::from_env()?,
            feedback_uri: non_empty_env("FEEDBACK_URI"),
            max_feedback_bytes: parse_env("MAX_FEEDBACK_BYTES", api::DEFAULT_MAX_FEEDBACK_BYTES)?,
            abstain_out_of_distribution: parse_env("ABSTAIN_OUT_OF_DISTRIBUTION", false)?,
            capture_percent: {
                let p: u8 = parse_env("CAPTURE_PERCENT", 0)?;
                if p > 100 {
                    return Err(LoadError::Setting {
                        name: "CAPTURE_PERCENT",
                        value: p.to_string(),
                        reason: "must be from 0 to 100".into(),
                    });
                }
                p
            },
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
            origin_verify: None,
            sign_in: None,
            capture_percent: 0,
            feedback_uri: None,
            max_feedback_bytes: api::DEFAULT_MAX_FEEDBACK_BYTES,
            abstain_out_of_distribution: false,
        }
    }
}
