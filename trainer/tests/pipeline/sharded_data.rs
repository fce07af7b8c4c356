//! Sharded datasets: `trainer data shard`'s writer on the committed fixture images, and a
//! run that streams them (`train --shards`) through the whole recipe. A module of the
//! pipeline tests (one test binary fewer to link).

use std::path::Path;

use trainer::config::Preset;
use trainer::run::{DataSource, RunOptions};
use trainer::sharded::{self, ShardOptions};
use trainer::training::TrainSet;

use super::fixture_images as fixtures;

fn shard(out: &Path) -> shards::Index {
    let opts = ShardOptions {
        shard_size: 64,
        val_size: 100,
        seed: 42,
        skip_bad: false,
    };
    sharded::write(&fixtures(), out, opts).unwrap().index
}

#[test]
fn shards_hold_the_split_once_each_shuffled_with_labels() {
    let dir = tempfile::tempdir().unwrap();
    let index = shard(dir.path());
    assert_eq!(index.classes, contract::CIFAR10_LABELS);
    assert_eq!(index.train_samples(), 400);
    assert_eq!(
        index.train.iter().map(|s| s.samples).collect::<Vec<_>>(),
        [64, 64, 64, 64, 64, 64, 16]
    );
    assert_eq!(index.val.iter().map(|s| s.samples).sum::<usize>(), 100);
    // Every fixture file is in exactly one split, under its class's label.
    let listed = scoring::folder::list_image_files(&fixtures()).unwrap();
    let mut seen = Vec::new();
    let mut per_class_val = [0usize; 10];
    for (split, infos) in [("train", &index.train), ("val", &index.val)] {
        for info in infos {
            let bytes = std::fs::read(dir.path().join(&info.name)).unwrap();
            let samples = shards::read_shard(&info.name, &bytes).unwrap();
            assert_eq!(samples.len(), info.samples);
            for s in samples {
                let i: usize = s.key.parse().unwrap();
                let (class, file) = &listed[i];
                assert_eq!(index.classes[s.label as usize], *class);
                assert_eq!(s.bytes, std::fs::read(fixtures().join(class).join(file)).unwrap());
                if split == "val" {
                    per_class_val[s.label as usize] += 1;
                }
                seen.push(i);
            }
        }
    }
    assert_eq!(per_class_val, [10; 10], "stratified");
    let first_shard: Vec<u8> = shards::read_shard(
        &index.train[0].name,
        &std::fs::read(dir.path().join(&index.train[0].name)).unwrap(),
    )
    .unwrap()
    .iter()
    .map(|s| s.label)
    .collect();
    assert!(
        first_shard.iter().collect::<std::collections::BTreeSet<_>>().len() >= 8,
        "shuffled before sharding: {first_shard:?}"
    );
    seen.sort_unstable();
    assert_eq!(seen, (0..500).collect::<Vec<_>>());

    // Same seed, same shards.
    let again = tempfile::tempdir().unwrap();
    assert_eq!(shard(again.path()), index);
    for info in &index.train {
        assert_eq!(
            std::fs::read(dir.path().join(&info.name)).unwrap(),
            std::fs::read(again.path().join(&info.name)).unwrap()
        );
    }
}

#[test]
fn an_epoch_streams_every_training_image_once_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    shard(dir.path());
    let mut config = Preset::Tiny.config();
    config.data.shuffle_buffer = 50;
    config.data.train_limit = 0;
    let mut opened = sharded::open(dir.path().to_str().unwrap(), &config).unwrap();
    assert_eq!(opened.val.len(), 100);
    assert_eq!(opened.train.len(), 400);
    let mut rng = rand::SeedableRng::seed_from_u64(1);
    let mut orders = Vec::new();
    for epoch in 1..=2 {
        opened.train.start_epoch(epoch, &mut rng).unwrap();
        let mut ids = Vec::new();
        while let Some(batch) = opened.train.next_batch(48) {
            let batch = batch.unwrap();
            assert!(
                batch.ids.len() <= 48 && batch.images.len() == batch.ids.len() && batch.labels.len() == batch.ids.len()
            );
            ids.extend(batch.ids);
        }
        orders.push(ids.clone());
        ids.sort_unstable();
        assert_eq!(ids, (0..400).collect::<Vec<_>>(), "epoch {epoch}: each image once");
    }
    assert_ne!(orders[0], orders[1], "each epoch its own order");
    // train_limit caps an epoch.
    config.data.train_limit = 100;
    let mut capped = sharded::open(dir.path().to_str().unwrap(), &config).unwrap();
    capped.train.start_epoch(1, &mut rng).unwrap();
    let n: usize = std::iter::from_fn(|| capped.train.next_batch(30))
        .map(|b| b.unwrap().ids.len())
        .sum();
    assert_eq!(n, 100);
}

#[test]
fn a_run_on_shards_trains_exports_and_checks_like_one_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shards");
    shard(&data);
    let out = dir.path().join("run");
    let metrics = trainer::run::train(RunOptions {
        config: Preset::Tiny.config(),
        data: DataSource::Shards(data.to_str().unwrap().into()),
        test: None,
        out: out.clone(),
        skip_bad_images: false,
        feedback: None,
    })
    .expect("a run on shards");
    assert_eq!(metrics.validation.images, 100);
    assert_eq!(metrics.train_images, 400);
    assert!(metrics.onnx_parity_max_abs_diff <= 1e-4);
    assert!(metrics.dataset.contains("shards"), "{}", metrics.dataset);
    assert!(out.join("model.onnx").is_file());

    // A damaged shard stops the run with its name, not a panic.
    let victim = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("train-000002"))
        .unwrap();
    std::fs::write(&victim, b"damaged").unwrap();
    let err = trainer::run::train(RunOptions {
        config: Preset::Tiny.config(),
        data: DataSource::Shards(data.to_str().unwrap().into()),
        test: None,
        out,
        skip_bad_images: false,
        feedback: None,
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("train-000002.tar"), "{err}");
}
