//! `trainer`: parses the command line and hands each subcommand to its module. anyhow
//! lives only in the binary, at the edge.

mod commands;

/// mimalloc, told by `trainer::memory` to keep what is freed: see there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Train a CNN on CIFAR-10 or an image folder, export ONNX, publish it."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train, evaluate, export `model.onnx` and write metrics and plots into `--out`.
    // Boxed: every hyper-parameter is a flag, which makes these arguments the largest.
    Train(Box<commands::train::Args>),
    /// Score an exported model (through tract, as the function does) on labelled images.
    /// A deployed endpoint is scored by `classify-client evaluate`.
    Evaluate(commands::evaluate::Args),
    /// Upload a run directory to `s3://bucket/prefix/` or `file://dir/`.
    Publish(commands::publish::Args),
    /// List the published models of a store; try one as a canary or shadow, promote one,
    /// roll back.
    Models(commands::models::Args),
    /// Compare captured traffic with the model's reference profile (PSI per feature);
    /// exits 2 when it drifted, so a schedule can act on it.
    Drift(commands::drift::Args),
    /// Redraw a run's learning curves, confusion matrix and reliability diagram from its
    /// metrics.json.
    Plot(commands::plot::Args),
    /// Fit a model file's temperature, prediction sets and out-of-distribution threshold
    /// on its validation halves, adding the outputs older files lack (no retraining).
    Calibrate(commands::calibrate::Args),
    /// Store a model file's weights as f16 (half the file; new runs export so already).
    Half(commands::half::Args),
    /// Prepare datasets: `data shard` writes an image folder as WebDataset shards for
    /// `train --shards` (datasets bigger than memory, local or on S3).
    Data(commands::data::Args),
}

fn main() -> Result<()> {
    anyhow::ensure!(
        trainer::memory::keep_freed_memory(),
        "mimalloc is not the global allocator"
    );
    match Cli::parse().command {
        Command::Train(args) => commands::train::run(*args),
        Command::Evaluate(args) => commands::evaluate::run(args),
        Command::Publish(args) => commands::publish::run(args),
        Command::Models(args) => commands::models::run(args),
        Command::Plot(args) => commands::plot::run(args),
        Command::Drift(args) => commands::drift::run(args),
        Command::Calibrate(args) => commands::calibrate::run(args),
        Command::Half(args) => commands::half::run(args),
        Command::Data(args) => commands::data::run(args),
    }
}
