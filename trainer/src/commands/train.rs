//! `trainer train`: fit, evaluate, export and draw a run.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use trainer::config::{ConfigOverrides, Preset, TrainConfig};
use trainer::run::{DataSource, RunOptions};

use trainer::cli::DataArgs;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Optional test set: an image folder, or `cifar` for the official test batch of the
    /// binary source chosen above.
    #[arg(long)]
    test: Option<String>,
    /// Starting recipe; `--config` and flags refine it.
    #[arg(long, value_enum, default_value = "default")]
    preset: Preset,
    /// JSON file with any TrainConfig fields: applied over the preset, keeping the
    /// preset's value of every field it does not name; flags apply over both.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: ConfigOverrides,
    /// Training time budget as a duration (`60m`, `3600s`, `1h`): sets
    /// `time_budget_minutes` (the epoch count is fitted to it after the first epoch).
    #[arg(long, value_parser = trainer::config::parse_duration_minutes, conflicts_with = "time_budget_minutes")]
    time_budget: Option<f64>,
    /// Run directory to write model.onnx, metrics.json, golden.json and plots into.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Skip unreadable image files (and count them) instead of stopping at the first.
    #[arg(long)]
    skip_bad_images: bool,
    /// Users' corrections (`s3://bucket/feedback/` or a folder): added to the training
    /// data (`feedback_weight` times each), a share held out as the "real traffic"
    /// validation set (`feedback_holdout_percent`).
    #[arg(long)]
    feedback: Option<String>,
    /// Captured traffic the corrections' request ids are joined with (`s3://bucket/capture/`
    /// or a folder); by default `capture/` beside the feedback location.
    #[arg(long, requires = "feedback")]
    capture: Option<String>,
    /// After a run that passes its checks, upload it (model, metrics, plots) to this
    /// `s3://bucket/prefix/` or `file://dir/` without moving `latest.json`: what serves
    /// changes only by `trainer models promote` or `canary`. What the managed job runs.
    #[arg(long)]
    publish: Option<String>,
}

/// `--data s3://bucket/key.tar.gz`: the archive is copied to this folder first.
fn data_cache() -> PathBuf {
    std::env::temp_dir().join("trainer-data")
}

pub fn run(mut args: Args) -> Result<()> {
    // Checked before an hour of training, not after.
    if let Some(dest) = &args.publish {
        dest.parse::<contract::Location>()
            .map_err(|reason| anyhow::anyhow!("--publish {dest}: {reason}"))?;
    }
    if let Some(uri) = args
        .data
        .data
        .as_ref()
        .and_then(|p| p.to_str())
        .filter(|p| p.starts_with("s3://"))
    {
        args.data.data = Some(download(uri, &data_cache())?);
    }
    let file = match &args.config {
        Some(path) => Some(std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?),
        None => None,
    };
    let mut config = TrainConfig::layered(args.preset, file.as_deref(), args.overrides)
        .with_context(|| format!("parsing {}", args.config.as_deref().unwrap_or(Path::new("")).display()))?;
    if let Some(minutes) = args.time_budget {
        config.schedule.time_budget_minutes = minutes;
    }
    config.compute.backend.set_threads(config.compute.threads);
    eprintln!("config: {}", serde_json::to_string_pretty(&config)?);
    let test = match args.test.as_deref() {
        None => None,
        Some("cifar") => match args.data.source(true) {
            DataSource::Folder(_) | DataSource::Shards(_) => {
                bail!("--test cifar needs --cifar-binary or --download-cifar as the data source")
            }
            other => Some(other),
        },
        Some(path) => Some(DataSource::Folder(path.into())),
    };
    let feedback = match &args.feedback {
        Some(uri) => Some(read_feedback(uri, args.capture.as_deref())?),
        None => None,
    };
    let opts = RunOptions {
        config,
        data: args.data.source(false),
        test,
        out: args.out.clone(),
        skip_bad_images: args.skip_bad_images,
        feedback,
    };
    let m = trainer::run::train(opts)?;
    println!("run written to {}", args.out.display());
    println!("model_version      {}", m.model_version);
    println!(
        "train accuracy     {:.4} (last epoch, augmented)",
        m.final_train_accuracy
    );
    println!(
        "val accuracy       {:.4}  loss {:.4}",
        m.validation.accuracy, m.validation.loss
    );
    if let Some(t) = &m.test {
        println!("test accuracy      {:.4}  loss {:.4}", t.accuracy, t.loss);
    }
    if let Some(r) = &m.real_traffic {
        println!(
            "real traffic       {:.4}  ({} held-out corrections; {} trained on)",
            r.report.accuracy, r.counts.held_out, r.counts.trained_on
        );
    }
    println!(
        "training           {:.1}s, {:.0} images/s; wall {:.1}s; peak RSS {}",
        m.train_seconds,
        m.train_images_per_second,
        m.wall_seconds,
        m.peak_rss_mib.map_or("n/a".into(), |v| format!("{v:.0} MiB"))
    );
    println!("config             {}", serde_json::to_string(&m.config)?);
    if let Some(dest) = &args.publish {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let p = rt.block_on(registry::publish_model(
            &args.out.join("model.onnx"),
            dest,
            registry::Pointer::Leave,
        ))?;
        println!("published          {} (latest.json left as it was)", p.model_uri);
    }
    Ok(())
}

/// Copy `s3://bucket/key` into `cache` (streamed) and name the local copy.
fn download(uri: &str, cache: &Path) -> Result<PathBuf> {
    let (bucket, key) = match uri.parse() {
        Ok(contract::Location::S3 { bucket, key }) => (bucket, key),
        Ok(_) => bail!("--data {uri}: not an s3:// URI"),
        Err(reason) => bail!("--data {uri}: {reason}"),
    };
    let name = key.rsplit('/').next().filter(|n| !n.is_empty());
    let Some(name) = name else {
        bail!("--data {uri}: name one object (a .tar.gz of an image folder), not a prefix")
    };
    std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
    let local = cache.join(name);
    eprintln!("data: copying {uri} to {}", local.display());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let store = registry::Store::open(&format!("s3://{bucket}/")).await?;
        store.download(&key, &local).await
    })
    .with_context(|| format!("downloading {uri}"))?;
    Ok(local)
}

/// Corrections from `uri`, joined with the captured traffic at `capture` (or `capture/`
/// beside `uri`).
fn read_feedback(uri: &str, capture: Option<&str>) -> Result<trainer::run::Feedback> {
    let capture = capture.map(str::to_string).unwrap_or_else(|| sibling(uri, "capture"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (records, skipped) = rt
        .block_on(traffic::read::feedback(uri))
        .with_context(|| format!("reading {uri}"))?;
    let needs_capture = records.iter().any(|r| r.image.is_none());
    let captured = if needs_capture {
        rt.block_on(traffic::read::captures(&capture, None))
            .with_context(|| format!("reading {capture}"))?
    } else {
        traffic::read::Captured::default()
    };
    if captured.skipped > 0 {
        eprintln!("capture: {} unreadable records or files skipped", captured.skipped);
    }
    Ok(trainer::run::Feedback {
        source: uri.to_string(),
        joined: traffic::join::join(&records, &captured.records),
        skipped,
    })
}

/// `s3://b/p/feedback/` -> `s3://b/p/capture/`; a folder's sibling likewise.
fn sibling(uri: &str, name: &str) -> String {
    let trimmed = uri.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{name}/"),
        None => format!("{name}/"),
    }
}
