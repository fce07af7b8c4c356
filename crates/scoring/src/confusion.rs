//! The confusion matrix and the accuracies read from it.

use serde::{Deserialize, Serialize};

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
