//! `trainer publish`: upload a run to S3 or a folder and (unless told not to) move the pointer.

use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args)]
pub struct Args {
    /// Run directory holding model.onnx (and metrics.json, plots).
    #[arg(long, default_value = "runs/latest", conflicts_with = "model")]
    run: PathBuf,
    /// A model file to publish instead of a run's, e.g. the shipped
    /// `models/cifar10.onnx`; metrics.json and plots beside it travel with it.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Destination: s3://bucket/prefix/ or file://dir/. S3 uses the standard AWS
    /// credential chain; AWS_ENDPOINT_URL_S3 points it at an S3-compatible server.
    #[arg(long)]
    to: String,
    /// Upload only, leaving models/latest.json as it is: the model serves once promoted,
    /// or as a canary (`trainer models canary`).
    #[arg(long)]
    no_promote: bool,
}

pub fn run(args: Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let model = args.model.unwrap_or_else(|| args.run.join("model.onnx"));
    let pointer = if args.no_promote {
        registry::Pointer::Leave
    } else {
        registry::Pointer::Move
    };
    let p = rt.block_on(registry::publish_model(&model, &args.to, pointer))?;
    println!("model   {}", p.model_uri);
    if args.no_promote {
        println!(
            "pointer {} left as it was; promote or canary it with `trainer models`",
            p.pointer_uri
        );
    } else {
        println!("pointer {}", p.pointer_uri);
    }
    println!("{}", serde_json::to_string_pretty(&p.pointer)?);
    Ok(())
}
