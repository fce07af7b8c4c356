//! `trainer plot`: redraw a run's pictures from its metrics.json.

use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// Run directory holding metrics.json; the PNGs are written beside it.
    #[arg(long, default_value = "runs/latest")]
    pub run: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let path = args.run.join("metrics.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let m: trainer::metrics::RunMetrics =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    trainer::run::draw_plots(&args.run, &m)?;
    println!("plots written to {}", args.run.display());
    Ok(())
}
