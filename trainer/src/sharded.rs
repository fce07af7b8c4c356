//! Datasets too big for memory: WebDataset shards (`crates/shards`) in a folder or under
//! an S3 prefix. `trainer data shard` writes them (split and shuffled once, seeded);
//! `trainer train --shards` streams the training split an epoch at a time through a
//! bounded prefetch and shuffle buffer, and holds only the validation split in memory.

use std::path::Path;
use std::sync::Arc;

use contract::{DecodeLimits, Rgb32};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use shards::{Dir, Index, Sample, ShardSource, ShardWriter, Stream, StreamOptions};

use crate::config::TrainConfig;
use crate::data::{self, Dataset};
use crate::error::{Result, TrainError};
use crate::training::{Batch, TrainSet};

/// Shards under `s3://bucket/prefix/`, read whole, one request per shard.
struct S3Source {
    store: registry::Store,
    uri: String,
    rt: tokio::runtime::Runtime,
}

impl ShardSource for S3Source {
    fn fetch(&self, name: &str) -> shards::Result<Vec<u8>> {
        let key = format!("{}{name}", self.store.prefix());
        let fail = |reason: String| shards::ShardError::Source {
            what: self.store.uri(&key),
            reason,
        };
        match self.rt.block_on(self.store.get(&key)) {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(fail("no such object".into())),
            Err(e) => Err(fail(e.to_string())),
        }
    }

    fn describe(&self) -> String {
        self.uri.clone()
    }
}

/// A folder or `s3://bucket/prefix/` holding `index.json` and its shards.
pub fn source(location: &str) -> Result<Arc<dyn ShardSource>> {
    if location.starts_with("s3://") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(crate::error::io(location))?;
        let store = rt
            .block_on(registry::Store::open(location))
            .map_err(|e| TrainError::Store(e.to_string()))?;
        Ok(Arc::new(S3Source {
            store,
            uri: location.to_string(),
            rt,
        }))
    } else {
        Ok(Arc::new(Dir(location.into())))
    }
}

type Decoded = (usize, Rgb32, u8);

fn decoder() -> shards::Decode<Decoded> {
    let limits = DecodeLimits::default();
    Arc::new(move |id, s: Sample| {
        contract::decode_rgb32(&s.bytes, &limits)
            .map(|image| (id, image, s.label))
            .map_err(|e| shards::ShardError::Format {
                shard: format!("sample {}.{}", s.key, s.ext),
                reason: e.to_string(),
            })
    })
}

/// The training split, streamed: each epoch is a new seeded pass over the shards.
pub struct Streamed {
    source: Arc<dyn ShardSource>,
    index: Index,
    options: StreamOptions,
    /// Images per epoch (`train_limit` caps it).
    per_epoch: usize,
    stream: Option<Stream<Decoded>>,
    given: usize,
}

/// A sharded dataset opened for a run: the streamed training split and the validation
/// split decoded into memory.
pub struct Opened {
    pub train: Streamed,
    pub val: Dataset,
    pub classes: Vec<String>,
    pub source: String,
}

/// Open `location` for a run with `config` (`shuffle_buffer`, `prefetch_shards`, `seed`,
/// `train_limit`; the split itself was fixed when the shards were written).
pub fn open(location: &str, config: &TrainConfig) -> Result<Opened> {
    let source = source(location)?;
    let index = shards::open_index(source.as_ref())?;
    if index.val.is_empty() || index.train.is_empty() {
        return Err(TrainError::Config(format!(
            "{location}: the shards hold {} training and {} validation shards; `trainer data shard --val-size` writes both",
            index.train.len(),
            index.val.len()
        )));
    }
    let options = StreamOptions {
        prefetch_shards: config.data.prefetch_shards,
        shuffle_buffer: config.data.shuffle_buffer,
        seed: config.data.seed,
    };
    let mut val = Dataset {
        classes: index.classes.clone(),
        source: format!("{location} (validation shards)"),
        ..Default::default()
    };
    // In stored order, so validation figures do not depend on the shuffle.
    let in_order = StreamOptions {
        prefetch_shards: options.prefetch_shards,
        shuffle_buffer: 1,
        seed: 0,
    };
    let mut samples: Vec<Decoded> =
        shards::stream(source.clone(), &index.val, 0, in_order, decoder()).collect::<shards::Result<_>>()?;
    samples.sort_unstable_by_key(|s| s.0);
    for (id, image, label) in samples {
        val.images.push(image);
        val.labels.push(label);
        val.files.push(format!("val:{id}"));
    }
    let total = index.train_samples();
    let per_epoch = if config.data.train_limit > 0 {
        config.data.train_limit.min(total)
    } else {
        total
    };
    Ok(Opened {
        classes: index.classes.clone(),
        source: format!("{location} ({} shards)", index.train.len()),
        val,
        train: Streamed {
            source,
            index,
            options,
            per_epoch,
            stream: None,
            given: 0,
        },
    })
}

