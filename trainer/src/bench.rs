//! Training-speed measurements: burn on each backend, and the same nets in PyTorch CPU
//! (`scripts/torch_bench.py`, embedded) on the same images in the same run.

use std::path::Path;
use std::process::Command;

use serde::Deserialize;
use serde_json::json;

use crate::config::Arch;
use crate::config::TrainConfig;
use crate::data::{Dataset, to_input};
use crate::error::{Result, TrainError, io};

const TORCH_SCRIPT: &str = include_str!("../../scripts/torch_bench.py");
const PROBE_SCRIPT: &str = include_str!("../../scripts/recipe_probe.py");

/// One PyTorch run of the shipped recipe (`scripts/recipe_probe.py`, variant `gelu`):
/// training seconds, validation accuracy without TTA (`tta0`) and with mirror TTA (`tta1`).
#[derive(Debug, Deserialize)]
pub struct ProbeRun {
    pub seconds: f64,
    pub tta0: f64,
    pub tta1: f64,
}

#[derive(Deserialize)]
struct ProbeFile {
    results: Vec<ProbeRun>,
}

/// Train the shipped recipe for `epochs` in PyTorch CPU on `threads` over the JPEGs in
/// `tar` (its own 45,000 / 5,000 stratified split), one seed; its progress goes to stderr.
pub fn pytorch_time_to_accuracy(python: &Path, tar: &Path, epochs: usize, threads: usize) -> Result<ProbeRun> {
    let fail = |reason: String| TrainError::Config(format!("PyTorch recipe run with {}: {reason}", python.display()));
    let dir = tempfile::tempdir().map_err(io(std::env::temp_dir()))?;
    let script = dir.path().join("recipe_probe.py");
    std::fs::write(&script, PROBE_SCRIPT).map_err(io(&script))?;
    let out = dir.path().join("probe.json");
    let status = Command::new(python)
        .arg(&script)
        .arg(tar)
        .arg(&out)
        .args([
            "seeds=1",
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
    let file: ProbeFile = serde_json::from_slice(&std::fs::read(&out).map_err(io(&out))?)
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
            "optimizer": c.optimizer,
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

/// A markdown table of a flex profile (`burn_flex::profile`) over `steps` training steps:
/// each phase's wall time, then its kernels by input shape (which names the layer; convs
/// add their output channels as a fifth number), then
/// what ran outside them (allocation, autodiff bookkeeping, uninstrumented ops). Entries
/// under 0.3 % of a step are summed per phase. Validation is left out.
pub fn profile_table(entries: &[burn_flex::profile::Entry], steps: usize) -> String {
    use burn_flex::profile::PHASE_WALL;
    let steps = steps.max(1) as f64;
    let wall = |phase: &str| {
        entries
            .iter()
            .filter(|e| e.phase == phase && e.kernel == PHASE_WALL)
            .map(|e| e.seconds)
            .sum::<f64>()
    };
    let step_total: f64 = crate::training::phase::STEP.iter().map(|p| wall(p)).sum();
    let ms = |s: f64| 1e3 * s / steps;
    let share = |s: f64| 100.0 * s / step_total.max(f64::MIN_POSITIVE);
    let mut out = format!(
        "one training step: {:.0} ms (mean of {steps} steps)\n\n| phase | kernel | input shape | ms / step | calls / step | share of step |\n|---|---|---|---|---|---|\n",
        ms(step_total)
    );
    for phase in crate::training::phase::STEP {
        let total = wall(phase);
        if total == 0.0 {
            continue;
        }
        out += &format!(
            "| **{phase}** | (all) | | **{:.1}** | | **{:.1} %** |\n",
            ms(total),
            share(total)
        );
        let mut kernels: Vec<_> = entries
            .iter()
            .filter(|e| e.phase == phase && e.kernel != PHASE_WALL)
            .collect();
        kernels.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        let (mut small, mut small_n, mut inside) = (0.0, 0, 0.0);
        for e in kernels {
            inside += e.seconds;
            if share(e.seconds) < 0.3 {
                small += e.seconds;
                small_n += 1;
                continue;
            }
            out += &format!(
                "| {phase} | {} | {:?} | {:.1} | {:.0} | {:.1} % |\n",
                e.kernel,
                e.shape,
                ms(e.seconds),
                e.calls as f64 / steps,
                share(e.seconds)
            );
        }
        if small_n > 0 {
            out += &format!(
                "| {phase} | {small_n} smaller entries | | {:.1} | | {:.1} % |\n",
                ms(small),
                share(small)
            );
        }
        let outside = (total - inside).max(0.0);
        out += &format!(
            "| {phase} | outside the instrumented kernels | | {:.1} | | {:.1} % |\n",
            ms(outside),
            share(outside)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn_flex::profile::{Entry, PHASE_WALL};

    fn entry(phase: &'static str, kernel: &'static str, shape: &[usize], seconds: f64) -> Entry {
        Entry {
            phase,
            kernel,
            shape: shape.to_vec(),
            seconds,
            calls: 2,
        }
    }

    #[test]
    fn profile_table_shares_add_up_per_phase() {
        let entries = [
            entry("forward", PHASE_WALL, &[], 3.0),
            entry("forward", "conv forward", &[8, 3, 32, 32], 2.0),
            entry("forward", "relu forward", &[8, 4, 32, 32], 0.001),
            entry("backward", PHASE_WALL, &[], 1.0),
            entry("validation", PHASE_WALL, &[], 100.0),
        ];
        let table = profile_table(&entries, 2);
        // Step = forward + backward wall (validation left out): 4 s over 2 steps.
        assert!(table.starts_with("one training step: 2000 ms"), "{table}");
        assert!(
            table.contains("| **forward** | (all) | | **1500.0** | | **75.0 %** |"),
            "{table}"
        );
        assert!(
            table.contains("| forward | conv forward | [8, 3, 32, 32] | 1000.0 | 1 | 50.0 % |"),
            "{table}"
        );
        // The tiny ReLU is summed with the small entries; the rest of the phase is outside.
        assert!(
            table.contains("| forward | 1 smaller entries | | 0.5 | | 0.0 % |"),
            "{table}"
        );
        assert!(
            table.contains("| forward | outside the instrumented kernels | | 499.5 | | 25.0 % |"),
            "{table}"
        );
        assert!(
            table.contains("| **backward** | (all) | | **500.0** | | **25.0 %** |"),
            "{table}"
        );
        assert!(!table.contains("validation"), "{table}");
    }
}
