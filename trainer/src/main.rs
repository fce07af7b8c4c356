//! `trainer`: train, evaluate, publish, bench. anyhow lives only here, at the edge.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use trainer::backend::Backend;
use trainer::config::{ConfigOverrides, Preset, TrainConfig};
use trainer::metrics::Confusion;
use trainer::run::{DataSource, RunOptions};

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
    Train(Box<TrainArgs>),
    /// Score an exported model (through tract, as the function does) on labelled images,
    /// or, with --url, a deployed endpoint.
    Evaluate(EvaluateArgs),
    /// Classify image files with a deployed endpoint and print the top classes.
    Classify(ClassifyArgs),
    /// Upload a run directory to `s3://bucket/prefix/` or `file://dir/`.
    Publish(PublishArgs),
    /// Measure training images/s of each architecture on a slice of the data.
    Bench(BenchArgs),
    /// Redraw a run's learning curves, confusion matrix and reliability diagram from its
    /// metrics.json.
    Plot(PlotArgs),
}

#[derive(Args)]
struct PlotArgs {
    /// Run directory holding metrics.json; the PNGs are written beside it.
    #[arg(long, default_value = "runs/latest")]
    run: PathBuf,
}

/// Where the labelled images come from; exactly one of these.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
struct DataArgs {
    /// Image folder `<root>/<class>/<file>`, or a `.tar.gz` of one.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Folder holding the official CIFAR-10 binary files (data_batch_*.bin, test_batch.bin).
    #[arg(long)]
    cifar_binary: Option<PathBuf>,
    /// Download the official CIFAR-10 binary release (MD5-checked) into this cache folder.
    #[arg(long)]
    download_cifar: Option<PathBuf>,
}

impl DataArgs {
    fn source(&self, test: bool) -> DataSource {
        match (&self.data, &self.cifar_binary, &self.download_cifar) {
            (Some(p), _, _) => DataSource::Folder(p.clone()),
            (_, Some(d), _) => DataSource::CifarBinary { dir: d.clone(), test },
            (_, _, Some(c)) => DataSource::CifarDownload { cache: c.clone(), test },
            _ => unreachable!("clap requires one data source"),
        }
    }
}

#[derive(Args)]
struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Optional test set: an image folder, or `cifar` for the official test batch of the
    /// binary source chosen above.
    #[arg(long)]
    test: Option<String>,
    /// Starting recipe; `--config` and flags refine it.
    #[arg(long, value_enum, default_value = "default")]
    preset: Preset,
    /// JSON file with any TrainConfig fields (applied over the preset).
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: ConfigOverrides,
    /// Run directory to write model.onnx, metrics.json, golden.json and plots into.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Skip unreadable image files (and count them) instead of stopping at the first.
    #[arg(long)]
    skip_bad_images: bool,
}

/// How to talk to a deployed endpoint.
#[derive(Args, Debug, Clone)]
struct EndpointArgs {
    /// Seconds before a request is abandoned.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Retries of a request answered 429/5xx or lost in transport (exponential backoff).
    #[arg(long, default_value_t = 3)]
    retries: u32,
}

#[derive(Args)]
struct ClassifyArgs {
    /// Base URL of the API (`.../predict` is appended) or the predict URL itself.
    #[arg(long)]
    url: String,
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
    /// Print the answers as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    endpoint: EndpointArgs,
}

