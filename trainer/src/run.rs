//! `trainer train` end to end: load, split, fit, evaluate, export, check the export with
//! tract against burn, and write the run directory.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use contract::Rgb32;
use serde::{Deserialize, Serialize};

use crate::config::TrainConfig;
use crate::data::{self, Dataset, cifar_binary};
use crate::error::{Result, TrainError, io};
use crate::export::{self, ExportMeta};
use crate::metrics::{Calibration, Confusion, RunMetrics, SplitReport};
use crate::model::Net;
use crate::training::{InMemory, TrainSet};
use crate::tta::Tta;
use crate::{plots, sharded, training};

/// Where labelled images come from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// `<root>/<class>/<file>` directory or a `.tar.gz` of one.
    Folder(PathBuf),
    /// A folder holding the official `.bin` files; `test` picks `test_batch.bin`.
    CifarBinary { dir: PathBuf, test: bool },
    /// The official release, downloaded into (or found in) this cache folder.
    CifarDownload { cache: PathBuf, test: bool },
    /// WebDataset shards with their `index.json`, in a folder or under `s3://bucket/prefix/`
    /// (`trainer data shard` writes them): streamed, never all in memory.
    Shards(String),
}

impl DataSource {
    pub fn load(&self, skip_bad: bool) -> Result<Dataset> {
        let split = |test: bool| {
            if test {
                cifar_binary::Split::Test
            } else {
                cifar_binary::Split::Train
            }
        };
        match self {
            DataSource::Folder(p) => data::load_image_folder(p, skip_bad),
            DataSource::CifarBinary { dir, test } => cifar_binary::load(dir, split(*test)),
            DataSource::CifarDownload { cache, test } => cifar_binary::load(&cifar_binary::fetch(cache)?, split(*test)),
            DataSource::Shards(at) => Err(TrainError::Config(format!(
                "{at}: sharded data streams for training only; give a test set as an image folder or CIFAR binary"
            ))),
        }
    }
}

pub struct RunOptions {
    pub config: TrainConfig,
    pub data: DataSource,
    pub test: Option<DataSource>,
    pub out: PathBuf,
    pub skip_bad_images: bool,
    /// Users' corrections (`--feedback`), joined to captured traffic.
    pub feedback: Option<Feedback>,
}

/// Corrections to learn from, and what could not be used of what was read.
#[derive(Debug, Default)]
pub struct Feedback {
    /// Where they were read, for metrics.
    pub source: String,
    pub joined: traffic::join::Joined,
    /// Stored records that did not parse.
    pub skipped: usize,
}

/// Tolerance of the tract-vs-burn check on the exported file.
pub const PARITY_TOLERANCE: f32 = 1e-4;
/// Images kept as the golden input/output pair beside the model.
pub const GOLDEN_IMAGES: usize = 8;

/// A golden input/output pair beside a model (as tract's examples keep one):
/// burn's probabilities for a few validation images, checked against tract in tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Golden {
    pub labels: Vec<u8>,
    /// Each image as hex of its 3072 HWC bytes.
    pub images_hex: Vec<String>,
    pub probabilities: Vec<Vec<f32>>,
}

impl Golden {
    pub fn images(&self) -> Vec<Rgb32> {
        self.images_hex
            .iter()
            .filter_map(|h| hex::decode(h).ok()?.try_into().ok())
            .collect()
    }
}

/// A run: load and split, fit, evaluate and calibrate, export and check, write.
pub fn train(opts: RunOptions) -> Result<RunMetrics> {
    let wall = Instant::now();
    opts.config.validate().map_err(TrainError::Config)?;
    let mut data = Splits::load(&opts)?;
    let fitted = fit(&opts.config, &mut data)?;
    let evaluated = evaluate(&fitted, &data)?;
    let exported = export_checked(&fitted, &data, &evaluated)?;
    let metrics = metrics(fitted, &data, evaluated, &exported, wall);
    write_run(&opts.out, &exported.bytes, &metrics, &exported.golden)?;
    Ok(metrics)
}

/// The labelled images of a run, split.
struct Splits {
    classes: Vec<String>,
    /// Where they came from, for metrics and model metadata.
    source: String,
    skipped: usize,
    train: TrainData,
    val: Dataset,
    test: Option<Dataset>,
    /// The held-out share of users' corrections, and what the rest added to training.
    real: Option<(Dataset, RealTrafficCounts)>,
}

