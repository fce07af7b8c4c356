//! The training loop: seeded shuffling and augmentation, warm-up + linear-decay
//! schedule, label-smoothed cross-entropy, per-epoch validation.

use std::time::Instant;

use burn::module::{Module, ParamGroup, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::config::{OptimizerKind, TrainConfig};
use crate::data::{Augment, Dataset, to_input};
use crate::error::Result;
use crate::lookahead::{self, Lookahead};
use crate::model::Net;
use crate::muon::FilterMuon;
use crate::tta::Tta;
use burn_flex::profile::set_phase;

/// Names of the phases of a training step, as `fit` labels them for
/// `burn_flex::profile` (and `train-bench --profile` reads them back), in step order.
pub mod phase {
    pub const DATA: &str = "data";
    pub const FORWARD: &str = "forward";
    pub const BACKWARD: &str = "backward";
    pub const OPTIMIZER: &str = "optimizer";
    pub const LOOKAHEAD: &str = "lookahead";
    pub const PROGRESS: &str = "progress";
    pub const VALIDATION: &str = "validation";
    /// The phases one training step goes through.
    pub const STEP: [&str; 6] = [DATA, FORWARD, BACKWARD, OPTIMIZER, LOOKAHEAD, PROGRESS];
}

/// One epoch's figures, as written to `metrics.json` and drawn in the curves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub seconds: f64,
    pub images_per_second: f64,
    pub lr_end: f64,
}

/// Loss, accuracy, predictions and logits (row-major, one row per image) over a dataset.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub loss: f64,
    pub accuracy: f64,
    pub predictions: Vec<u8>,
    pub logits: Vec<f32>,
}

pub fn input_tensor(
    images: &[&contract::Rgb32],
    aug: Option<(Augment<'_>, &mut StdRng)>,
    device: &Device,
) -> Tensor<4> {
    let n = images.len();
    let side = contract::IMAGE_SIDE;
    Tensor::<4>::from_data(TensorData::new(to_input(images, aug), [n, 3, side, side]), device)
}

fn label_tensor(labels: &[u8], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    Tensor::<1, Int>::from_data(TensorData::new(v, [labels.len()]), device)
}

fn optimizer(config: &TrainConfig, model: &Net) -> ModuleOptimizer {
    let decay =
        (config.optimiser.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.optimiser.weight_decay as f32));
    let sgd = || {
        SgdConfig::new()
            .with_weight_decay(decay.clone())
            .with_momentum(Some(
                MomentumConfig::new()
                    .with_momentum(config.optimiser.momentum)
                    .with_dampening(config.optimiser.dampening)
                    .with_nesterov(config.optimiser.nesterov),
            ))
            .init()
    };
    match config.optimiser.optimizer {
        OptimizerKind::Adam => AdamConfig::new().with_weight_decay(decay).init(),
        OptimizerKind::Sgd => sgd(),
        OptimizerKind::Muon => sgd().with_group(
            ParamGroup::from_ids(model.conv_filter_ids()),
            FilterMuon::new(config),
            None,
        ),
    }
}

/// Scale the gradients of `ids` by `factor`: a per-parameter learning-rate multiplier
/// for an optimiser that has one rate (weight decay, added later, is not scaled).
fn scale_grads(grads: &mut GradientsParams, ids: &[ParamId], factor: f64) {
    for &id in ids {
        if let Some(g) = grads.remove::<1>(id) {
            grads.register(id, g.mul_scalar(factor));
        }
    }
}

/// Epochs that fit in `budget_s` when one takes `epoch_s`, at least one.
pub fn epochs_for_budget(budget_s: f64, epoch_s: f64) -> usize {
    ((budget_s / epoch_s.max(1e-9)).floor() as usize).max(1)
}

