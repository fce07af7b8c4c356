//! `trainer data shard`: an image folder as WebDataset shards, locally or under S3.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use trainer::sharded::{self, ShardOptions};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Split an image folder (or a `.tar.gz` of one) as `trainer train` would and write
    /// each split as shuffled `.tar` shards plus `index.json`, for `train --shards`.
    Shard(ShardArgs),
}

#[derive(clap::Args)]
struct ShardArgs {
    /// `<root>/<class>/<file>` image folder, or a `.tar.gz` of one (unpacked to a
    /// temporary folder first).
    input: PathBuf,
    /// A folder, or `s3://bucket/prefix/` (written locally, then uploaded, index last).
    #[arg(long)]
    out: String,
    /// Samples per shard.
    #[arg(long, default_value_t = 10_000)]
    shard_size: usize,
    /// Validation images held out (stratified, seeded), as `trainer train --val-size`.
    #[arg(long, default_value_t = 5_000)]
    val_size: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Skip unreadable image files (and count them) instead of stopping at the first.
    #[arg(long)]
    skip_bad_images: bool,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Command::Shard(a) => shard(a),
    }
}

fn shard(a: ShardArgs) -> Result<()> {
    let to_s3 = a.out.starts_with("s3://");
    if to_s3 {
        a.out
            .parse::<contract::Location>()
            .map_err(|reason| anyhow::anyhow!("--out {}: {reason}", a.out))?;
    }
    let unpacked = tempfile::tempdir()?;
    let input = if scoring::folder::is_targz(&a.input) {
        unpack(&a.input, unpacked.path())?
    } else {
        a.input.clone()
    };
    let staging = tempfile::tempdir()?;
    let out_dir = if to_s3 {
        staging.path().to_path_buf()
    } else {
        PathBuf::from(&a.out)
    };
    let opts = ShardOptions {
        shard_size: a.shard_size,
        val_size: a.val_size,
        seed: a.seed,
        skip_bad: a.skip_bad_images,
    };
    let written = sharded::write(&input, &out_dir, opts).with_context(|| format!("sharding {}", a.input.display()))?;
    if to_s3 {
        upload(&out_dir, &a.out, &written.index)?;
    }
    let index = &written.index;
    println!(
        "{}: {} classes; train {} images in {} shards, validation {} in {}; {} unreadable skipped",
        a.out,
        index.classes.len(),
        index.train_samples(),
        index.train.len(),
        index.val.iter().map(|s| s.samples).sum::<usize>(),
        index.val.len(),
        written.skipped
    );
    println!("train on it: trainer train --shards {}", a.out);
    Ok(())
}

/// Unpack a `.tar.gz` image folder and find its `<class>/` level.
fn unpack(archive: &Path, into: &Path) -> Result<PathBuf> {
    eprintln!("unpacking {} into {}", archive.display(), into.display());
    let file = std::fs::File::open(archive).with_context(|| format!("opening {}", archive.display()))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(into)
        .with_context(|| format!("unpacking {}", archive.display()))?;
    let mut root = into.to_path_buf();
    // A single top folder (`train/cat/...`) is a wrapper, not a class.
    loop {
        let dirs: Vec<PathBuf> = std::fs::read_dir(&root)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        match dirs.as_slice() {
            [only]
                if std::fs::read_dir(only)?
                    .filter_map(|e| e.ok())
                    .all(|e| e.path().is_dir()) =>
            {
                root = only.clone()
            }
            [] => bail!("{}: no class folders inside", archive.display()),
            _ => return Ok(root),
        }
    }
}

/// Upload the shards, then the index: a reader that finds the index finds every shard.
fn upload(dir: &Path, dest: &str, index: &shards::Index) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let store = registry::Store::open(dest).await?;
        let names = index.train.iter().chain(&index.val).map(|s| s.name.as_str());
        let bar = scoring::progress::bar((index.train.len() + index.val.len()) as u64, "uploading");
        for name in names.chain([shards::INDEX]) {
            let bytes = std::fs::read(dir.join(name)).map_err(|e| registry::RegistryError::Io {
                path: dir.join(name),
                source: e,
            })?;
            let kind = if name == shards::INDEX {
                "application/json"
            } else {
                "application/x-tar"
            };
            store.put(&format!("{}{name}", store.prefix()), bytes, kind).await?;
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok::<_, registry::RegistryError>(())
    })
    .with_context(|| format!("uploading to {dest}"))
}
