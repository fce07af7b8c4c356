//! `trainer models list|promote`: the published models of a store, and moving the pointer.

use anyhow::Result;
use clap::Subcommand;
use registry::store::Store;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The published models, newest first, and which one the pointer names.
    List {
        /// The store: s3://bucket/prefix/ or file://dir/ (what `publish --to` was given).
        #[arg(long)]
        at: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Point models/latest.json at a published model (its model version or a sha256
    /// prefix) after checking the object and its checksum. Rollback is promoting the
    /// previous model. Functions switch within MODEL_REFRESH_SECONDS.
    Promote {
        version: String,
        #[arg(long)]
        at: String,
    },
}

pub fn run(args: Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.command {
        Command::List { at, json } => {
            let models = rt.block_on(async { registry::releases::list(&Store::open(&at).await?).await })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
                return Ok(());
            }
            println!(
                "{:<4} {:<18} {:<14} {:>8} {:>8}  published",
                "live", "version", "sha256", "val acc", "test acc"
            );
            for m in &models {
                let test = m.test_accuracy.map(|t| format!("{t:.4}")).unwrap_or_else(|| "-".into());
                println!(
                    "{:<4} {:<18} {:<14} {:>8.4} {:>8}  {}",
                    if m.live { "*" } else { "" },
                    m.version,
                    &m.sha256[..12],
                    m.val_accuracy,
                    test,
                    m.published_at
                );
            }
            if models.is_empty() {
                println!("(no published models under {at})");
            }
        }
        Command::Promote { version, at } => {
            let pointer =
                rt.block_on(async { registry::releases::promote(&Store::open(&at).await?, &version, &at).await })?;
            println!("pointer now names {} ({})", pointer.version, pointer.sha256);
            println!("warm functions switch within MODEL_REFRESH_SECONDS (60 s by default)");
        }
    }
    Ok(())
}