/// Train `model` on `train`, validating on `val` after each epoch; `on_epoch` sees each
/// epoch's figures as they land. With a time budget the epoch count is refitted after the
/// first epoch, so the schedule ends when the budget does.
pub fn fit(
    config: &TrainConfig,
    mut model: Net,
    train: &mut dyn TrainSet,
    val: &Dataset,
    device: &Device,
    mut on_epoch: impl FnMut(&EpochMetrics),
) -> Result<(Net, Vec<EpochMetrics>)> {
    let mut optim = optimizer(config, &model);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_smoothing((config.optimiser.label_smoothing > 0.0).then_some(config.optimiser.label_smoothing))
        .init(device);
    let mut rng = StdRng::seed_from_u64(config.data.seed);
    let steps_per_epoch = train.len().div_ceil(config.schedule.batch_size);
    let mut epochs = config.schedule.epochs;
    let mut total_steps = steps_per_epoch * epochs;
    let bias_ids = model.norm_bias_ids();
    let mut lookahead = config.optimiser.lookahead.then(|| Lookahead::new(&model));
    let mut history = Vec::new();
    let mut step = 0;
    let mut epoch = 0;
    while epoch < epochs {
        epoch += 1;
        if config.net.whiten && epoch == config.net.whiten_bias_epochs + 1 {
            model = model.freeze_whitening();
        }
        train.start_epoch(epoch, &mut rng)?;
        // The epoch's first batches, kept for re-estimating batch-norm statistics after
        // the last one (a time budget settles which epoch is last only after the first).
        let mut replay: Vec<Vec<contract::Rgb32>> = Vec::new();
        let keep = if lookahead.is_some() {
            config.optimiser.lookahead_bn_batches
        } else {
            0
        };
        let bar = scoring::progress::bar(train.len() as u64, &format!("epoch {epoch}/{epochs}"));
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        let mut lr = 0.0;
        // Phases label `train-bench --profile`'s breakdown (no-ops otherwise).
        set_phase(phase::DATA);
        while let Some(batch) = train.next_batch(config.schedule.batch_size) {
            let batch = batch?;
            let chunk = &batch.ids;
            let images: Vec<&contract::Rgb32> = batch.images.iter().collect();
            let labels = &batch.labels;
            let flips = config.augmentation.flip.flips(chunk, epoch, config.data.seed, &mut rng);
            let aug = Augment {
                translate: config.augmentation.translate,
                flips: &flips,
            };
            let x = input_tensor(&images, Some((aug, &mut rng)), device);
            let y = label_tensor(labels, device);
            set_phase(phase::FORWARD);
            let logits = model.forward(x);
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let batch_correct: i64 = logits
                .argmax(1)
                .reshape([chunk.len()])
                .equal(y)
                .int()
                .sum()
                .into_scalar();
            let batch_loss: f32 = loss.clone().into_scalar();
            set_phase(phase::BACKWARD);
            let mut grads = GradientsParams::from_grads(loss.backward(), &model);
            set_phase(phase::OPTIMIZER);
            scale_grads(&mut grads, &bias_ids, config.optimiser.bias_lr_scale);
            lr = config.lr_at(step, total_steps);
            model = optim.step(lr, model, grads);
            step += 1;
            if let Some(la) = lookahead.as_mut().filter(|_| lookahead::due(config, step)) {
                set_phase(phase::LOOKAHEAD);
                model = la.update(
                    model,
                    lookahead::decay_at(config.optimiser.lookahead_decay, step, total_steps),
                );
            }
            set_phase(phase::PROGRESS);
            loss_sum += f64::from(batch_loss) * chunk.len() as f64;
            correct += batch_correct as usize;
            seen += chunk.len();
            let secs = start.elapsed().as_secs_f64();
            bar.set_position(seen as u64);
            bar.set_message(format!(
                "loss {:.3} acc {:.3} {:.0} img/s",
                loss_sum / seen as f64,
                correct as f64 / seen as f64,
                seen as f64 / secs
            ));
            if replay.len() < keep {
                replay.push(batch.images);
            }
            set_phase(phase::DATA);
        }
        if epoch == epochs
            && let Some(la) = lookahead.as_mut()
        {
            // The run ends on the average, as airbench's does. Its running statistics
            // were gathered for the last iterate, so they are re-estimated for it.
            set_phase(phase::LOOKAHEAD);
            model = la.update(model, 1.0);
            // Through a clone without gradients: it shares the running statistics (burn
            // keeps them in state shared between clones), and its forward passes build no
            // autodiff graph, which the model's own would keep alive after the output is
            // dropped (about 1 GB per batch of 1,024, 8 GB of peak memory).
            let stats = model.clone().no_grad();
            for images in &replay {
                let images: Vec<&contract::Rgb32> = images.iter().collect();
                drop(stats.forward(input_tensor(&images, None, device)));
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        set_phase(phase::VALIDATION);
        bar.finish_and_clear();
        let eval = evaluate(
            &model.valid(),
            val,
            config.compute.eval_batch_size,
            &device.clone().inner(),
            Tta::default(),
        );
        if epoch == 1 && config.schedule.time_budget_minutes > 0.0 {
            // The first epoch's wall time, validation included, sizes the run.
            epochs = epochs_for_budget(
                config.schedule.time_budget_minutes * 60.0,
                start.elapsed().as_secs_f64(),
            );
            total_steps = steps_per_epoch * epochs;
            eprintln!(
                "time budget {:.1} min: epoch 1 took {:.1} s, training {epochs} epochs",
                config.schedule.time_budget_minutes,
                start.elapsed().as_secs_f64()
            );
        }
        let m = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_accuracy: correct as f64 / seen.max(1) as f64,
            val_loss: eval.loss,
            val_accuracy: eval.accuracy,
            seconds,
            images_per_second: seen as f64 / seconds,
            lr_end: lr,
        };
        on_epoch(&m);
        history.push(m);
    }
    Ok((model, history))
}

/// One training step's images, labels and the images' ids (stable across epochs, which
/// the alternating flip needs).
pub struct Batch {
    pub images: Vec<contract::Rgb32>,
    pub labels: Vec<u8>,
    pub ids: Vec<usize>,
}

/// What `fit` trains on: a dataset in memory, or shards streamed from a folder or S3
/// (`crate::sharded`), one epoch at a time.
pub trait TrainSet {
    /// Images per epoch.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The first `n` images (the whitening filters are fitted on them).
    fn head(&mut self, n: usize) -> Result<Vec<contract::Rgb32>>;
    /// Begin epoch `epoch` (from 1) in a fresh order.
    fn start_epoch(&mut self, epoch: usize, rng: &mut StdRng) -> Result<()>;
    /// The epoch's next batch of up to `size` images; `None` when it is over.
    fn next_batch(&mut self, size: usize) -> Option<Result<Batch>>;
}

/// A dataset in memory, shuffled per epoch with the run's generator.
pub struct InMemory<'a> {
    data: &'a Dataset,
    order: Vec<usize>,
    at: usize,
}