impl Streamed {
    /// Images in the training shards (an epoch may use fewer: `train_limit`).
    pub fn total(&self) -> usize {
        self.index.train_samples()
    }
}

impl TrainSet for Streamed {
    fn len(&self) -> usize {
        self.per_epoch
    }

    fn head(&mut self, n: usize) -> Result<Vec<Rgb32>> {
        // A pass of its own (not an epoch's), so the whitening images are fixed by the seed.
        let pass = shards::stream(
            self.source.clone(),
            &self.index.train,
            u64::MAX,
            self.options,
            decoder(),
        );
        Ok(pass.take(n).map(|r| r.map(|s| s.1)).collect::<shards::Result<_>>()?)
    }

    fn start_epoch(&mut self, epoch: usize, _rng: &mut StdRng) -> Result<()> {
        self.stream = Some(shards::stream(
            self.source.clone(),
            &self.index.train,
            epoch as u64,
            self.options,
            decoder(),
        ));
        self.given = 0;
        Ok(())
    }

    fn next_batch(&mut self, size: usize) -> Option<Result<Batch>> {
        let stream = self.stream.as_mut()?;
        let want = size.min(self.per_epoch - self.given);
        let mut batch = Batch {
            images: Vec::with_capacity(want),
            labels: Vec::with_capacity(want),
            ids: Vec::with_capacity(want),
        };
        for item in stream.by_ref().take(want) {
            match item {
                Ok((id, image, label)) => {
                    batch.ids.push(id);
                    batch.images.push(image);
                    batch.labels.push(label);
                }
                Err(e) => return Some(Err(e.into())),
            }
        }
        self.given += batch.ids.len();
        (!batch.ids.is_empty()).then_some(Ok(batch))
    }
}

/// What `trainer data shard` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct ShardOptions {
    pub shard_size: usize,
    pub val_size: usize,
    pub seed: u64,
    pub skip_bad: bool,
}

/// What was written.
#[derive(Debug)]
pub struct Written {
    pub index: Index,
    pub skipped: usize,
}

/// Shard the image folder `input` (`<root>/<class>/<file>`) into `out`: the seeded
/// stratified split `trainer train` would make, each split shuffled before it is cut
/// into shards (streaming readers mix only within their buffer). Files are read one at
/// a time; only their names are held.
pub fn write(input: &Path, out: &Path, opts: ShardOptions) -> Result<Written> {
    let listed = scoring::folder::list_image_files(input)?;
    let classes = scoring::folder::class_names_of(listed.iter().map(|(c, _)| c.as_str()), &contract::CIFAR10_LABELS);
    if classes.len() < 2 {
        return Err(TrainError::Dataset {
            path: input.into(),
            reason: format!(
                "found {} class folders; need at least 2 (<root>/<class>/<file>)",
                classes.len()
            ),
        });
    }
    let labels: Vec<u8> = listed
        .iter()
        .map(|(c, _)| classes.iter().position(|k| k == c).expect("class listed") as u8)
        .collect();
    let (mut train, mut val) = data::stratified_split(&labels, classes.len(), opts.val_size, opts.seed);
    let mut rng = StdRng::seed_from_u64(opts.seed);
    train.shuffle(&mut rng);
    val.shuffle(&mut rng);
    let limits = DecodeLimits::default();
    let bar = scoring::progress::bar(listed.len() as u64, "sharding");
    let mut skipped = 0;
    let mut splits = Vec::new();
    for (name, idx) in [("train", &train), ("val", &val)] {
        let mut writer = ShardWriter::new(out, name, opts.shard_size)?;
        for &i in idx.iter() {
            bar.inc(1);
            let (class, file) = &listed[i];
            let path = input.join(class).join(file);
            let bytes = std::fs::read(&path).map_err(crate::error::io(&path))?;
            // Checked here so a bad file stops the sharding, not an epoch hours later.
            if let Err(source) = contract::decode_rgb32(&bytes, &limits) {
                if opts.skip_bad {
                    skipped += 1;
                    continue;
                }
                return Err(TrainError::BadImage { path, source });
            }
            let ext = Path::new(file)
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("img")
                .to_ascii_lowercase();
            writer.add(&format!("{i:09}"), &ext, &bytes, labels[i])?;
        }
        splits.push(writer.finish()?);
    }
    bar.finish_and_clear();
    let val_shards = splits.pop().expect("two splits");
    let train_shards = splits.pop().expect("two splits");
    let index = Index {
        format: Index::FORMAT,
        classes,
        train: train_shards,
        val: val_shards,
        source: input.display().to_string(),
    };
    shards::write_index(out, &index)?;
    Ok(Written { index, skipped })
}
