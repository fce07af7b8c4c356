//! The on-disk layout: tar shards of `<key>.<ext>` + `<key>.cls` pairs, and the index.

use std::collections::BTreeMap;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::error::{Result, ShardError};

/// The index file beside the shards.
pub const INDEX: &str = "index.json";

/// What a sharded dataset holds: its classes (label order) and each split's shards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Layout version; readers refuse one they do not know.
    pub format: u32,
    pub classes: Vec<String>,
    pub train: Vec<ShardInfo>,
    pub val: Vec<ShardInfo>,
    /// Where the samples came from, for metrics and model metadata.
    pub source: String,
}

impl Index {
    pub const FORMAT: u32 = 1;

    pub fn train_samples(&self) -> usize {
        self.train.iter().map(|s| s.samples).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name relative to the dataset's folder or prefix.
    pub name: String,
    pub samples: usize,
}

/// One labelled sample as stored: the image file's bytes, undecoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub key: String,
    /// The image file's extension (`jpg`, `png`, ...).
    pub ext: String,
    pub bytes: Vec<u8>,
    pub label: u8,
}

/// A key's image (extension and bytes) and label, as they turn up.
type Parts = (Option<(String, Vec<u8>)>, Option<u8>);

/// The samples of one shard, in stored order. Every key needs exactly one image and one
/// `.cls`; anything else is a format error naming the shard.
pub fn read_shard(name: &str, bytes: &[u8]) -> Result<Vec<Sample>> {
    let bad = |reason: String| ShardError::Format {
        shard: name.to_string(),
        reason,
    };
    let mut archive = tar::Archive::new(bytes);
    // Keys in first-seen order; a sample's two files are adjacent in a shard we wrote,
    // but a shard from elsewhere may order them otherwise.
    let mut order = Vec::new();
    let mut parts: BTreeMap<String, Parts> = BTreeMap::new();
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| bad(e.to_string()))?
            .to_string_lossy()
            .into_owned();
        let Some((key, ext)) = path.rsplit_once('.') else {
            return Err(bad(format!("`{path}` has no extension")));
        };
        let mut data = Vec::with_capacity(entry.size() as usize);
        entry.read_to_end(&mut data).map_err(|e| bad(e.to_string()))?;
        let slot = parts.entry(key.to_string()).or_insert_with(|| {
            order.push(key.to_string());
            (None, None)
        });
        if ext == "cls" {
            let text = String::from_utf8_lossy(&data);
            let label = text
                .trim()
                .parse::<u8>()
                .map_err(|_| bad(format!("`{path}`: label `{}` is not 0-255", text.trim())))?;
            slot.1 = Some(label);
        } else if slot.0.replace((ext.to_string(), data)).is_some() {
            return Err(bad(format!("`{key}` has two image files")));
        }
    }
    order
        .into_iter()
        .map(|key| match parts.remove(&key) {
            Some((Some((ext, bytes)), Some(label))) => Ok(Sample { key, ext, bytes, label }),
            Some((None, _)) => Err(bad(format!("`{key}` has a label but no image"))),
            _ => Err(bad(format!("`{key}` has no `.cls` label"))),
        })
        .collect()
}
