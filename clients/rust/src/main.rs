//! `classify-client`: classify files with a deployed endpoint, or score it on a labelled
//! folder. anyhow lives only here, at the edge.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use client::{Client, ClientOptions, Reply};

#[derive(Parser)]
#[command(version, about = "Client of a deployed image classifier.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify image files and print the top classes.
    Classify(ClassifyArgs),
    /// Correct an answer: the label it should have had, for its request id (the
    /// `x-request-id` of the answer) or for the image file itself.
    Feedback(FeedbackArgs),
    /// Post every image of a labelled folder (`<root>/<class>/<file>`, or a .tar.gz of one)
    /// and report accuracy, per-class accuracy, latency percentiles and failures.
    Evaluate(EvaluateArgs),
}

/// How to reach the endpoint.
#[derive(Args, Debug, Clone)]
struct EndpointArgs {
    /// Base URL of the API (`.../predict` is appended) or the predict URL itself.
    #[arg(long, env = "CLASSIFY_URL")]
    url: String,
    /// Seconds before a request is abandoned.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Retries of a request answered 429/5xx or lost in transport (exponential backoff).
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Bearer token (a JWT of the stack's issuer) for an API deployed with sign-in.
    #[arg(long, env = "CLASSIFY_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

impl EndpointArgs {
    fn client(&self, top_k: usize, min_probability: Option<f32>, explain: bool) -> Client {
        Client::new(
            &self.url,
            ClientOptions {
                timeout: Duration::from_secs(self.timeout),
                retries: self.retries,
                top_k,
                min_probability,
                token: self.token.clone(),
                explain,
            },
        )
    }
}

#[derive(Args)]
struct ClassifyArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// Image files to classify.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Classes to show per image (1-10).
    #[arg(long, default_value_t = 3)]
    top_k: usize,
    /// Top-1 probability under which an image is reported as matching no class
    /// (default: the function's MIN_PROBABILITY).
    #[arg(long)]
    min_probability: Option<f32>,
    /// Ask where the model looked (saliency maps, in the JSON answers).
    #[arg(long)]
    explain: bool,
    /// Print the answers as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct FeedbackArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// One of the model's labels (`GET /model`).
    #[arg(long)]
    label: String,
    /// The request id of the answer being corrected.
    #[arg(long, conflicts_with = "image", required_unless_present = "image")]
    request_id: Option<String>,
    /// The image file, when no request id is at hand.
    #[arg(long)]
    image: Option<PathBuf>,
}

#[derive(Args)]
struct EvaluateArgs {
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// The labelled image folder (or .tar.gz of one).
    #[arg(long)]
    data: PathBuf,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Write the JSON report (accuracy, latencies, failures) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Also draw the confusion matrix into this PNG.
    #[arg(long)]
    confusion_png: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Classify(args) => classify(args),
        Command::Evaluate(args) => evaluate(args),
        Command::Feedback(args) => feedback(args),
    }
}

fn feedback(args: FeedbackArgs) -> Result<()> {
    use base64::Engine;
    let image = match &args.image {
        Some(path) => Some(
            base64::engine::general_purpose::STANDARD
                .encode(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?),
        ),
        None => None,
    };
    let correction = api::FeedbackRequest {
        label: args.label,
        request_id: args.request_id,
        image,
    };
    let stored = args
        .endpoint
        .client(1, None, false)
        .feedback(&correction)
        .map_err(anyhow::Error::msg)?;
    println!(
        "stored correction {} (model {})",
        stored.feedback_id, stored.model_version
    );
    Ok(())
}

fn classify(args: ClassifyArgs) -> Result<()> {
    let client = args.endpoint.client(args.top_k, args.min_probability, args.explain);
    let answers = client.classify(&args.images)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
    } else {
        println!("{:<40} {:>6}  top classes", "file", "status");
        for a in &answers {
            let text = match &a.reply {
                Reply::Prediction(p) => {
                    let top = p
                        .result
                        .predictions
                        .iter()
                        .map(|p| format!("{} {:.3}", p.label, p.probability))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let set = match &p.result.prediction_set {
                        Some(set) if set.len() > 1 => format!(" (one of: {})", set.join(", ")),
                        _ => String::new(),
                    };
                    let ood = if p.result.out_of_distribution == Some(true) {
                        "; out of distribution"
                    } else {
                        ""
                    };
                    if p.result.matched {
                        format!("{top}{set}{ood}")
                    } else {
                        format!("no match; {top}{set}{ood}")
                    }
                }
                Reply::Error(e) => format!("{}: {}", e.error.code, e.error.message),
                Reply::Other(text) => text.clone(),
            };
            println!("{:<40} {:>6}  {text}", a.file, a.status);
        }
    }
    let failed = answers.iter().filter(|a| a.prediction().is_none()).count();
    if failed > 0 {
        bail!("{failed} of {} images were not classified", answers.len());
    }
    Ok(())
}

fn evaluate(args: EvaluateArgs) -> Result<()> {
    let client = args.endpoint.client(1, None, false);
    let r = client::evaluate(&client, &args.data, args.concurrency)?;
    if let Some(png) = &args.confusion_png {
        scoring::plot::confusion_matrix(png, &r.confusion, &format!("{} (accuracy {:.4})", r.url, r.accuracy))?;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&r)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("endpoint {} on {}", r.url, args.data.display());
        print!("{}", r.confusion.table());
        println!(
            "{} images, {} answered, {} failed; latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms; {:.1}s; model {}",
            r.images,
            r.answered,
            r.failed,
            r.latency_p50_ms,
            r.latency_p90_ms,
            r.latency_p99_ms,
            r.seconds,
            r.model_versions.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    if r.failed > 0 {
        bail!(
            "{} requests failed; first: {}",
            r.failed,
            serde_json::to_string(&r.failures[0])?
        );
    }
    Ok(())
}