impl<'a> InMemory<'a> {
    pub fn new(data: &'a Dataset) -> Self {
        InMemory {
            data,
            order: (0..data.len()).collect(),
            at: 0,
        }
    }
}

impl TrainSet for InMemory<'_> {
    fn len(&self) -> usize {
        self.data.len()
    }

    fn head(&mut self, n: usize) -> Result<Vec<contract::Rgb32>> {
        Ok(self.data.images.iter().take(n).copied().collect())
    }

    fn start_epoch(&mut self, _epoch: usize, rng: &mut StdRng) -> Result<()> {
        self.order.shuffle(rng);
        self.at = 0;
        Ok(())
    }

    fn next_batch(&mut self, size: usize) -> Option<Result<Batch>> {
        let chunk = self.order.get(self.at..)?.get(..size.min(self.order.len() - self.at))?;
        if chunk.is_empty() {
            return None;
        }
        self.at += chunk.len();
        Some(Ok(Batch {
            images: chunk.iter().map(|&i| self.data.images[i]).collect(),
            labels: chunk.iter().map(|&i| self.data.labels[i]).collect(),
            ids: chunk.to_vec(),
        }))
    }
}

/// Plain cross-entropy and accuracy of an inference-mode model, on logits averaged over
/// the `tta` views (the exported graph's test-time augmentation).
pub fn evaluate(model: &Net, data: &Dataset, batch_size: usize, device: &Device, tta: Tta) -> Evaluation {
    if data.is_empty() {
        return Evaluation {
            loss: f64::NAN,
            accuracy: f64::NAN,
            predictions: Vec::new(),
            logits: Vec::new(),
        };
    }
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let (mut loss_sum, mut predictions) = (0.0f64, Vec::with_capacity(data.len()));
    let mut all_logits = Vec::new();
    let idx: Vec<usize> = (0..data.len()).collect();
    for chunk in idx.chunks(batch_size) {
        let images: Vec<&contract::Rgb32> = chunk.iter().map(|&i| &data.images[i]).collect();
        let labels: Vec<u8> = chunk.iter().map(|&i| data.labels[i]).collect();
        let logits = model.forward_tta(input_tensor(&images, None, device), tta);
        let loss: f32 = loss_fn
            .forward(logits.clone(), label_tensor(&labels, device))
            .into_scalar();
        loss_sum += f64::from(loss) * chunk.len() as f64;
        let rows: Vec<f32> = logits.into_data().try_to_vec_as::<f32>().unwrap_or_default();
        let classes = rows.len() / chunk.len().max(1);
        predictions.extend(
            rows.chunks_exact(classes.max(1))
                .map(|row| contract::argmax(row).0 as u8),
        );
        all_logits.extend(rows);
    }
    let correct = predictions.iter().zip(&data.labels).filter(|(p, l)| p == l).count();
    Evaluation {
        loss: loss_sum / data.len() as f64,
        accuracy: correct as f64 / data.len() as f64,
        predictions,
        logits: all_logits,
    }
}
