//! Writes `tests/fixtures/cifar10-val/`: the first `PER_CLASS` images of each class in the
//! shipped model's validation split (the seeded split of `models/metrics.json`'s config),
//! copied byte for byte from the training archive. Images the shipped model never trained
//! on, so tests and the notebook may report its accuracy on them.
//!
//! `cargo run --release -p trainer --example fixture_set -- ../shared/datasets/cifar10-jpeg/train.tar.gz`

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use trainer::config::TrainConfig;

const PER_CLASS: usize = 50;

fn main() -> Result<()> {
    let archive = PathBuf::from(std::env::args().nth(1).context("usage: fixture_set <train.tar.gz>")?);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(root.join("models/metrics.json"))?)?;
    let config: TrainConfig = serde_json::from_value(metrics["config"].clone()).context("metrics.json config")?;
    let data = trainer::data::load_image_folder(&archive, false)?;
    let (_, val) =
        trainer::data::stratified_split(&data.labels, data.classes.len(), config.data.val_size, config.data.seed);
    let raw = scoring::folder::read_image_files(&archive)?;
    let out = root.join("tests/fixtures/cifar10-val");
    let mut taken = vec![0usize; data.classes.len()];
    for i in val {
        let label = usize::from(data.labels[i]);
        if taken[label] == PER_CLASS {
            continue;
        }
        taken[label] += 1;
        let (class, name) = data.files[i].split_once('/').context("class/file")?;
        let dir = out.join(class);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(name), &raw[&(class.to_string(), name.to_string())])?;
    }
    println!("wrote {} images to {}", taken.iter().sum::<usize>(), out.display());
    Ok(())
}
