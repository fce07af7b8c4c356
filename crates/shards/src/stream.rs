//! Reading shards back as one pass over a split: a background thread fetches and decodes
//! shards in a seeded shuffled order, at most `prefetch_shards` ahead of the consumer, and
//! a shuffle buffer mixes samples across shards. Memory is bounded by those two numbers,
//! not by the dataset.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::error::{Result, ShardError, io};
use crate::format::{INDEX, Index, Sample, ShardInfo, read_shard};

/// Where a dataset's shards and index are read from.
pub trait ShardSource: Send + Sync {
    /// The whole file `name` (a shard or the index).
    fn fetch(&self, name: &str) -> Result<Vec<u8>>;
    /// The location, for messages.
    fn describe(&self) -> String;
}

/// Shards in a local folder.
pub struct Dir(pub PathBuf);

impl ShardSource for Dir {
    fn fetch(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.0.join(name);
        std::fs::read(&path).map_err(io(path))
    }

    fn describe(&self) -> String {
        self.0.display().to_string()
    }
}

/// The dataset's index, checked.
pub fn open_index(source: &dyn ShardSource) -> Result<Index> {
    let bytes = source.fetch(INDEX)?;
    let index: Index = serde_json::from_slice(&bytes).map_err(|e| ShardError::Source {
        what: format!("{}/{INDEX}", source.describe()),
        reason: e.to_string(),
    })?;
    if index.format != Index::FORMAT {
        return Err(ShardError::Source {
            what: format!("{}/{INDEX}", source.describe()),
            reason: format!("format {} (this build reads {})", index.format, Index::FORMAT),
        });
    }
    Ok(index)
}

#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Decoded shards held ready ahead of the consumer.
    pub prefetch_shards: usize,
    /// Samples mixed across shards before one is handed out.
    pub shuffle_buffer: usize,
    pub seed: u64,
}

/// Turns a stored sample into what the consumer wants, on the reading thread; `id` is the
/// sample's position in the split (stable across passes).
pub type Decode<T> = Arc<dyn Fn(usize, Sample) -> Result<T> + Send + Sync>;

/// One shuffled pass over `shards`: an iterator of decoded samples. Dropping it stops the
/// reading thread at its next shard.
pub struct Stream<T> {
    rx: Receiver<Result<Vec<T>>>,
    current: std::vec::IntoIter<T>,
    buffer: Vec<T>,
    capacity: usize,
    rng: StdRng,
    exhausted: bool,
    _reader: JoinHandle<()>,
}

