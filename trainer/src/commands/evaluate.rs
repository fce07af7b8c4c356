//! `trainer evaluate`: score a model file through tract, as the function runs it, on
//! labelled images: accuracy, calibration, what `min_probability` turns away.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use trainer::metrics::Confusion;

use trainer::cli::DataArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The exported model.
    #[arg(long, default_value = "models/cifar10.onnx")]
    model: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// With --cifar-binary/--download-cifar: score the test batch instead of the training batches.
    #[arg(long, conflicts_with = "data")]
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
    #[arg(long, conflicts_with = "test_split")]
    held_out: bool,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let classifier =
        inference::Classifier::from_bytes(&bytes).with_context(|| format!("loading {}", args.model.display()))?;
    let mut data = args.data.source(args.test_split).load(args.skip_bad_images)?;
    if args.held_out {
        let config: trainer::config::TrainConfig = serde_json::from_str(&classifier.metadata()[contract::meta::CONFIG])
            .context("the model's config metadata")?;
        let (_, val) =
            trainer::data::stratified_split(&data.labels, data.classes.len(), config.data.val_size, config.data.seed);
        data = data.subset(&val);
        eprintln!(
            "held out: {} validation images (seed {}, val_size {})",
            data.len(),
            config.data.seed,
            config.data.val_size
        );
    }
    if data.classes != classifier.labels() {
        bail!(
            "dataset classes {:?} differ from the model's labels {:?}",
            data.classes,
            classifier.labels()
        );
    }
    let bar = scoring::progress::bar(data.len() as u64, "scoring");
    let start = Instant::now();
    let mut predictions = Vec::with_capacity(data.len());
    let mut rows = Vec::new();
    for chunk in data.images.chunks(args.batch.max(1)) {
        for row in classifier.probabilities(chunk)? {
            predictions.push(contract::argmax(&row).0 as u8);
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
    let ood_images: Vec<contract::Rgb32> = trainer::ood::KINDS
        .iter()
        .flat_map(|kind| trainer::ood::images(kind, 100, &data.images, 7))
        .collect();
    let ood_rows = classifier.probabilities(&ood_images)?;
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
    classifier: &inference::Classifier,
    data: &trainer::data::Dataset,
    n: usize,
) -> Result<serde_json::Value> {
    let n = n.min(data.len());
    let bar = scoring::progress::bar(n as u64, "phone photos");
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
        let (a, b) = (contract::argmax(&rows[0]).0, contract::argmax(&rows[1]).0);
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
