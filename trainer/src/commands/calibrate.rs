//! `trainer calibrate`: fit an exported model's temperature, prediction sets and
//! out-of-distribution threshold on the halves of its own validation split, and give
//! an older file the `ood_score` output, without retraining. The
//! weights are untouched; the head changes, so the model version does too.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use contract::meta;
use prost::Message;
use trainer::cli::DataArgs;
use trainer::metrics::{Calibration, RunMetrics};
use trainer::run::Golden;
use trainer::uncertainty;

#[derive(clap::Args)]
pub struct Args {
    /// The exported model.
    #[arg(long, default_value = "models/cifar10.onnx")]
    model: PathBuf,
    /// The data it was trained on: its validation split is recovered from the seed and
    /// size in the model's config metadata.
    #[command(flatten)]
    data: DataArgs,
    /// Coverage the prediction sets promise (default: the model's config, else 0.9).
    #[arg(long)]
    coverage: Option<f64>,
    /// Writes `model.onnx`, `uncertainty.json` and `uncertainty.png` here.
    #[arg(long)]
    out: PathBuf,
    /// The model's golden pair: rewritten into `--out` for the new temperature (from
    /// burn's probabilities, not from tract's answers).
    #[arg(long)]
    golden: Option<PathBuf>,
    /// The model's run metrics: rewritten into `--out` with the new calibration figures.
    #[arg(long)]
    metrics: Option<PathBuf>,
    /// Skip unreadable image files instead of stopping.
    #[arg(long)]
    skip_bad_images: bool,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let mut proto = inference::parse_proto(&bytes)?;
    // The graph rewrites below read f32 initializers; an f16-stored file is stored so again.
    let half = proto.graph.as_mut().map_or(0, inference::half::expand) > 0;
    let metadata = inference::metadata_of(&proto);
    let config: trainer::config::TrainConfig =
        serde_json::from_str(metadata.get(meta::CONFIG).context("the model has no config metadata")?)
            .context("the model's config metadata")?;
    let old_temperature: f64 = metadata.get(meta::TEMPERATURE).map_or(Ok(1.0), |t| t.parse())?;
    let coverage = args.coverage.unwrap_or(config.export.coverage);
    let data = args.data.source(false).load(args.skip_bad_images)?;
    let labels: Vec<String> = serde_json::from_str(&metadata[meta::LABELS])?;
    if data.classes != labels {
        bail!(
            "dataset classes {:?} differ from the model's labels {labels:?}",
            data.classes
        );
    }
    let classes = data.classes.len();
    let (_, val) = trainer::data::stratified_split(&data.labels, classes, config.data.val_size, config.data.seed);
    let val = data.subset(&val);
    eprintln!(
        "validation split: {} images (seed {}, val_size {})",
        val.len(),
        config.data.seed,
        config.data.val_size
    );
    // With T = 1 inside, the file's answers give back the raw logits; T is refitted on
    // the calibration half only.
    uncertainty::graph::strip(&mut proto)?;
    uncertainty::graph::set_temperature(&mut proto, 1.0)?;
    let logits = uncertainty::raw_logits(&proto, &val.images)?;
    let temperature = uncertainty::fit_temperature(&logits, &val.labels, &val.images, classes, config.data.seed, true);
    uncertainty::graph::set_temperature(&mut proto, temperature)?;
    let attached = uncertainty::attach(&proto.encode_to_vec(), &val, coverage, config.data.seed)?;
    uncertainty::print(&attached.report);
    let report = attached.report;
    let (bytes, version) = if half {
        let stored = trainer::export::store_half(&attached.bytes)?;
        (stored.bytes, stored.version)
    } else {
        (attached.bytes, attached.version)
    };
    let reference = trainer::run::reference_profile(&bytes, &val)?;
    let out_bytes =
        trainer::export::with_metadata(&bytes, &[(meta::REFERENCE_PROFILE, serde_json::to_string(&reference)?)])?;
    std::fs::create_dir_all(&args.out)?;
    let write = |name: &str, bytes: &[u8]| {
        let path = args.out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
    };
    write("model.onnx", &out_bytes)?;
    write("uncertainty.json", &serde_json::to_vec_pretty(&report)?)?;
    trainer::plots::uncertainty(&args.out.join("uncertainty.png"), &report)?;
    if let Some(path) = &args.golden {
        let mut golden: Golden = serde_json::from_slice(&std::fs::read(path)?)?;
        // burn's p = softmax(z / T_old): ln p = z / T_old + c, so z / T_new = ln p * T_old / T_new + c'.
        let ratio = old_temperature / temperature;
        for row in &mut golden.probabilities {
            let scaled: Vec<f32> = row
                .iter()
                .map(|&p| (f64::from(p.max(f32::MIN_POSITIVE)).ln() * ratio) as f32)
                .collect();
            *row = trainer::calibration::probabilities(&scaled, scaled.len(), 1.0);
        }
        write("golden.json", &serde_json::to_vec(&golden)?)?;
    }
    if let Some(path) = &args.metrics {
        let mut metrics: RunMetrics = serde_json::from_slice(&std::fs::read(path)?)?;
        let (rep_logits, rep_labels) =
            uncertainty::reporting_rows(&logits, &val.labels, &val.images, classes, config.data.seed);
        metrics.calibration = Calibration::at(&rep_logits, &rep_labels, classes, temperature);
        metrics.model_version = version.clone();
        metrics.uncertainty = Some(report);
        write("metrics.json", &serde_json::to_vec_pretty(&metrics)?)?;
    }
    println!("{}", args.out.join("model.onnx").display());
    eprintln!("model version {version} (weights unchanged)");
    Ok(())
}