#[derive(Args)]
struct EvaluateArgs {
    /// The exported model.
    #[arg(long, default_value = "models/cifar10.onnx")]
    model: PathBuf,
    /// Score this deployed endpoint instead of a local model (image folders only).
    #[arg(long)]
    url: Option<String>,
    /// Requests in flight at once with --url.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[command(flatten)]
    endpoint: EndpointArgs,
    /// With --url: write the JSON report (accuracy, latencies, failures) to this file.
    #[arg(long)]
    report: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// With --cifar-binary/--download-cifar: score the test batch instead of the training batches.
    #[arg(long)]
    test_split: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also draw the confusion matrix into this PNG.
    #[arg(long)]
    confusion_png: Option<PathBuf>,
    /// Write each image's probabilities (`[{file, label, probabilities}]`) to this JSON file.
    #[arg(long)]
    predictions: Option<PathBuf>,
    /// Images per inference call.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Skip unreadable image files instead of stopping.
    #[arg(long)]
    skip_bad_images: bool,
    /// Also score the first N images as phone photos (upscaled to 2016x1512, JPEG q90)
    /// through the function's decode path, with and without the reduced-scale JPEG decode.
    #[arg(long)]
    as_phone_photos: Option<usize>,
    /// Score only the validation images the model was trained without: the data is split
    /// with the seed and validation size in the model's own config metadata, as the
    /// trainer split it (pass the same --data it was trained on).
    #[arg(long)]
    held_out: bool,
}

#[derive(Args)]
struct PublishArgs {
    /// Run directory holding model.onnx (and metrics.json, plots).
    #[arg(long, default_value = "runs/latest")]
    run: PathBuf,
    /// Destination: s3://bucket/prefix/ or file://dir/. S3 uses the standard AWS
    /// credential chain; AWS_ENDPOINT_URL_S3 points it at an S3-compatible server.
    #[arg(long)]
    to: String,
}

#[derive(Args)]
struct BenchArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Training images per measurement (one epoch over them, after an untimed warm-up batch).
    #[arg(long, default_value_t = 2048)]
    images: usize,
    /// Batch size for all measurements.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Worker threads for every backend and for PyTorch.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Extra airbench widths to measure, e.g. `16,32,64,128`.
    #[arg(long)]
    widths: Vec<trainer::config::Widths>,
    /// burn backends to measure, comma-separated (`libtorch` needs the `libtorch` feature).
    #[arg(long, value_delimiter = ',', default_value = "flex")]
    backends: Vec<Backend>,
    /// A Python with PyTorch (e.g. `.venv-torch/bin/python`): also train the same nets in
    /// PyTorch CPU on the same images with the same threads, and print the ratio.
    #[arg(long)]
    torch_python: Option<PathBuf>,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Train(args) => train(*args),
        Command::Evaluate(args) => match args.url.clone() {
            Some(url) => evaluate_endpoint(&url, args),
            None => evaluate(args),
        },
        Command::Classify(args) => classify(args),
        Command::Publish(args) => publish(args),
        Command::Bench(args) => bench(args),
        Command::Plot(args) => plot(args),
    }
}

fn plot(args: PlotArgs) -> Result<()> {
    let path = args.run.join("metrics.json");
    let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let m: trainer::metrics::RunMetrics =
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))?;
    trainer::run::draw_plots(&args.run, &m)?;
    println!("plots written to {}", args.run.display());
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    let mut config = args.preset.config();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        config = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    }
    args.overrides.apply(&mut config);
    config.backend.set_threads(config.threads);
    eprintln!("config: {}", serde_json::to_string_pretty(&config)?);
    let test = match args.test.as_deref() {
        None => None,
        Some("cifar") => match args.data.source(true) {
            DataSource::Folder(_) => bail!("--test cifar needs --cifar-binary or --download-cifar as the data source"),
            other => Some(other),
        },
        Some(path) => Some(DataSource::Folder(path.into())),
    };
    let opts = RunOptions {
        config,
        data: args.data.source(false),
        test,
        out: args.out.clone(),
        skip_bad_images: args.skip_bad_images,
    };
    let m = trainer::run::train(opts)?;
    println!("run written to {}", args.out.display());
    println!("model_version      {}", m.model_version);
    println!(
        "train accuracy     {:.4} (last epoch, augmented)",
        m.final_train_accuracy
    );
    println!(
        "val accuracy       {:.4}  loss {:.4}",
        m.validation.accuracy, m.validation.loss
    );
    if let Some(t) = &m.test {
        println!("test accuracy      {:.4}  loss {:.4}", t.accuracy, t.loss);
    }
    println!(
        "training           {:.1}s, {:.0} images/s; wall {:.1}s",
        m.train_seconds, m.train_images_per_second, m.wall_seconds
    );
    println!("config             {}", serde_json::to_string(&m.config)?);
    Ok(())
}

