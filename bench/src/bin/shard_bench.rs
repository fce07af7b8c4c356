//! Memory of a streamed epoch against dataset size: `make bench-shards`.
//!
//! Writes synthetic sharded datasets of growing size (the committed fixture JPEGs, reused
//! under new keys), then, in a fresh process per size so each peak is its own, streams one
//! epoch in training batches through `trainer::sharded` and reports the peak RSS beside
//! that of decoding the same training split into memory, as an in-memory run holds it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Parser;
use trainer::config::TrainConfig;
use trainer::sharded;
use trainer::training::TrainSet;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Training images per dataset.
    #[arg(long, value_delimiter = ',', default_value = "5000,20000,80000,320000")]
    sizes: Vec<usize>,
    #[arg(long, default_value_t = 5000)]
    shard_size: usize,
    #[arg(long, default_value_t = 1024)]
    batch_size: usize,
    /// (internal) measure one dataset: `stream` or `memory`.
    #[arg(long, requires = "dataset")]
    mode: Option<String>,
    #[arg(long)]
    dataset: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let (Some(mode), Some(dir)) = (&args.mode, &args.dataset) {
        return measure(mode, dir, args.batch_size);
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cifar10-val");
    let files = scoring::folder::read_image_files(&fixtures)?;
    let classes: Vec<String> = scoring::folder::class_names(&files, &contract::CIFAR10_LABELS);
    let samples: Vec<(u8, &Vec<u8>)> = files
        .iter()
        .map(|((c, _), b)| (classes.iter().position(|k| k == c).unwrap() as u8, b))
        .collect();
    let work = tempfile::tempdir()?;
    println!(
        "| training images | shards | on disk (MiB) | streamed epoch: peak RSS (MiB) | img/s | decoded into memory: peak RSS (MiB) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    for &n in &args.sizes {
        let dir = work.path().join(n.to_string());
        let mut writer = shards::ShardWriter::new(&dir, "train", args.shard_size)?;
        for i in 0..n {
            let (label, bytes) = samples[i % samples.len()];
            writer.add(&format!("{i:09}"), "jpg", bytes, label)?;
        }
        let train = writer.finish()?;
        let mut val = shards::ShardWriter::new(&dir, "val", args.shard_size)?;
        for (i, (label, bytes)) in samples.iter().take(100).enumerate() {
            val.add(&format!("v{i:08}"), "jpg", bytes, *label)?;
        }
        let index = shards::Index {
            format: shards::Index::FORMAT,
            classes: classes.clone(),
            train,
            val: val.finish()?,
            source: "synthetic".into(),
        };
        shards::write_index(&dir, &index)?;
        let disk: u64 = std::fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.metadata().map(|m| m.len()).unwrap_or(0)).unwrap_or(0))
            .sum();
        let streamed = child("stream", &dir, args.batch_size)?;
        let memory = child("memory", &dir, args.batch_size)?;
        println!(
            "| {n} | {} | {:.1} | {:.0} | {:.0} | {:.0} |",
            index.train.len(),
            disk as f64 / (1 << 20) as f64,
            streamed.0,
            streamed.1,
            memory.0
        );
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// Run one measurement in a fresh process: (peak RSS MiB, images/s).
fn child(mode: &str, dir: &Path, batch: usize) -> Result<(f64, f64)> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--mode", mode, "--batch-size", &batch.to_string(), "--dataset"])
        .arg(dir)
        .output()
        .context("starting the measuring process")?;
    if !out.status.success() {
        bail!("{mode} run failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8(out.stdout)?;
    let mut it = text.split_whitespace().map(str::parse::<f64>);
    match (it.next(), it.next()) {
        (Some(Ok(rss)), Some(Ok(rate))) => Ok((rss, rate)),
        _ => bail!("unexpected output from the {mode} run: {text}"),
    }
}

fn measure(mode: &str, dir: &Path, batch: usize) -> Result<()> {
    let mut config = TrainConfig::default();
    config.data.train_limit = 0;
    let start = std::time::Instant::now();
    let mut opened = sharded::open(dir.to_str().context("a UTF-8 path")?, &config)?;
    let mut rng = rand::SeedableRng::seed_from_u64(1);
    opened.train.start_epoch(1, &mut rng)?;
    let mut held = Vec::new();
    let mut n = 0usize;
    while let Some(b) = opened.train.next_batch(batch) {
        let b = b?;
        n += b.ids.len();
        if mode == "memory" {
            held.extend(b.images);
        }
    }
    std::hint::black_box(&held);
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let peak = scoring::proc_status_kib("self", "VmHWM:").unwrap_or(0) as f64 / 1024.0;
    println!("{peak:.1} {rate:.1}");
    Ok(())
}
