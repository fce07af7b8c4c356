//! What a run reports: per-epoch curves, final accuracies, confusion matrix, speed and
//! the config, written as `metrics.json` beside the model.

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::training::EpochMetrics;

pub use scoring::Confusion;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitReport {
    pub images: usize,
    pub loss: f64,
    pub accuracy: f64,
    pub per_class_accuracy: Vec<f64>,
    pub confusion: Confusion,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunMetrics {
    pub model_version: String,
    pub dataset: String,
    pub classes: Vec<String>,
    pub train_images: usize,
    pub skipped_images: usize,
    pub epochs: Vec<EpochMetrics>,
    pub final_train_accuracy: f64,
    /// With the exported graph's test-time augmentation, when the config has it on.
    pub validation: SplitReport,
    #[serde(default)]
    pub validation_accuracy_without_tta: f64,
    /// Absent in runs from before calibration (read back as T = 1, no bins).
    #[serde(default)]
    pub calibration: Calibration,
    /// Prediction sets and the out-of-distribution score, fitted on one validation half
    /// and measured on the other (absent in older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uncertainty: Option<crate::uncertainty::UncertaintyReport>,
    pub test: Option<SplitReport>,
    /// Accuracy on the held-out share of users' corrections (`--feedback`): how the model
    /// does on what users actually send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_traffic: Option<RealTraffic>,
    /// Training wall time, excluding data loading and export.
    pub train_seconds: f64,
    pub wall_seconds: f64,
    pub train_images_per_second: f64,
    /// Peak resident memory of the training process (MiB; data, training and export).
    #[serde(default)]
    pub peak_rss_mib: Option<f64>,
    pub onnx_parity_max_abs_diff: f32,
    pub trained_at: String,
    pub config: TrainConfig,
}

/// The held-out corrections' report, and how corrections went into the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RealTraffic {
    pub report: SplitReport,
    pub counts: crate::run::RealTrafficCounts,
}

/// The softmax temperature fitted on the validation split and what it did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Calibration {
    pub temperature: f64,
    pub nll_before: f64,
    pub nll_after: f64,
    /// Expected calibration error (15 bins) of the validation probabilities.
    pub ece_before: f64,
    pub ece_after: f64,
    /// The calibrated reliability diagram's bins.
    pub bins: Vec<crate::calibration::Bin>,
    pub bins_before: Vec<crate::calibration::Bin>,
}

impl Calibration {
    /// The figures of temperature `t` (fitted elsewhere) on these logits, against T = 1.
    pub fn at(logits: &[f32], labels: &[u8], classes: usize, t: f64) -> Self {
        use crate::calibration as cal;
        let bins_before = cal::reliability(&cal::probabilities(logits, classes, 1.0), labels, classes);
        let bins = cal::reliability(&cal::probabilities(logits, classes, t), labels, classes);
        Calibration {
            temperature: t,
            nll_before: cal::nll(logits, labels, classes, 1.0),
            nll_after: cal::nll(logits, labels, classes, t),
            ece_before: cal::ece_of_bins(&bins_before),
            ece_after: cal::ece_of_bins(&bins),
            bins,
            bins_before,
        }
    }
}
