//! `trainer drift`: captured traffic against the profile the model carries from its
//! validation split (or one made now from a labelled folder), feature by feature.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use traffic::drift::{self, DEFAULT_THRESHOLD, MIN_IMAGES};
use traffic::profile::Profile;

#[derive(clap::Args)]
pub struct Args {
    /// Captured traffic: `s3://bucket/capture/` (as the stack's Firehose stream writes it)
    /// or a folder of such objects or of the function's JSON log lines.
    #[arg(long)]
    capture: String,
    /// The model the traffic was answered by; its `reference_profile` metadata is the
    /// reference.
    #[arg(long)]
    model: PathBuf,
    /// Only records this recent (`7d`, `24h`, `90m`).
    #[arg(long, value_parser = trainer::config::parse_duration_minutes)]
    since: Option<f64>,
    /// PSI above which a feature has drifted.
    #[arg(long, default_value_t = DEFAULT_THRESHOLD)]
    threshold: f64,
    /// A labelled image folder (`<class>/<file>`) to profile as the reference instead,
    /// for a model trained before profiles were stored (the shipped one).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Where drift.png and drift.json go.
    #[arg(long, default_value = "runs/drift")]
    out: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let classifier = inference::Classifier::from_bytes(&bytes)?;
    let reference: Profile = match &args.reference {
        Some(folder) => {
            let data = trainer::data::load_image_folder(folder, true)?;
            trainer::run::reference_profile(&bytes, &data)?
        }
        None => match classifier.metadata().get(contract::meta::REFERENCE_PROFILE) {
            Some(json) => serde_json::from_str(json).context("the model's reference_profile does not parse")?,
            None => bail!(
                "{} carries no reference profile (trained before profiles were stored): pass --reference <labelled folder> to make one",
                args.model.display()
            ),
        },
    };
    let since = args.since.map(|minutes| {
        contract::pointer::rfc3339(contract::pointer::now_secs().saturating_sub((minutes * 60.0) as u64))
    });
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let captured = rt
        .block_on(traffic::read::captures(&args.capture, since.as_deref()))
        .with_context(|| format!("reading {}", args.capture))?;
    let labels = classifier.labels();
    let mut items = Vec::with_capacity(captured.records.len());
    let mut unusable = captured.skipped;
    for r in &captured.records {
        match (r.pixels(), labels.iter().position(|l| *l == r.top1)) {
            (Ok(px), Some(class)) => items.push((px, class, r.probability)),
            _ => unusable += 1,
        }
    }
    let observed = Profile::of(labels, &items);
    let report = drift::compare(&reference, &observed, args.threshold);
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    std::fs::write(args.out.join("drift.json"), serde_json::to_vec_pretty(&report)?)?;
    drift::plot(&args.out.join("drift.png"), &reference, &report)?;
    println!(
        "{} captured images from {} objects{} ({} unusable skipped) against {} reference images",
        report.observed_images,
        captured.files,
        since.map(|s| format!(" since {s}")).unwrap_or_default(),
        unusable,
        report.reference_images
    );
    print!("{}", report.table());
    println!("written: {}", args.out.join("drift.png").display());
    if !report.judged {
        println!(
            "cannot judge: {} images is under the {MIN_IMAGES} needed to tell drift from sampling noise",
            report.observed_images
        );
        return Ok(());
    }
    if report.drifted() {
        println!("DRIFT: at least one feature's PSI is over {}", args.threshold);
        std::process::exit(2);
    }
    println!("no drift over {}", args.threshold);
    Ok(())
}