/// How users' corrections went into a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RealTrafficCounts {
    pub source: String,
    /// Corrections added to the training set (each `feedback_weight` times).
    pub trained_on: usize,
    pub held_out: usize,
    pub weight: usize,
    /// Corrections naming a request that no captured record matched.
    pub unmatched: usize,
    /// Corrections naming a batch request (which image is unknown).
    pub ambiguous: usize,
    /// Corrections whose image did not decode, whose record did not parse, or whose
    /// label is not one of the dataset's classes.
    pub unusable: usize,
}

/// The training split: in memory, or streamed from shards.
enum TrainData {
    Memory(Dataset),
    Streamed(Box<sharded::Streamed>),
}

impl TrainData {
    fn len(&self) -> usize {
        match self {
            TrainData::Memory(d) => d.len(),
            TrainData::Streamed(s) => s.len(),
        }
    }
}

impl Splits {
    /// Load, split stratified and seeded (capped at `train_limit`), and load the test set.
    fn load(opts: &RunOptions) -> Result<Splits> {
        let config = &opts.config.data;
        if let DataSource::Shards(at) = &opts.data {
            return Splits::sharded(opts, at);
        }
        let full = opts.data.load(opts.skip_bad_images)?;
        let classes = full.classes.len();
        let (mut train_idx, val_idx) = data::stratified_split(&full.labels, classes, config.val_size, config.seed);
        if config.train_limit > 0 && config.train_limit < train_idx.len() {
            let labels: Vec<u8> = train_idx.iter().map(|&i| full.labels[i]).collect();
            let (_, keep) = data::stratified_split(&labels, classes, config.train_limit, config.seed + 1);
            train_idx = keep.into_iter().map(|k| train_idx[k]).collect();
        }
        let (train, val) = (full.subset(&train_idx), full.subset(&val_idx));
        if train.is_empty() || val.is_empty() {
            return Err(TrainError::Config(format!(
                "split left {} training and {} validation images; adjust val_size/train_limit",
                train.len(),
                val.len()
            )));
        }
        let test = load_test(opts, &full.classes)?;
        eprintln!(
            "data: {} ({} classes): {} train, {} validation{}{}",
            full.source,
            classes,
            train.len(),
            val.len(),
            test.as_ref().map(|t| format!(", {} test", t.len())).unwrap_or_default(),
            if full.skipped > 0 {
                format!(", {} unreadable files skipped", full.skipped)
            } else {
                String::new()
            }
        );
        let mut train = train;
        let real = match &opts.feedback {
            Some(fb) => Some(add_corrections(&mut train, fb, &opts.config, &full.classes)?),
            None => None,
        };
        Ok(Splits {
            classes: full.classes,
            source: full.source,
            skipped: full.skipped,
            train: TrainData::Memory(train),
            val,
            test,
            real,
        })
    }

    /// Shards carry their split: validation in memory, training streamed.
    fn sharded(opts: &RunOptions, at: &str) -> Result<Splits> {
        if opts.feedback.is_some() {
            return Err(TrainError::Config(
                "--feedback adds corrections to an in-memory training set; with --shards, shard them in with the rest"
                    .into(),
            ));
        }
        let opened = sharded::open(at, &opts.config)?;
        let test = load_test(opts, &opened.classes)?;
        eprintln!(
            "data: {} ({} classes): {} train (streamed, {} per epoch), {} validation{}",
            opened.source,
            opened.classes.len(),
            opened.train.total(),
            opened.train.len(),
            opened.val.len(),
            test.as_ref().map(|t| format!(", {} test", t.len())).unwrap_or_default(),
        );
        Ok(Splits {
            classes: opened.classes,
            source: opened.source,
            skipped: 0,
            train: TrainData::Streamed(Box::new(opened.train)),
            val: opened.val,
            test,
            real: None,
        })
    }
}

/// The test set, if any, with the training classes.
fn load_test(opts: &RunOptions, classes: &[String]) -> Result<Option<Dataset>> {
    let Some(src) = &opts.test else { return Ok(None) };
    let test = src.load(opts.skip_bad_images)?;
    if test.classes != classes {
        return Err(TrainError::Config(format!(
            "test classes {:?} differ from training classes {classes:?}",
            test.classes
        )));
    }
    Ok(Some(test))
}

