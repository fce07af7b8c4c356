//! What a run reports: per-epoch curves, final accuracies, confusion matrix, speed and
//! the config, written as `metrics.json` beside the model.

use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::training::EpochMetrics;

/// Rows are true classes, columns predictions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Confusion {
    pub labels: Vec<String>,
    pub matrix: Vec<Vec<u32>>,
}

impl Confusion {
    pub fn new(labels: &[String], truth: &[u8], predicted: &[u8]) -> Self {
        let k = labels.len();
        let mut matrix = vec![vec![0u32; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            matrix[t as usize][p as usize] += 1;
        }
        Self {
            labels: labels.to_vec(),
            matrix,
        }
    }

    pub fn total(&self) -> u32 {
        self.matrix.iter().flatten().sum()
    }

    pub fn accuracy(&self) -> f64 {
        let correct: u32 = (0..self.matrix.len()).map(|i| self.matrix[i][i]).sum();
        f64::from(correct) / f64::from(self.total().max(1))
    }

    /// Recall of each class, in label order.
    pub fn per_class_accuracy(&self) -> Vec<f64> {
        self.matrix
            .iter()
            .enumerate()
            .map(|(i, row)| f64::from(row[i]) / f64::from(row.iter().sum::<u32>().max(1)))
            .collect()
    }

    /// A fixed-width table for the terminal.
    pub fn table(&self) -> String {
        let mut s = format!("{:>12} {:>8} {:>8}\n", "class", "images", "accuracy");
        for (i, (label, acc)) in self.labels.iter().zip(self.per_class_accuracy()).enumerate() {
            s += &format!("{label:>12} {:>8} {:>8.4}\n", self.matrix[i].iter().sum::<u32>(), acc);
        }
        s + &format!("{:>12} {:>8} {:>8.4}\n", "all", self.total(), self.accuracy())
    }
}

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
    pub test: Option<SplitReport>,
    /// Training wall time, excluding data loading and export.
    pub train_seconds: f64,
    pub wall_seconds: f64,
    pub train_images_per_second: f64,
    pub onnx_parity_max_abs_diff: f32,
    pub trained_at: String,
    pub config: TrainConfig,
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
    /// Fit on an evaluation's logits (T = 1 when `fit` is off; the figures are still
    /// measured).
    pub fn fit(eval: &crate::training::Evaluation, labels: &[u8], classes: usize, fit: bool) -> Self {
        use crate::calibration as cal;
        let t = if fit {
            cal::fit_temperature(&eval.logits, labels, classes)
        } else {
            1.0
        };
        let bins_before = cal::reliability(&cal::probabilities(&eval.logits, classes, 1.0), labels, classes);
        let bins = cal::reliability(&cal::probabilities(&eval.logits, classes, t), labels, classes);
        Calibration {
            temperature: t,
            nll_before: cal::nll(&eval.logits, labels, classes, 1.0),
            nll_after: cal::nll(&eval.logits, labels, classes, t),
            ece_before: cal::ece_of_bins(&bins_before),
            ece_after: cal::ece_of_bins(&bins),
            bins,
            bins_before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_counts_and_accuracies() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let c = Confusion::new(&labels, &[0, 0, 1, 1], &[0, 1, 1, 1]);
        assert_eq!(c.matrix, vec![vec![1, 1], vec![0, 2]]);
        assert_eq!(c.accuracy(), 0.75);
        assert_eq!(c.per_class_accuracy(), vec![0.5, 1.0]);
        assert!(c.table().contains("0.7500"));
    }
}