fn evaluate(args: EvaluateArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let classifier =
        contract::Classifier::from_bytes(&bytes).with_context(|| format!("loading {}", args.model.display()))?;
    let mut data = args.data.source(args.test_split).load(args.skip_bad_images)?;
    if args.held_out {
        let config: trainer::config::TrainConfig = serde_json::from_str(&classifier.metadata()[contract::meta::CONFIG])
            .context("the model's config metadata")?;
        let (_, val) = trainer::data::stratified_split(&data.labels, data.classes.len(), config.val_size, config.seed);
        data = data.subset(&val);
        eprintln!(
            "held out: {} validation images (seed {}, val_size {})",
            data.len(),
            config.seed,
            config.val_size
        );
    }
    if data.classes != classifier.labels() {
        bail!(
            "dataset classes {:?} differ from the model's labels {:?}",
            data.classes,
            classifier.labels()
        );
    }
    let bar = trainer::progress::bar(data.len() as u64, "scoring");
    let start = Instant::now();
    let mut predictions = Vec::with_capacity(data.len());
    let mut rows = Vec::new();
    for chunk in data.images.chunks(args.batch.max(1)) {
        for row in classifier.probabilities(chunk)? {
            predictions.push(contract::runtime::argmax(&row).0 as u8);
            rows.push(row);
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    let secs = start.elapsed().as_secs_f64();
    let confusion = Confusion::new(&data.classes, &data.labels, &predictions);
    // Calibration as served, and what `min_probability` would turn away.
    use trainer::calibration as cal;
    let classes = data.classes.len();
    let flat: Vec<f32> = rows.iter().flatten().copied().collect();
    let ece = cal::expected_calibration_error(&flat, &data.labels, classes);
    let ood_rows = classifier.probabilities(&cal::out_of_distribution_images(400, 7))?;
    let points = cal::operating_points(&rows, &data.labels, &ood_rows, &[0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
    if let Some(path) = &args.predictions {
        let per_image: Vec<_> = data
            .files
            .iter()
            .zip(&data.labels)
            .zip(&rows)
            .map(|((file, &label), p)| serde_json::json!({"file": file, "label": data.classes[label as usize], "probabilities": p}))
            .collect();
        std::fs::write(path, serde_json::to_vec(&per_image)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(png) = &args.confusion_png {
        let title = format!("{} (accuracy {:.4})", args.model.display(), confusion.accuracy());
        trainer::plots::confusion_matrix(png, &confusion, &title)?;
    }
    let phone = match args.as_phone_photos {
        Some(n) => Some(phone_photo_agreement(&classifier, &data, n)?),
        None => None,
    };
    if args.json {
        let report = serde_json::json!({
            "phone_photos": phone,
            "model": args.model, "model_version": classifier.version(), "dataset": data.source,
            "images": data.len(), "skipped": data.skipped, "accuracy": confusion.accuracy(),
            "per_class_accuracy": data.classes.iter().zip(confusion.per_class_accuracy()).collect::<std::collections::BTreeMap<_, _>>(),
            "confusion": confusion, "seconds": secs, "ece": ece,
            "min_probability_operating_points": points,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "model {} (version {}) on {}",
            args.model.display(),
            classifier.version(),
            data.source
        );
        print!("{}", confusion.table());
        println!("expected calibration error ({} bins): {ece:.4}", cal::ECE_BINS);
        if let Some(p) = &phone {
            println!(
                "as {} phone photos (2016x1512 JPEG): accuracy {:.2}% with the reduced-scale decode, {:.2}% with the full decode; {:.2}% same top-1",
                p["images"], p["accuracy_scaled"], p["accuracy_full"], p["same_top1"]
            );
        }
        println!("min_probability | labelled turned away | accuracy of the rest | out-of-distribution turned away");
        for p in &points {
            println!(
                "{:>15.2} | {:>20.1}% | {:>19.2}% | {:>30.1}%",
                p.min_probability,
                100.0 * p.labelled_rejected,
                100.0 * p.accuracy_of_accepted,
                100.0 * p.ood_rejected
            );
        }
        println!(
            "{} images in {:.2}s ({:.0} images/s)",
            data.len(),
            secs,
            data.len() as f64 / secs
        );
    }
    Ok(())
}

/// Accuracy of the first `n` images blown up to phone size and decoded the function's way
/// (DCT-scaled) and at full size; the two must agree for the shortcut to be safe.
fn phone_photo_agreement(
    classifier: &contract::Classifier,
    data: &trainer::data::Dataset,
    n: usize,
) -> Result<serde_json::Value> {
    let n = n.min(data.len());
    let bar = trainer::progress::bar(n as u64, "phone photos");
    let (mut right_scaled, mut right_full, mut same) = (0usize, 0usize, 0usize);
    for (img, &label) in data.images.iter().zip(&data.labels).take(n) {
        let small = image::RgbImage::from_raw(32, 32, img.to_vec()).context("32x32 image")?;
        let big = image::imageops::resize(&small, 2016, 1512, image::imageops::FilterType::Triangle);
        let mut jpeg = std::io::Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&big)?;
        let jpeg = jpeg.into_inner();
        let scaled = contract::decode_rgb32(&jpeg, &contract::DecodeLimits::default())?;
        let full = contract::preprocess::to_rgb32(image::load_from_memory(&jpeg)?);
        let rows = classifier.probabilities(&[scaled, full])?;
        let (a, b) = (
            contract::runtime::argmax(&rows[0]).0,
            contract::runtime::argmax(&rows[1]).0,
        );
        right_scaled += usize::from(a == usize::from(label));
        right_full += usize::from(b == usize::from(label));
        same += usize::from(a == b);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let pct = |k: usize| 100.0 * k as f64 / n.max(1) as f64;
    Ok(serde_json::json!({
        "images": n, "accuracy_scaled": pct(right_scaled), "accuracy_full": pct(right_full), "same_top1": pct(same),
    }))
}

fn client_options(e: &EndpointArgs, top_k: usize) -> trainer::client::ClientOptions {
    trainer::client::ClientOptions {
        timeout: std::time::Duration::from_secs(e.timeout),
        retries: e.retries,
        top_k,
        min_probability: None,
    }
}

fn classify(args: ClassifyArgs) -> Result<()> {
    let options = trainer::client::ClientOptions {
        min_probability: args.min_probability,
        ..client_options(&args.endpoint, args.top_k)
    };
    let answers = trainer::client::classify(&args.url, &args.images, &options)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answers)?);
    } else {
        println!("{:<40} {:>6}  top classes", "file", "status");
        for a in &answers {
            let no_match = if a.body["matched"] == false { "no match; " } else { "" };
            let top = match a.body["predictions"].as_array() {
                Some(p) => {
                    no_match.to_string()
                        + &p.iter()
                            .map(|p| {
                                format!(
                                    "{} {:.3}",
                                    p["label"].as_str().unwrap_or("?"),
                                    p["probability"].as_f64().unwrap_or(0.0)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                }
                None => a.body["error"]["message"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| a.body.to_string()),
            };
            println!("{:<40} {:>6}  {top}", a.file, a.status);
        }
    }
    if answers.iter().any(|a| a.status != 200) {
        bail!(
            "{} of {} images were not classified",
            answers.iter().filter(|a| a.status != 200).count(),
            answers.len()
        );
    }
    Ok(())
}

fn evaluate_endpoint(url: &str, args: EvaluateArgs) -> Result<()> {
    let Some(folder) = &args.data.data else {
        bail!("--url scores an image folder: pass --data DIR")
    };
    let r = trainer::client::evaluate(url, folder, args.concurrency, &client_options(&args.endpoint, 1))?;
    if let Some(png) = &args.confusion_png {
        trainer::plots::confusion_matrix(png, &r.confusion, &format!("{} (accuracy {:.4})", r.url, r.accuracy))?;
    }
    if let Some(path) = &args.report {
        std::fs::write(path, serde_json::to_vec_pretty(&r)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("endpoint {} on {}", r.url, folder.display());
        print!("{}", r.confusion.table());
        println!(
            "{} images, {} answered, {} failed; latency p50 {:.1} ms, p99 {:.1} ms; {:.1}s",
            r.images, r.answered, r.failed, r.latency_p50_ms, r.latency_p99_ms, r.seconds
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

fn publish(args: PublishArgs) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let p = rt.block_on(trainer::publish::publish(&args.run, &args.to))?;
    println!("model   {}", p.model_uri);
    println!("pointer {}", p.pointer_uri);
    println!("{}", serde_json::to_string_pretty(&p.pointer)?);
    Ok(())
}

fn bench(args: BenchArgs) -> Result<()> {
    for b in &args.backends {
        b.device()?; // refuse a backend this binary lacks before loading any data
        b.set_threads(args.threads);
    }
    let full = args.data.source(false).load(false)?;
    let n = args.images.min(full.len());
    let set = full.subset(&(0..n).collect::<Vec<_>>());
    let warm = full.subset(&(0..args.batch_size.min(n)).collect::<Vec<_>>());
    let probe = full.subset(&[0]);
    let mut nets: Vec<(String, TrainConfig)> = vec![
        ("seed".into(), Preset::Seed.config()),
        ("airbench (default)".into(), Preset::Default.config()),
    ];
    for w in args.widths {
        nets.push((
            format!(
                "airbench {}",
                w.iter().map(ToString::to_string).collect::<Vec<_>>().join("/")
            ),
            TrainConfig {
                whiten: w[0] == trainer::model::WHITEN_WIDTH,
                widths: w,
                ..Preset::Default.config()
            },
        ));
    }
    for (_, c) in &mut nets {
        c.epochs = 1;
        c.batch_size = args.batch_size;
    }
    // rows[net][backend]
    let mut rows = vec![Vec::new(); nets.len()];
    for &backend in &args.backends {
        for (row, (name, config)) in rows.iter_mut().zip(&nets) {
            let device = backend.device()?.autodiff();
            device.seed(config.seed);
            // Timing only: any filters of the right shape cost the same as fitted ones.
            let whitening = config.whiten.then(|| vec![0.05f32; trainer::model::WHITEN_WIDTH * 12]);
            let model = trainer::model::Net::new(config, full.classes.len(), whitening, &device);
            let (model, _) = trainer::training::fit(config, model, &warm, &probe, &device, |_| {});
            let (_, h) = trainer::training::fit(config, model, &set, &probe, &device, |_| {});
            eprintln!("burn {backend:?} {name}: {:.1} img/s", h[0].images_per_second);
            row.push(h[0].images_per_second);
        }
    }
    let torch = match &args.torch_python {
        Some(py) => Some(trainer::bench::pytorch_images_per_second(
            py,
            &nets,
            &set,
            args.batch_size,
            args.threads,
        )?),
        None => None,
    };
    let mut head = String::from("| net | batch | images | threads |");
    for b in &args.backends {
        head += &format!(" burn {b:?} img/s |");
    }
    if torch.is_some() {
        head += " PyTorch img/s |";
        for b in &args.backends {
            head += &format!(" {b:?} / PyTorch |");
        }
    }
    println!("{head}");
    println!("{}", "|---".repeat(head.matches(" |").count()) + "|");
    for (i, (name, _)) in nets.iter().enumerate() {
        let mut line = format!("| {name} | {} | {n} | {} |", args.batch_size, args.threads);
        for v in &rows[i] {
            line += &format!(" {v:.1} |");
        }
        if let Some(t) = &torch {
            line += &format!(" {:.1} |", t[i]);
            for v in &rows[i] {
                line += &format!(" {:.2}x |", v / t[i]);
            }
        }
        println!("{line}");
    }
    Ok(())
}