/// Split corrections by id into a held-out "real traffic" set and a share added to
/// `train` `feedback_weight` times.
fn add_corrections(
    train: &mut Dataset,
    fb: &Feedback,
    config: &TrainConfig,
    classes: &[String],
) -> Result<(Dataset, RealTrafficCounts)> {
    let weight = config.data.feedback_weight;
    let mut counts = RealTrafficCounts {
        source: fb.source.clone(),
        weight,
        unmatched: fb.joined.unmatched,
        ambiguous: fb.joined.ambiguous,
        unusable: fb.joined.invalid + fb.skipped,
        ..Default::default()
    };
    let mut real = Dataset {
        classes: classes.to_vec(),
        source: format!("{} (held out)", fb.source),
        ..Default::default()
    };
    for c in &fb.joined.corrections {
        let Some(label) = classes.iter().position(|k| *k == c.label) else {
            counts.unusable += 1;
            continue;
        };
        if contract::pointer::split_bucket(c.id.as_bytes()) < config.data.feedback_holdout_percent {
            real.images.push(c.pixels);
            real.labels.push(label as u8);
            real.files.push(format!("feedback:{}", c.id));
            counts.held_out += 1;
        } else {
            for _ in 0..weight {
                train.images.push(c.pixels);
                train.labels.push(label as u8);
                train.files.push(format!("feedback:{}", c.id));
            }
            counts.trained_on += 1;
        }
    }
    eprintln!(
        "feedback: {} corrections from {}: {} trained on (x{weight}), {} held out; {} unmatched, {} ambiguous, {} unusable",
        fb.joined.corrections.len(),
        fb.source,
        counts.trained_on,
        counts.held_out,
        counts.unmatched,
        counts.ambiguous,
        counts.unusable
    );
    Ok((real, counts))
}

/// The trained net, on flex (evaluation and export run there whatever trained: the
/// exporter captures from it), with what ran.
struct Fitted {
    model: Net,
    epochs: Vec<training::EpochMetrics>,
    train_seconds: f64,
    /// The config as it ran: a time budget may have chosen another epoch count.
    config: TrainConfig,
}

/// Fit the whitening filters, build the net and train it.
fn fit(config: &TrainConfig, data: &mut Splits) -> Result<Fitted> {
    let device = config.compute.backend.device()?.autodiff();
    device.seed(config.data.seed);
    let mut in_memory;
    let train: &mut dyn TrainSet = match &mut data.train {
        TrainData::Memory(d) => {
            in_memory = InMemory::new(d);
            &mut in_memory
        }
        TrainData::Streamed(s) => s.as_mut(),
    };
    let whitening = if config.net.whiten && config.net.arch == crate::model::Arch::Airbench {
        let head = train.head(config.net.whiten_images)?;
        let refs: Vec<&Rgb32> = head.iter().collect();
        Some(crate::model::whitening_filters(
            &data::to_input(&refs, None),
            config.net.whiten_eps,
        ))
    } else {
        None
    };
    let model = Net::new(config, data.classes.len(), whitening, &device);
    let start = Instant::now();
    let (model, epochs) = training::fit(config, model, train, &data.val, &device, |m| {
        eprintln!(
            "epoch {:>3}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | {:.0} img/s, {:.1}s",
            m.epoch, m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy, m.images_per_second, m.seconds
        );
    })?;
    let train_seconds = start.elapsed().as_secs_f64();
    let mut ran = config.clone();
    ran.schedule.epochs = epochs.len();
    let model = model.valid().to_device(&Device::flex());
    // Before any evaluation: what is measured is what the file will hold.
    let model = if config.export.half_weights {
        export::round_to_half(model)
    } else {
        model
    };
    Ok(Fitted {
        model,
        epochs,
        train_seconds,
        config: ran,
    })
}

/// Validation (with and without TTA) and test results, and the temperature fitted on
/// the calibration half of the validation split (figures from the reporting half).
struct Evaluated {
    validation: SplitReport,
    val_plain_accuracy: f64,
    calibration: Calibration,
    test: Option<SplitReport>,
    real: Option<SplitReport>,
}

