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
use crate::tta::Tta;
use crate::{plots, training};

/// Where labelled images come from.
#[derive(Debug, Clone)]
pub enum DataSource {
    /// `<root>/<class>/<file>` directory or a `.tar.gz` of one.
    Folder(PathBuf),
    /// A folder holding the official `.bin` files; `test` picks `test_batch.bin`.
    CifarBinary { dir: PathBuf, test: bool },
    /// The official release, downloaded into (or found in) this cache folder.
    CifarDownload { cache: PathBuf, test: bool },
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
        }
    }
}

pub struct RunOptions {
    pub config: TrainConfig,
    pub data: DataSource,
    pub test: Option<DataSource>,
    pub out: PathBuf,
    pub skip_bad_images: bool,
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

pub fn train(opts: RunOptions) -> Result<RunMetrics> {
    let wall = Instant::now();
    let config = &opts.config;
    config.validate().map_err(TrainError::Config)?;
    let full = opts.data.load(opts.skip_bad_images)?;
    let classes = full.classes.len();
    let (mut train_idx, val_idx) = data::stratified_split(&full.labels, classes, config.val_size, config.seed);
    if config.train_limit > 0 && config.train_limit < train_idx.len() {
        let labels: Vec<u8> = train_idx.iter().map(|&i| full.labels[i]).collect();
        let (_, keep) = data::stratified_split(&labels, classes, config.train_limit, config.seed + 1);
        train_idx = keep.into_iter().map(|k| train_idx[k]).collect();
    }
    let (train_set, val_set) = (full.subset(&train_idx), full.subset(&val_idx));
    if train_set.is_empty() || val_set.is_empty() {
        return Err(TrainError::Config(format!(
            "split left {} training and {} validation images; adjust val_size/train_limit",
            train_set.len(),
            val_set.len()
        )));
    }
    let test_set = match &opts.test {
        Some(src) => Some(src.load(opts.skip_bad_images)?),
        None => None,
    };
    if let Some(t) = &test_set
        && t.classes != full.classes
    {
        return Err(TrainError::Config(format!(
            "test classes {:?} differ from training classes {:?}",
            t.classes, full.classes
        )));
    }
    eprintln!(
        "data: {} ({} classes): {} train, {} validation{}{}",
        full.source,
        classes,
        train_set.len(),
        val_set.len(),
        test_set
            .as_ref()
            .map(|t| format!(", {} test", t.len()))
            .unwrap_or_default(),
        if full.skipped > 0 {
            format!(", {} unreadable files skipped", full.skipped)
        } else {
            String::new()
        }
    );

    let device = config.backend.device()?.autodiff();
    device.seed(config.seed);
    let whitening = (config.whiten && config.arch == crate::model::Arch::Airbench).then(|| {
        let refs: Vec<&Rgb32> = train_set.images.iter().take(config.whiten_images).collect();
        crate::model::whitening_filters(&data::to_input(&refs, None), config.whiten_eps)
    });
    let model = Net::new(config, classes, whitening, &device);
    let train_start = Instant::now();
    let (model, epochs) = training::fit(config, model, &train_set, &val_set, &device, |m| {
        eprintln!(
            "epoch {:>3}: train loss {:.4} acc {:.4} | val loss {:.4} acc {:.4} | {:.0} img/s, {:.1}s",
            m.epoch, m.train_loss, m.train_accuracy, m.val_loss, m.val_accuracy, m.images_per_second, m.seconds
        );
    });
    let train_seconds = train_start.elapsed().as_secs_f64();
    // What ran: a time budget may have chosen a different epoch count than configured.
    let ran = TrainConfig {
        epochs: epochs.len(),
        ..config.clone()
    };
    let config = &ran;
    // Evaluation and export run on flex whatever trained: the exporter captures from it.
    let infer = Device::flex();
    let model = model.valid().to_device(&infer);
    let tta = config.tta();
    let val_eval = training::evaluate(&model, &val_set, config.eval_batch_size, &infer, tta);
    let val_plain_accuracy = if tta == Tta::default() {
        val_eval.accuracy
    } else {
        training::evaluate(&model, &val_set, config.eval_batch_size, &infer, Tta::default()).accuracy
    };
    let calibration = Calibration::fit(&val_eval, &val_set.labels, classes, config.calibrate);
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
    let validation = report(&val_set, val_eval);
    let test = test_set
        .as_ref()
        .map(|t| report(t, training::evaluate(&model, t, config.eval_batch_size, &infer, tta)));

    let trained_at = contract::pointer::now_rfc3339();
    let meta = ExportMeta {
        labels: full.classes.clone(),
        dataset: full.source.clone(),
        val_accuracy: validation.accuracy,
        trained_at: trained_at.clone(),
        config_json: serde_json::to_string(config).expect("config serialises"),
        val_ece: calibration.ece_after,
    };
    let probe: Vec<Rgb32> = val_set.images.iter().take(64).copied().collect();
    let head = export::Head {
        tta,
        temperature: calibration.temperature as f32,
    };
    let burn_rows = export::burn_probabilities(&model, &probe, head)?;
    let exported = export::export(&model, &meta, head)?;
    let parity = export::check_parity(&exported.bytes, &probe, &burn_rows)?;
    if parity.max_abs_diff > PARITY_TOLERANCE || !parity.argmax_agree {
        return Err(TrainError::Export(format!(
            "tract disagrees with burn on the exported file: max |diff| {:.2e}, argmax agree {}",
            parity.max_abs_diff, parity.argmax_agree
        )));
    }
    eprintln!(
        "export: tract matches burn on {} images (max |diff| {:.2e})",
        parity.images, parity.max_abs_diff
    );

    let train_images: usize = epochs.len() * train_set.len();
    let metrics = RunMetrics {
        model_version: exported.version.clone(),
        dataset: full.source.clone(),
        classes: full.classes.clone(),
        train_images: train_set.len(),
        skipped_images: full.skipped,
        final_train_accuracy: epochs.last().map(|e| e.train_accuracy).unwrap_or(f64::NAN),
        epochs,
        validation,
        validation_accuracy_without_tta: val_plain_accuracy,
        calibration,
        test,
        train_seconds,
        wall_seconds: wall.elapsed().as_secs_f64(),
        train_images_per_second: train_images as f64 / train_seconds,
        peak_rss_mib: crate::memory::peak_rss_mib(),
        onnx_parity_max_abs_diff: parity.max_abs_diff,
        trained_at,
        config: config.clone(),
    };
    let golden = Golden {
        labels: val_set.labels.iter().take(GOLDEN_IMAGES).copied().collect(),
        images_hex: probe.iter().take(GOLDEN_IMAGES).map(hex::encode).collect(),
        probabilities: burn_rows.into_iter().take(GOLDEN_IMAGES).collect(),
    };
    write_run(&opts.out, &exported.bytes, &metrics, &golden)?;
    Ok(metrics)
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
    plots::reliability_diagram(&out.join("reliability.png"), &metrics.calibration)
}
