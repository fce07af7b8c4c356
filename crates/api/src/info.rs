//! `GET /health` and `GET /model`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the function answers at all.
    pub status: String,
    pub model_version: String,
    /// Where the serving model came from: `s3://...`, `file://...`, or
    /// `embedded:models/cifar10.onnx` (also while a pointer has nothing published yet).
    pub source: String,
    pub refresh: RefreshStatus,
    /// A model tried beside the serving one on a share of requests, if the pointer names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidateStatus>,
}

/// The pointer's candidate (`trainer models canary`) and whether it serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateStatus {
    /// The version the pointer names for it.
    pub model_version: String,
    pub sha256: String,
    /// Share of requests, 0 to 100, by caller (JWT `sub`) or else by first image.
    pub percent: u8,
    /// `canary` (it answers its share) or `shadow` (it runs beside; the current model answers).
    pub mode: String,
    /// When the pointer named it.
    pub since: String,
    /// Loaded and taking its share; false when it failed to load (see `error`).
    pub serving: bool,
    pub error: Option<String>,
}

/// How the served model follows the published pointer (`MODEL_REFRESH_SECONDS`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshStatus {
    /// False when the model is not behind an S3 pointer or refresh is off.
    pub enabled: bool,
    pub interval_seconds: u64,
    /// RFC 3339 time of the last pointer check, if any.
    pub last_check: Option<String>,
    /// `unchanged`, `updated` or `failed`; none before the first check.
    pub last_outcome: Option<RefreshOutcome>,
    /// Why the last check failed; the previous model kept serving.
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshOutcome {
    Unchanged,
    Updated,
    Failed,
}

/// What a client needs to know about the served model before sending images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Class names in output order.
    pub labels: Vec<String>,
    pub model_version: String,
    pub val_accuracy: Option<f64>,
    pub dataset: Option<String>,
    pub trained_at: Option<String>,
    /// Softmax temperature already applied inside the graph (1: not calibrated).
    pub temperature: f64,
    pub val_ece: Option<f64>,
    /// Test-time augmentation inside the graph: `none` or `mirror`.
    pub tta: String,
    pub input: InputSpec,
    pub limits: Limits,
    /// Where the model was loaded from (`s3://...`, `file://...`, `embedded`).
    pub source: String,
    pub refresh: RefreshStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<CandidateStatus>,
    /// The terms of what answers say about what the model does not know; absent for
    /// models without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty: Option<UncertaintyInfo>,
}

/// The terms behind `prediction_set` and `out_of_distribution`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UncertaintyInfo {
    /// How often a prediction set holds the true label, on data like the validation split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    /// `ood_score` over this is flagged `out_of_distribution`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ood_threshold: Option<f32>,
    /// Whether out-of-distribution images are answered with a null label (the
    /// function's `ABSTAIN_OUT_OF_DISTRIBUTION`).
    pub abstain_out_of_distribution: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub width: usize,
    pub height: usize,
    pub channels: usize,
    pub resize_filter: String,
    pub alpha: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub max_body_bytes: usize,
    pub max_images: usize,
    pub max_image_side: u32,
    pub max_image_pixels: u64,
    pub top_k: IntRange,
    pub min_probability: FloatRange,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntRange {
    pub default: usize,
    pub min: usize,
    pub max: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FloatRange {
    pub default: f32,
    pub min: f32,
    pub max: f32,
}
