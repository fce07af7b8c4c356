//! `GET /health` and `GET /model`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok` when the function answers at all.
    pub status: String,
    pub model_version: String,
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