fn evaluate(fitted: &Fitted, data: &Splits) -> Result<Evaluated> {
    let (config, model, infer) = (&fitted.config, &fitted.model, Device::flex());
    let tta = config.tta();
    let batch = config.compute.eval_batch_size;
    let val_eval = training::evaluate(model, &data.val, batch, &infer, tta);
    let val_plain_accuracy = if tta == Tta::default() {
        val_eval.accuracy
    } else {
        training::evaluate(model, &data.val, batch, &infer, Tta::default()).accuracy
    };
    let classes = data.classes.len();
    let temperature = crate::uncertainty::fit_temperature(
        &val_eval.logits,
        &data.val.labels,
        &data.val.images,
        classes,
        config.data.seed,
        config.export.calibrate,
    );
    let (rep_logits, rep_labels) = crate::uncertainty::reporting_rows(
        &val_eval.logits,
        &data.val.labels,
        &data.val.images,
        classes,
        config.data.seed,
    );
    let calibration = Calibration::at(&rep_logits, &rep_labels, classes, temperature);
    eprintln!(
        "validation: accuracy {:.4} (TTA {}; without TTA {:.4}), temperature {:.3}, ECE {:.4} -> {:.4}",
        val_eval.accuracy,
        tta.name(),
        val_plain_accuracy,
        calibration.temperature,
        calibration.ece_before,
        calibration.ece_after
    );
    let report = |set: &Dataset, e: training::Evaluation| {
        let confusion = Confusion::new(&set.classes, &set.labels, &e.predictions);
        SplitReport {
            images: set.len(),
            loss: e.loss,
            accuracy: e.accuracy,
            per_class_accuracy: confusion.per_class_accuracy(),
            confusion,
        }
    };
    Ok(Evaluated {
        validation: report(&data.val, val_eval),
        val_plain_accuracy,
        calibration,
        test: data
            .test
            .as_ref()
            .map(|t| report(t, training::evaluate(model, t, batch, &infer, tta))),
        real: data
            .real
            .as_ref()
            .filter(|(r, _)| !r.is_empty())
            .map(|(r, _)| report(r, training::evaluate(model, r, batch, &infer, tta))),
    })
}

/// The exported file, checked against burn by tract, and its golden pair.
struct Exported {
    bytes: Vec<u8>,
    version: String,
    uncertainty: crate::uncertainty::UncertaintyReport,
    trained_at: String,
    parity_max_abs_diff: f32,
    golden: Golden,
}

/// Export ONNX with the TTA and temperature inside, and refuse a file tract runs
/// differently from burn.
fn export_checked(fitted: &Fitted, data: &Splits, evaluated: &Evaluated) -> Result<Exported> {
    let trained_at = contract::pointer::now_rfc3339();
    let meta = ExportMeta {
        labels: data.classes.clone(),
        dataset: data.source.clone(),
        val_accuracy: evaluated.validation.accuracy,
        trained_at: trained_at.clone(),
        config_json: serde_json::to_string(&fitted.config).expect("config serialises"),
        val_ece: evaluated.calibration.ece_after,
    };
    let probe: Vec<Rgb32> = data.val.images.iter().take(64).copied().collect();
    let head = export::Head {
        tta: fitted.config.tta(),
        temperature: evaluated.calibration.temperature as f32,
    };
    let burn_rows = export::burn_probabilities(&fitted.model, &probe, head)?;
    let exported = export::export(&fitted.model, &meta, head)?;
    let parity = parity_checked(&exported.bytes, &probe, &burn_rows, "the exported file")?;
    eprintln!(
        "export: tract matches burn on {} images (max |diff| {:.2e})",
        parity.images, parity.max_abs_diff
    );
    // What `trainer drift` compares traffic with: the validation split as the exported
    // graph answers it, through tract as the function runs it.
    let reference = reference_profile(&exported.bytes, &data.val)?;
    let mut extra = vec![(
        contract::meta::REFERENCE_PROFILE,
        serde_json::to_string(&reference).expect("profile serialises"),
    )];
    if let Some(real) = &evaluated.real {
        extra.push((contract::meta::REAL_TRAFFIC_ACCURACY, format!("{:.4}", real.accuracy)));
    }
    let bytes = export::with_metadata(&exported.bytes, &extra)?;
    // Prediction sets and the out-of-distribution score, fitted and checked through
    // tract on the file itself, as `trainer calibrate` does for an older file.
    let config = &fitted.config;
    let attached = crate::uncertainty::attach(&bytes, &data.val, config.export.coverage, config.data.seed)?;
    crate::uncertainty::print(&attached.report);
    // Last, as the uncertainty head reads the linear layer's weights as an initializer.
    let finished = if config.export.half_weights {
        export::store_half(&attached.bytes)?
    } else {
        export::Exported {
            bytes: attached.bytes,
            version: attached.version,
        }
    };
    let parity = parity_checked(&finished.bytes, &probe, &burn_rows, "the finished file")?;
    Ok(Exported {
        version: finished.version,
        bytes: finished.bytes,
        uncertainty: attached.report,
        trained_at,
        parity_max_abs_diff: parity.max_abs_diff,
        golden: Golden {
            labels: data.val.labels.iter().take(GOLDEN_IMAGES).copied().collect(),
            images_hex: probe.iter().take(GOLDEN_IMAGES).map(hex::encode).collect(),
            probabilities: burn_rows.into_iter().take(GOLDEN_IMAGES).collect(),
        },
    })
}

