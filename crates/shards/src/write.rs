//! Writing shards: a new `.tar` every `shard_size` samples, each written via a temporary
//! name so a reader never sees half a shard.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use crate::error::{Result, io};
use crate::format::{INDEX, Index, ShardInfo};

pub struct ShardWriter {
    dir: PathBuf,
    /// Shards are `<prefix>-000000.tar`, `<prefix>-000001.tar`, ...
    prefix: String,
    shard_size: usize,
    current: Option<(tar::Builder<BufWriter<File>>, PathBuf)>,
    in_current: usize,
    done: Vec<ShardInfo>,
}

impl ShardWriter {
    pub fn new(dir: &Path, prefix: &str, shard_size: usize) -> Result<ShardWriter> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            shard_size: shard_size.max(1),
            current: None,
            in_current: 0,
            done: Vec::new(),
        })
    }

    fn name(&self, n: usize) -> String {
        format!("{}-{n:06}.tar", self.prefix)
    }

    /// Append one sample (`key` must be unique in the dataset, without dots).
    pub fn add(&mut self, key: &str, ext: &str, bytes: &[u8], label: u8) -> Result<()> {
        if self.current.is_none() {
            let path = self.dir.join(format!("{}.partial", self.name(self.done.len())));
            let file = File::create(&path).map_err(io(&path))?;
            self.current = Some((tar::Builder::new(BufWriter::new(file)), path));
        }
        let (builder, path) = self.current.as_mut().expect("opened above");
        let label = label.to_string();
        for (name, data) in [
            (format!("{key}.{ext}"), bytes),
            (format!("{key}.cls"), label.as_bytes()),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, &name, data)
                .map_err(io(path.as_path()))?;
        }
        self.in_current += 1;
        if self.in_current == self.shard_size {
            self.close()?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        if let Some((builder, partial)) = self.current.take() {
            let name = self.name(self.done.len());
            let file = builder.into_inner().map_err(io(&partial))?;
            file.into_inner()
                .map_err(|e| io(&partial)(e.into_error()))?
                .sync_all()
                .map_err(io(&partial))?;
            let path = self.dir.join(&name);
            std::fs::rename(&partial, &path).map_err(io(&path))?;
            self.done.push(ShardInfo {
                name,
                samples: self.in_current,
            });
            self.in_current = 0;
        }
        Ok(())
    }

    /// Close the last shard; the shards written, in order.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>> {
        self.close()?;
        Ok(self.done)
    }
}

/// Write `index.json` into `dir`: last, so a dataset with an index is a whole one.
pub fn write_index(dir: &Path, index: &Index) -> Result<PathBuf> {
    let path = dir.join(INDEX);
    let json = serde_json::to_vec_pretty(index).expect("index serialises");
    std::fs::write(&path, json).map_err(io(&path))?;
    Ok(path)
}
