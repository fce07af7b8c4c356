//! Training-speed measurements: burn on each backend, and the same nets in PyTorch CPU
//! (`scripts/torch_bench.py`, embedded) on the same images in the same run.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::json;

use crate::config::Arch;
use crate::config::{OptimizerKind, TrainConfig};
use crate::data::{Dataset, to_input};
use crate::error::{Result, TrainError, io};

const TORCH_SCRIPT: &str = include_str!("../../scripts/torch_bench.py");

#[derive(Deserialize)]
struct TorchLine {
    name: String,
    images_per_second: f64,
    peak_rss_mib: Option<f64>,
}

/// Train each named config for one epoch over `set` in PyTorch with `python`, after one
/// untimed warm-up batch; (images/s, peak RSS MiB of that measurement) per config, in
/// order. The images go over already normalised by [`to_input`], so both sides see the
/// same pixels.
pub fn pytorch_images_per_second(
    python: &Path,
    nets: &[(String, TrainConfig)],
    set: &Dataset,
    batch_size: usize,
    threads: usize,
) -> Result<Vec<(f64, f64)>> {
    let fail = |reason: String| TrainError::Config(format!("PyTorch bench with {}: {reason}", python.display()));
    let dir = tempfile::tempdir().map_err(io(std::env::temp_dir()))?;
    let refs: Vec<&contract::Rgb32> = set.images.iter().collect();
    let floats: Vec<u8> = to_input(&refs, None).iter().flat_map(|v| v.to_le_bytes()).collect();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).map_err(io(&path)).map(|_| path)
    };
    let images_path = write("images.f32", &floats)?;
    let labels_path = write("labels.u8", &set.labels)?;
    let script = write("torch_bench.py", TORCH_SCRIPT.as_bytes())?;
    let job = json!({
        "images": set.len(),
        "classes": set.classes.len(),
        "batch_size": batch_size,
        "threads": threads,
        "images_path": images_path,
        "labels_path": labels_path,
        "nets": nets.iter().map(|(name, c)| json!({
            "name": name,
            "seed": c.seed,
            "arch": match c.arch { Arch::Seed => "seed", Arch::Airbench => "airbench" },
            "widths": c.widths.0,
            "activation": c.activation,
            "whiten": c.whiten,
            "bn_momentum": c.bn_momentum,
            "bn_eps": c.bn_eps,
            "bn_fixed_scale": c.bn_fixed_scale,
            "dropout": c.dropout,
            "optimizer": match c.optimizer { OptimizerKind::Adam => "adam", OptimizerKind::Sgd => "sgd" },
            "lr": c.lr,
            "momentum": c.momentum,
            "weight_decay": c.weight_decay,
            "label_smoothing": c.label_smoothing,
            "translate": c.translate,
            "flip": c.flip,
        })).collect::<Vec<_>>(),
    });
    let job_path = write("job.json", job.to_string().as_bytes())?;
    let out = Command::new(python)
        .arg(&script)
        .arg(&job_path)
        .env("OMP_NUM_THREADS", threads.to_string())
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if !out.status.success() {
        return Err(fail(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let lines: Vec<TorchLine> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| fail(format!("unreadable output: {e}")))?;
    if lines.len() != nets.len() || lines.iter().zip(nets).any(|(l, (n, _))| &l.name != n) {
        return Err(fail("output does not list the nets asked for".into()));
    }
    Ok(lines
        .iter()
        .map(|l| (l.images_per_second, l.peak_rss_mib.unwrap_or(f64::NAN)))
        .collect())
}