/// Start pass `pass` (0, 1, ...) over `shards`: each pass visits the shards in its own
/// seeded order.
pub fn stream<T: Send + 'static>(
    source: Arc<dyn ShardSource>,
    shards: &[ShardInfo],
    pass: u64,
    options: StreamOptions,
    decode: Decode<T>,
) -> Stream<T> {
    let seed = options.seed ^ pass.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut offsets = Vec::with_capacity(shards.len());
    let mut total = 0;
    for s in shards {
        offsets.push(total);
        total += s.samples;
    }
    let mut order: Vec<usize> = (0..shards.len()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let shards = shards.to_vec();
    let (tx, rx) = sync_channel(options.prefetch_shards.max(1));
    let reader = std::thread::spawn(move || {
        for i in order {
            let info = &shards[i];
            let decoded = source
                .fetch(&info.name)
                .and_then(|bytes| read_shard(&info.name, &bytes))
                .and_then(|samples| {
                    samples
                        .into_iter()
                        .enumerate()
                        .map(|(p, s)| decode(offsets[i] + p, s))
                        .collect::<Result<Vec<T>>>()
                });
            let failed = decoded.is_err();
            if tx.send(decoded).is_err() || failed {
                return;
            }
        }
    });
    Stream {
        rx,
        current: Vec::new().into_iter(),
        buffer: Vec::with_capacity(options.shuffle_buffer.max(1)),
        capacity: options.shuffle_buffer.max(1),
        rng: StdRng::seed_from_u64(seed.rotate_left(17)),
        exhausted: false,
        _reader: reader,
    }
}

impl<T> Iterator for Stream<T> {
    type Item = Result<T>;

    fn next(&mut self) -> Option<Result<T>> {
        while self.buffer.len() < self.capacity && !self.exhausted {
            if let Some(x) = self.current.next() {
                self.buffer.push(x);
                continue;
            }
            match self.rx.recv() {
                Ok(Ok(shard)) => self.current = shard.into_iter(),
                Ok(Err(e)) => {
                    self.exhausted = true;
                    return Some(Err(e));
                }
                Err(_) => self.exhausted = true,
            }
        }
        if self.buffer.is_empty() {
            return None;
        }
        let i = self.rng.random_range(0..self.buffer.len());
        Some(Ok(self.buffer.swap_remove(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write::{ShardWriter, write_index};

    fn dataset(dir: &std::path::Path, n: usize, shard_size: usize) -> Index {
        let mut w = ShardWriter::new(dir, "train", shard_size).unwrap();
        for i in 0..n {
            w.add(
                &format!("s{i:05}"),
                "png",
                format!("image {i}").as_bytes(),
                (i % 10) as u8,
            )
            .unwrap();
        }
        let index = Index {
            format: Index::FORMAT,
            classes: (0..10).map(|c| c.to_string()).collect(),
            train: w.finish().unwrap(),
            val: Vec::new(),
            source: "test".into(),
        };
        write_index(dir, &index).unwrap();
        index
    }

    fn ids(index: &Index, dir: &std::path::Path, pass: u64, buffer: usize) -> Vec<(usize, String, u8)> {
        let decode: Decode<(usize, String, u8)> =
            Arc::new(|id, s: Sample| Ok((id, String::from_utf8(s.bytes).unwrap(), s.label)));
        let options = StreamOptions {
            prefetch_shards: 2,
            shuffle_buffer: buffer,
            seed: 5,
        };
        stream(Arc::new(Dir(dir.to_path_buf())), &index.train, pass, options, decode)
            .collect::<Result<Vec<_>>>()
            .unwrap()
    }

    #[test]
    fn every_sample_once_per_pass_shuffled_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let index = dataset(dir.path(), 103, 10);
        assert_eq!(index.train.len(), 11);
        assert_eq!(index.train[10].samples, 3);
        assert_eq!(open_index(&Dir(dir.path().into())).unwrap(), index);
        let first = ids(&index, dir.path(), 0, 16);
        let mut seen: Vec<usize> = first.iter().map(|x| x.0).collect();
        assert_ne!(seen, (0..103).collect::<Vec<_>>(), "shuffled");
        seen.sort_unstable();
        assert_eq!(seen, (0..103).collect::<Vec<_>>(), "each sample once");
        for (id, bytes, label) in &first {
            // Ids are positions in the split: stable whatever the pass's order.
            assert_eq!(bytes, &format!("image {id}"));
            assert_eq!(*label as usize, id % 10);
        }
        assert_eq!(ids(&index, dir.path(), 0, 16), first, "same seed and pass, same order");
        assert_ne!(ids(&index, dir.path(), 1, 16), first, "another pass, another order");
    }

    #[test]
    fn damaged_or_missing_shards_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let index = dataset(dir.path(), 20, 10);
        std::fs::write(dir.path().join(&index.train[1].name), b"not a tar").unwrap();
        let decode: Decode<Sample> = Arc::new(|_, s| Ok(s));
        let options = StreamOptions {
            prefetch_shards: 1,
            shuffle_buffer: 4,
            seed: 1,
        };
        let err = stream(
            Arc::new(Dir(dir.path().into())),
            &index.train,
            0,
            options,
            decode.clone(),
        )
        .find_map(|r| r.err())
        .expect("an error");
        assert!(err.to_string().contains("train-000001.tar"), "{err}");
        std::fs::remove_file(dir.path().join(&index.train[0].name)).unwrap();
        let err = stream(Arc::new(Dir(dir.path().into())), &index.train, 0, options, decode)
            .find_map(|r| r.err())
            .expect("an error");
        assert!(err.to_string().contains("train-000000.tar"), "{err}");
    }

    #[test]
    fn a_shard_from_elsewhere_must_pair_every_image_with_a_label() {
        let mut tar = tar::Builder::new(Vec::new());
        for (name, data) in [("a.jpg", &b"x"[..]), ("a.cls", b"3"), ("b.jpg", b"y")] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_cksum();
            tar.append_data(&mut h, name, data).unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let err = read_shard("x.tar", &bytes).unwrap_err().to_string();
        assert!(err.contains("x.tar") && err.contains("`b` has no `.cls`"), "{err}");
    }
}
