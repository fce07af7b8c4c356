//! `trainer models list|canary|promote|rollback`: the published models of a store, and
//! moving the pointer.

use anyhow::Result;
use clap::Subcommand;
use contract::Split;
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
    /// prefix) after checking the object and its checksum; any candidate ends, and the
    /// model that served is kept as the one `rollback` returns to. Functions switch within
    /// MODEL_REFRESH_SECONDS.
    Promote {
        version: String,
        #[arg(long)]
        at: String,
    },
    /// Try a published model beside the current one on a share of requests, picked by
    /// caller (JWT sub) or else by image, so each sticks to one side: it answers them, or
    /// with --shadow runs beside the current model, which still answers, and agreement is
    /// recorded. It must have the current model's labels. --percent 0 ends it.
    Canary {
        /// Model version or sha256 prefix (not needed with --percent 0).
        version: Option<String>,
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        percent: u8,
        #[arg(long)]
        shadow: bool,
        #[arg(long)]
        at: String,
    },
    /// Back to the model the pointer named before the last promote or publish.
    Rollback {
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
                "{:<11} {:<18} {:<14} {:>8} {:>8}  published",
                "live", "version", "sha256", "val acc", "test acc"
            );
            for m in &models {
                let test = m.test_accuracy.map(|t| format!("{t:.4}")).unwrap_or_else(|| "-".into());
                let role = match (&m.candidate, m.live) {
                    (Some(c), _) => c.clone(),
                    (None, true) => "*".into(),
                    (None, false) => String::new(),
                };
                println!(
                    "{:<11} {:<18} {:<14} {:>8.4} {:>8}  {}",
                    role,
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
        Command::Canary {
            version,
            percent,
            shadow,
            at,
        } => {
            let mode = if shadow { Split::Shadow } else { Split::Canary };
            let pointer = rt.block_on(async {
                let query = version.unwrap_or_default();
                registry::releases::canary(&Store::open(&at).await?, &query, percent, mode, &at).await
            })?;
            match &pointer.candidate {
                Some(c) => println!(
                    "{} {} on {}% of requests beside {}",
                    c.model.version,
                    c.mode.as_str(),
                    c.percent,
                    pointer.version
                ),
                None => println!("no candidate: {} answers every request", pointer.version),
            }
            println!("warm functions switch within MODEL_REFRESH_SECONDS (60 s by default)");
        }
        Command::Rollback { at } => {
            let pointer = rt.block_on(async { registry::releases::rollback(&Store::open(&at).await?, &at).await })?;
            println!("pointer back on {} ({})", pointer.version, pointer.sha256);
            println!("warm functions switch within MODEL_REFRESH_SECONDS (60 s by default)");
        }
    }
    Ok(())
}