/// tract's answers on `bytes` against burn's rows, refused above `PARITY_TOLERANCE` or
/// on any top-1 disagreement; `what` names the file in the error.
fn parity_checked(bytes: &[u8], probe: &[Rgb32], burn_rows: &[Vec<f32>], what: &str) -> Result<export::ParityReport> {
    let parity = export::check_parity(bytes, probe, burn_rows)?;
    if parity.max_abs_diff > PARITY_TOLERANCE || !parity.argmax_agree {
        return Err(TrainError::Export(format!(
            "tract disagrees with burn on {what}: max |diff| {:.2e}, argmax agree {}",
            parity.max_abs_diff, parity.argmax_agree
        )));
    }
    Ok(parity)
}

/// The profile of `val` as the model in `onnx` answers it.
pub fn reference_profile(onnx: &[u8], val: &Dataset) -> Result<traffic::profile::Profile> {
    let classifier = inference::Classifier::from_bytes(onnx).map_err(|e| TrainError::Export(e.to_string()))?;
    let mut items = Vec::with_capacity(val.len());
    for chunk in val.images.chunks(256) {
        let rows = classifier
            .probabilities(chunk)
            .map_err(|e| TrainError::Export(e.to_string()))?;
        for (px, row) in chunk.iter().zip(rows) {
            let (top, p) = contract::argmax(&row);
            items.push((*px, top, p));
        }
    }
    Ok(traffic::profile::Profile::of(classifier.labels(), &items))
}

fn metrics(fitted: Fitted, data: &Splits, evaluated: Evaluated, exported: &Exported, wall: Instant) -> RunMetrics {
    let train_images = fitted.epochs.len() * data.train.len();
    RunMetrics {
        model_version: exported.version.clone(),
        dataset: data.source.clone(),
        classes: data.classes.clone(),
        train_images: data.train.len(),
        skipped_images: data.skipped,
        final_train_accuracy: fitted.epochs.last().map(|e| e.train_accuracy).unwrap_or(f64::NAN),
        epochs: fitted.epochs,
        validation: evaluated.validation,
        validation_accuracy_without_tta: evaluated.val_plain_accuracy,
        calibration: evaluated.calibration,
        uncertainty: Some(exported.uncertainty.clone()),
        test: evaluated.test,
        real_traffic: evaluated.real.map(|report| crate::metrics::RealTraffic {
            report,
            counts: data.real.as_ref().map(|(_, c)| c.clone()).unwrap_or_default(),
        }),
        train_seconds: fitted.train_seconds,
        wall_seconds: wall.elapsed().as_secs_f64(),
        train_images_per_second: train_images as f64 / fitted.train_seconds,
        peak_rss_mib: crate::memory::peak_rss_mib(),
        onnx_parity_max_abs_diff: exported.parity_max_abs_diff,
        trained_at: exported.trained_at.clone(),
        config: fitted.config,
    }
}

fn write_run(out: &Path, onnx: &[u8], metrics: &RunMetrics, golden: &Golden) -> Result<()> {
    std::fs::create_dir_all(out).map_err(io(out))?;
    let write = |name: &str, bytes: &[u8]| std::fs::write(out.join(name), bytes).map_err(io(out.join(name)));
    write("model.onnx", onnx)?;
    write(
        "metrics.json",
        &serde_json::to_vec_pretty(metrics).expect("metrics serialise"),
    )?;
    write("golden.json", &serde_json::to_vec(golden).expect("golden serialises"))?;
    draw_plots(out, metrics)
}

/// `learning-curves.png` and `confusion-matrix.png` of a run.
pub fn draw_plots(out: &Path, metrics: &RunMetrics) -> Result<()> {
    plots::learning_curves(&out.join("learning-curves.png"), &metrics.epochs)?;
    let title = format!("validation confusion (accuracy {:.4})", metrics.validation.accuracy);
    plots::confusion_matrix(&out.join("confusion-matrix.png"), &metrics.validation.confusion, &title)?;
    plots::reliability_diagram(&out.join("reliability.png"), &metrics.calibration)?;
    if let Some(u) = &metrics.uncertainty {
        plots::uncertainty(&out.join("uncertainty.png"), u)?;
    }
    if let Some(real) = &metrics.real_traffic {
        plots::real_traffic(&out.join("real-traffic.png"), &metrics.validation, &real.report)?;
    }
    Ok(())
}
