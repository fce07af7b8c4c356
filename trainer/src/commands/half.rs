//! `trainer half`: store an exported model's weights as f16 (`inference::half`), without
//! retraining. Runs with `half_weights` (the default) export so already; this is for files
//! exported before.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use trainer::metrics::RunMetrics;
use trainer::run::Golden;

#[derive(clap::Args)]
pub struct Args {
    /// The exported model.
    #[arg(long, default_value = "models/cifar10.onnx")]
    model: PathBuf,
    /// Writes `model.onnx` (and the files below) here.
    #[arg(long)]
    out: PathBuf,
    /// The model's golden pair: its images kept, its answers replaced by the stored file's
    /// through tract (an older file has no burn net to ask).
    #[arg(long)]
    golden: Option<PathBuf>,
    /// The model's run metrics: rewritten into `--out` under the new model version.
    #[arg(long)]
    metrics: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let before = inference::Classifier::from_bytes(&bytes)?;
    let stored = trainer::export::store_half(&bytes)?;
    if stored.bytes.len() >= bytes.len() {
        bail!("{} has no f32 weights left to store as f16", args.model.display());
    }
    let after = inference::Classifier::from_bytes(&stored.bytes)?;
    std::fs::create_dir_all(&args.out)?;
    let write = |name: &str, bytes: &[u8]| {
        let path = args.out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write("model.onnx", &stored.bytes)?;
    eprintln!(
        "{} -> {} bytes, model version {} -> {}",
        bytes.len(),
        stored.bytes.len(),
        before.version(),
        stored.version
    );
    if let Some(path) = &args.golden {
        let mut golden: Golden = serde_json::from_slice(&std::fs::read(path)?)?;
        let images = golden.images();
        let old = before.probabilities(&images)?;
        let new = after.probabilities(&images)?;
        let moved = old
            .iter()
            .flatten()
            .zip(new.iter().flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let same_top1 = old
            .iter()
            .zip(&new)
            .filter(|(a, b)| contract::argmax(a).0 == contract::argmax(b).0)
            .count();
        eprintln!(
            "golden images: {same_top1}/{} same top-1, probabilities moved by at most {moved:.2e}",
            images.len()
        );
        golden.probabilities = new;
        write("golden.json", &serde_json::to_vec(&golden)?)?;
    }
    if let Some(path) = &args.metrics {
        let mut metrics: RunMetrics = serde_json::from_slice(&std::fs::read(path)?)?;
        metrics.model_version = stored.version.clone();
        write("metrics.json", &serde_json::to_vec_pretty(&metrics)?)?;
    }
    println!("{}", args.out.join("model.onnx").display());
    Ok(())
}
