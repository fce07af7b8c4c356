//! Command-line arguments shared by the trainer's commands and the benchmarks: where the
//! labelled images come from.

use std::path::PathBuf;

use crate::run::DataSource;
use clap::Args;

/// Where the labelled images come from; exactly one of these.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct DataArgs {
    /// Image folder `<root>/<class>/<file>`, or a `.tar.gz` of one.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Folder holding the official CIFAR-10 binary files (data_batch_*.bin, test_batch.bin).
    #[arg(long)]
    cifar_binary: Option<PathBuf>,
    /// Download the official CIFAR-10 binary release (MD5-checked) into this cache folder.
    #[arg(long)]
    download_cifar: Option<PathBuf>,
    /// WebDataset shards and their index.json (`trainer data shard`), in a folder or
    /// under `s3://bucket/prefix/`: streamed, for datasets bigger than memory.
    #[arg(long)]
    shards: Option<String>,
}

impl DataArgs {
    pub fn source(&self, test: bool) -> DataSource {
        match (&self.data, &self.cifar_binary, &self.download_cifar, &self.shards) {
            (Some(p), ..) => DataSource::Folder(p.clone()),
            (_, Some(d), ..) => DataSource::CifarBinary { dir: d.clone(), test },
            (_, _, Some(c), _) => DataSource::CifarDownload { cache: c.clone(), test },
            (.., Some(s)) => DataSource::Shards(s.clone()),
            _ => unreachable!("clap requires one data source"),
        }
    }
}
