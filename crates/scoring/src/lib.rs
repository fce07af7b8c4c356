//! What scoring a classifier on labelled images needs, whoever runs the classifier: the
//! trainer (a model file through tract) and the client (a deployed endpoint) read the
//! same folders, count the same confusion matrix and draw the same picture.

pub mod confusion;
pub mod folder;
pub mod plot;
pub mod progress;

pub use confusion::Confusion;

use std::path::PathBuf;

/// `q`-quantile of sorted values, nearest rank: how latencies are reported everywhere.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A `kB` field of `/proc/<process>/status` (`VmRSS:`, `VmHWM:`; `process` is a pid or
/// `self`), where Linux reports it: how the trainer and the tests read memory.
pub fn proc_status_kib(process: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[derive(Debug, thiserror::Error)]
pub enum ScoringError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("plot {path}: {reason}")]
    Plot { path: PathBuf, reason: String },
}

pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ScoringError {
    let path = path.into();
    move |source| ScoringError::Io { path, source }
}

#[cfg(test)]
mod tests {
    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(super::percentile(&v, 0.5), 51.0);
        assert_eq!(super::percentile(&v, 0.99), 99.0);
        assert_eq!(super::percentile(&[3.0], 0.99), 3.0);
    }

    #[test]
    fn reads_this_process_status() {
        let rss = super::proc_status_kib("self", "VmRSS:").expect("Linux reports VmRSS");
        assert!(rss > 0 && super::proc_status_kib("self", "VmHWM:").unwrap() >= rss);
        assert_eq!(super::proc_status_kib("self", "NoSuchField:"), None);
    }
}
