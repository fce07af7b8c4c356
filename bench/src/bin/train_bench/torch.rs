//! The same nets and recipe in PyTorch CPU (`scripts/torch_bench.py` and
//! `scripts/recipe_probe.py`, embedded) on the same images and threads as burn.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::json;

use anyhow::{Context, Result, anyhow};
use trainer::config::{Arch, TrainConfig};
use trainer::data::{Dataset, to_input};

const TORCH_SCRIPT: &str = include_str!("../../../../scripts/torch_bench.py");
const PROBE_SCRIPT: &str = include_str!("../../../../scripts/recipe_probe.py");

/// One PyTorch run of the shipped recipe (`scripts/recipe_probe.py`, variant `gelu`):
/// training seconds, validation accuracy without TTA (`tta0`) and with mirror TTA (`tta1`).
#[derive(Debug, Deserialize)]
pub struct ProbeRun {
    pub seconds: f64,
    pub tta0: f64,
    pub tta1: f64,
    /// Validation after each epoch (the last is the run's end), off the clock.
    pub epochs: Vec<ProbeEpoch>,
}

/// Where the run stood after one epoch: training seconds so far and validation accuracy
/// without TTA (the script also records `tta1`).
#[derive(Debug, Deserialize)]
pub struct ProbeEpoch {
    pub seconds: f64,
    pub tta0: f64,
}

#[derive(Deserialize)]
struct ProbeFile {
    results: Vec<ProbeRun>,
}

/// Train the shipped recipe for `epochs` in PyTorch CPU on `threads` over the JPEGs in
/// `tar` (its own 45,000 / 5,000 stratified split), one seed; its progress goes to stderr.
pub fn pytorch_time_to_accuracy(python: &Path, tar: &Path, epochs: usize, threads: usize) -> Result<ProbeRun> {
    let fail = |reason: String| anyhow!("PyTorch recipe run with {}: {reason}", python.display());
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let script = dir.path().join("recipe_probe.py");
    std::fs::write(&script, PROBE_SCRIPT).with_context(|| script.display().to_string())?;
    let out = dir.path().join("probe.json");
    let status = Command::new(python)
        .arg(&script)
        .arg(tar)
        .arg(&out)
        .args([
            "seeds=1",
            "per_epoch=1",
            &format!("threads={threads}"),
            &format!("epochs={epochs}"),
            "gelu",
        ])
        .env("OMP_NUM_THREADS", threads.to_string())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(status.to_string()));
    }
    let file: ProbeFile = serde_json::from_slice(&std::fs::read(&out).with_context(|| out.display().to_string())?)
        .map_err(|e| fail(format!("unreadable results: {e}")))?;
    file.results
        .into_iter()
        .next()
        .ok_or_else(|| fail("no run recorded".into()))
}

#[derive(Deserialize)]
struct TorchLine {
    name: String,
    images_per_second: f64,
    peak_rss_mib: Option<f64>,
    layout: String,
}

/// PyTorch's figure for one net: the faster of its NCHW and channels_last runs.
pub struct TorchRun {
    pub images_per_second: f64,
    pub peak_rss_mib: f64,
    /// `nchw` or `channels_last`: which layout was faster.
    pub layout: String,
}

/// Train each named config for one epoch over `set` in PyTorch with `python`, after one
/// untimed warm-up batch, in NCHW and in channels_last; the faster run per config, in
/// order. The images go over already normalised by [`to_input`], so both sides see the
/// same pixels.
pub fn pytorch_images_per_second(
    python: &Path,
    nets: &[(String, TrainConfig)],
    set: &Dataset,
    batch_size: usize,
    threads: usize,
) -> Result<Vec<TorchRun>> {
    let fail = |reason: String| anyhow!("PyTorch bench with {}: {reason}", python.display());
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let refs: Vec<&contract::Rgb32> = set.images.iter().collect();
    let floats: Vec<u8> = to_input(&refs, None).iter().flat_map(|v| v.to_le_bytes()).collect();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes)
            .with_context(|| path.display().to_string())
            .map(|_| path)
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
            "seed": c.data.seed,
            "arch": match c.net.arch { Arch::Seed => "seed", Arch::Airbench => "airbench" },
            "widths": c.net.widths.0,
            "activation": c.net.activation,
            "whiten": c.net.whiten,
            "whiten_bias_frozen": c.net.whiten && c.net.whiten_bias_epochs == 0,
            "bn_momentum": c.net.bn_momentum,
            "bn_eps": c.net.bn_eps,
            "bn_fixed_scale": c.net.bn_fixed_scale,
            "dirac_init": c.net.dirac_init,
            "dropout": c.net.dropout,
            "optimizer": c.optimiser.optimizer,
            "lr": c.optimiser.lr,
            "momentum": c.optimiser.momentum,
            "weight_decay": c.optimiser.weight_decay,
            "label_smoothing": c.optimiser.label_smoothing,
            "translate": c.augmentation.translate,
            "flip": c.augmentation.flip,
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
        .collect::<Result<_, _>>()
        .map_err(|e| fail(format!("unreadable output: {e}")))?;
    if lines.len() != nets.len() || lines.iter().zip(nets).any(|(l, (n, _))| &l.name != n) {
        return Err(fail("output does not list the nets asked for".into()));
    }
    Ok(lines
        .into_iter()
        .map(|l| TorchRun {
            images_per_second: l.images_per_second,
            peak_rss_mib: l.peak_rss_mib.unwrap_or(f64::NAN),
            layout: l.layout,
        })
        .collect())
}
