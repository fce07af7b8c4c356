//! Every training hyper-parameter in one struct (airbench's habit): printed at start,
//! saved in `metrics.json` and in the model's metadata.

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::data::FlipMode;

/// Which network to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Arch {
    /// The Keras seed: conv blocks (`seed_conv_widths`), dense layers
    /// (`seed_dense_widths`) with dropout, then the classes.
    Seed,
    /// airbench-style: batch-norm conv blocks (conv, pool, BN, ReLU, conv, BN, ReLU),
    /// global max pool, scaled linear head. Widths from `--widths`.
    Airbench,
}

/// Nonlinearity of the airbench net.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    Relu,
    /// The exact (erf) GELU; exported as ONNX `Erf` arithmetic, which every runtime runs.
    Gelu,
}

/// Width of the whitening layer: +/- each direction of a 2x2x3 patch.
pub const WHITEN_WIDTH: usize = 2 * WHITEN_PATCH * WHITEN_PATCH * 3;
pub const WHITEN_PATCH: usize = 2;

/// Optimiser family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Adam,
    /// SGD with Nesterov momentum.
    Sgd,
    /// Muon on the 3x3 conv filters (`muon_*` settings), SGD as configured on the rest.
    Muon,
}

/// Defines `TrainConfig` (its sections) and `ConfigOverrides` (the same fields flat and
/// optional: the flags and `--config` files) from one list, so a new hyper-parameter cannot
/// be forgotten on either side. In JSON a config is one flat object of every field, the
/// keys of `--config` files, `metrics.json` and the model's metadata.
macro_rules! train_config {
    ($(
        $(#[doc = $sdoc:literal])*
        $section:ident : $Section:ident {
            $( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr ),* $(,)?
        }
    )*) => {
        $(
            $(#[doc = $sdoc])*
            #[derive(Debug, Clone, PartialEq, Serialize)]
            pub struct $Section { $( $(#[doc = $doc])* pub $name: $ty, )* }

            impl Default for $Section {
                fn default() -> Self { Self { $( $name: $default, )* } }
            }
        )*

        /// Every training hyper-parameter, by section (airbench's habit of one config,
        /// printed with the results).
        #[derive(Debug, Clone, Default, PartialEq, Serialize)]
        pub struct TrainConfig { $( $(#[doc = $sdoc])* #[serde(flatten)] pub $section: $Section, )* }

        /// A partial [`TrainConfig`], flat: the command line's flags, or a `--config` file's
        /// fields (a misspelt key is an error there too). Applied over a config, it keeps
        /// every field it does not name.
        #[derive(Debug, Clone, Default, clap::Args, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct ConfigOverrides { $( $( $(#[doc = $doc])* #[arg(long)] pub $name: Option<$ty>, )* )* }

        impl ConfigOverrides {
            pub fn apply(self, config: &mut TrainConfig) {
                $( $( if let Some(v) = self.$name { config.$section.$name = v; } )* )*
            }
        }
    };
}

impl ConfigOverrides {
    /// `config` with these fields set.
    pub fn over(self, mut config: TrainConfig) -> TrainConfig {
        self.apply(&mut config);
        config
    }
}

/// Read as the flat object it is written as: every field optional (the default
/// otherwise), unknown keys refused, which `#[serde(flatten)]` would not do.
impl<'de> Deserialize<'de> for TrainConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ConfigOverrides::deserialize(d)?.over(TrainConfig::default()))
    }
}

train_config! {
    /// Which images train and which validate.
    data: DataConfig {
        /// Validation images held out of the training set (stratified).
        val_size: usize = 5000,
        /// Use at most this many training images (0 = all); for quick runs.
        train_limit: usize = 0,
        /// Seed of every random choice (split, init, shuffling, augmentation).
        seed: u64 = 42,
        /// Times each user correction (`--feedback`) appears in an epoch's training set:
        /// a photo someone took the trouble to correct counts for more than one more
        /// CIFAR image, and there are few of them.
        feedback_weight: usize = 4,
        /// Percent of corrections held out (by correction id, so the same ones each run)
        /// as the "real traffic" validation set.
        feedback_holdout_percent: u8 = 20,
        /// Sharded data (`--shards`): samples mixed across shards before one is drawn
        /// (memory: this many decoded images, 3 KB each).
        shuffle_buffer: usize = 10000,
        /// Sharded data: decoded shards read ahead of training.
        prefetch_shards: usize = 2,
    }
    /// The network: architecture, widths, whitening layer, normalisation.
    net: NetConfig {
        /// Network architecture.
        arch: Arch = Arch::Airbench,
        /// Channel widths of the airbench net: stem, then one conv group per entry. With
        /// `whiten` the stem is the whitening layer and its width must be 24.
        widths: Widths = Widths(vec![24, 64, 128, 128]),
        /// Nonlinearity after the whitening layer and each batch norm (airbench net). On the
        /// JPEG data GELU scored 0.7 points above ReLU at 12 epochs (scripts/recipe_probe.py).
        activation: Activation = Activation::Gelu,
        /// First layer: a frozen 2x2 conv whose 24 filters whiten image patches (+/- the
        /// eigenvectors of their covariance), fitted on training images before step 0.
        whiten: bool = true,
        /// Training images whose patches fit the whitening filters.
        whiten_images: usize = 5000,
        /// Added to each eigenvalue before the 1/sqrt scaling of the whitening filters.
        whiten_eps: f64 = 5e-4,
        /// Epochs in which the whitening layer's bias trains before it is frozen too.
        whiten_bias_epochs: usize = 3,
        /// Each conv's first C_in filters start as the identity on its input channels.
        dirac_init: bool = true,
        /// Batch-norm scales stay at 1 (only the biases learn).
        bn_fixed_scale: bool = true,
        /// Batch-norm running-statistics momentum, PyTorch's convention (weight of the new
        /// batch): airbench's 0.6 in its own convention is 0.4 here.
        bn_momentum: f64 = 0.4,
        /// Batch-norm epsilon.
        bn_eps: f64 = 1e-12,
        /// Multiplier of the airbench head's logits.
        head_scale: f32 = 1.0 / 9.0,
        /// Dropout before the dense layers (seed net only).
        dropout: f64 = 0.25,
        /// Conv block widths of the seed net (each block halves the side).
        seed_conv_widths: Widths = Widths(vec![32, 64, 128]),
        /// Dense layer widths of the seed net, before the class layer.
        seed_dense_widths: Widths = Widths(vec![128, 128, 128]),
    }
    /// How each step moves the weights, and the weight averaging over steps.
    optimiser: OptimiserConfig {
        /// Optimiser.
        optimizer: OptimizerKind = OptimizerKind::Sgd,
        /// Peak learning rate (per mean-reduced batch loss; airbench's 11.5 per 1,024
        /// summed examples at momentum 0.85 is 1.5 at batch 1,024).
        lr: f64 = 1.5,
        /// SGD momentum.
        momentum: f64 = 0.85,
        /// Nesterov momentum (SGD).
        nesterov: bool = true,
        /// SGD momentum dampening.
        dampening: f64 = 0.0,
        /// L2 weight decay added to the gradient (decays by lr x this per step; airbench's
        /// decoupled 0.0153 per 1,024 examples at lr 11.5 is 0.0153 / 11.5).
        weight_decay: f64 = 1.33e-3,
        /// Learning-rate multiplier of the batch-norm biases (applied to their gradients).
        bias_lr_scale: f64 = 64.0,
        /// Label smoothing of the cross-entropy target.
        label_smoothing: f32 = 0.2,
        /// Peak rate of Muon's orthogonalised filter updates (`optimizer = muon`); it follows
        /// the same schedule as `lr`. airbench94_muon: 0.24.
        muon_lr: f64 = 0.24,
        /// Muon's Nesterov momentum (airbench94_muon: 0.6).
        muon_momentum: f64 = 0.6,
        /// Newton-Schulz steps of Muon's orthogonalisation.
        muon_ns_steps: usize = 3,
        /// Lookahead (airbench): every `lookahead_every` steps the weights move to an
        /// exponential average of themselves, whose decay ramps up as the cube of progress
        /// to `lookahead_decay`; the last step takes the average.
        lookahead: bool = true,
        /// Steps between lookahead updates.
        lookahead_every: usize = 5,
        /// Final decay of the lookahead average (airbench: 0.95 per step over 5 steps).
        lookahead_decay: f64 = 0.773_780_937_5,
        /// Training batches passed forward after the final average to re-estimate the
        /// batch-norm running statistics for the averaged weights (0 = keep them).
        lookahead_bn_batches: usize = 8,
    }
    /// How long training runs and how the learning rate moves over it.
    schedule: ScheduleConfig {
        /// Passes over the training set (refitted from the first epoch's time when
        /// `time_budget_minutes` is set).
        epochs: usize = 10,
        /// Fit the epoch count into this many minutes of training, timed on the first
        /// epoch (0 = use `epochs` as given).
        time_budget_minutes: f64 = 0.0,
        /// Images per optimiser step.
        batch_size: usize = 1024,
        /// Learning rate at step 0 as a fraction of the peak.
        lr_start: f64 = 0.2,
        /// Fraction of all steps spent going linearly from `lr_start` to the peak.
        warmup: f64 = 0.23,
        /// Learning rate at the last step as a fraction of the peak.
        lr_end: f64 = 0.07,
    }
    /// What training images go through before each step.
    augmentation: AugmentationConfig {
        /// Random translation in pixels (reflect padding), 0 to disable.
        translate: usize = 2,
        /// Horizontal flips of training images.
        flip: FlipMode = FlipMode::Alternate,
    }
    /// What the exported graph carries beyond the net.
    export: ExportConfig {
        /// Test-time augmentation inside the exported graph: average the logits of each
        /// image and its mirror image.
        tta_mirror: bool = true,
        /// Test-time augmentation: also average the +/-1-pixel shifts (reflect-padded) of the
        /// image (and of its mirror): 3x the inference of `tta_mirror` alone.
        tta_shift: bool = false,
        /// Fit a softmax temperature on the validation split after training and put it in
        /// the exported graph.
        calibrate: bool = true,
        /// How often each answer's prediction set must hold the true label (split
        /// conformal, fitted on the calibration half of the validation split).
        coverage: f64 = 0.9,
        /// Store the exported weights as f16: half the file, which is a third of the
        /// function's zipped package. The net's weights are rounded before the final
        /// evaluation, so every reported figure is the shipped file's.
        half_weights: bool = true,
    }
    /// Where and how wide the arithmetic runs.
    compute: ComputeConfig {
        /// Images per forward pass when evaluating.
        eval_batch_size: usize = 500,
        /// Worker threads for the tensor backend.
        threads: usize = 2,
        /// Tensor backend that trains (export and evaluation always run on flex).
        backend: Backend = Backend::Flex,
    }
}

/// Comma-separated widths on the command line, a JSON array in files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Widths(pub Vec<usize>);

impl std::ops::Deref for Widths {
    type Target = [usize];
    fn deref(&self) -> &[usize] {
        &self.0
    }
}

impl std::str::FromStr for Widths {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let v = s
            .split(',')
            .map(|p| p.trim().parse::<usize>().map_err(|e| format!("bad width `{p}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if v.len() < 2 || v.contains(&0) {
            return Err(
                "give at least two comma-separated widths, all > 0 (for `widths`: the stem, then one per group)".into(),
            );
        }
        Ok(Widths(v))
    }
}

impl TrainConfig {
    /// The run's config: the preset, then a `--config` file's fields over it, then the
    /// flags over both.
    pub fn layered(preset: Preset, file: Option<&str>, flags: ConfigOverrides) -> Result<Self, serde_json::Error> {
        let mut config = preset.config();
        if let Some(text) = file {
            serde_json::from_str::<ConfigOverrides>(text)?.apply(&mut config);
        }
        flags.apply(&mut config);
        Ok(config)
    }
}

/// Named starting points; CLI flags and `--config` files refine them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The shipped model's recipe.
    Default,
    /// The Keras seed's architecture with our training recipe.
    Seed,
    /// A few hundred images, one epoch: the test suite's end-to-end path.
    Tiny,
}

impl Preset {
    pub fn config(self) -> TrainConfig {
        let overrides = match self {
            Preset::Default => ConfigOverrides::default(),
            Preset::Seed => ConfigOverrides {
                arch: Some(Arch::Seed),
                optimizer: Some(OptimizerKind::Adam),
                lr: Some(1e-3),
                lr_start: Some(0.0),
                warmup: Some(0.15),
                lr_end: Some(0.0),
                weight_decay: Some(0.0),
                label_smoothing: Some(0.1),
                batch_size: Some(128),
                epochs: Some(18),
                flip: Some(FlipMode::Random),
                // The Keras baseline keeps its own recipe: no weight averaging.
                lookahead: Some(false),
                ..Default::default()
            },
            Preset::Tiny => ConfigOverrides {
                widths: Some(Widths(vec![24, 16, 16, 32])),
                epochs: Some(1),
                batch_size: Some(50),
                val_size: Some(100),
                train_limit: Some(400),
                whiten_images: Some(200),
                whiten_bias_epochs: Some(1),
                lr: Some(0.1),
                ..Default::default()
            },
        };
        overrides.over(TrainConfig::default())
    }
}

/// Minutes in a duration written `90s`, `60m` (or `60min`) or `1.5h`.
pub fn parse_duration_minutes(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (number, per_unit) = if let Some(n) = s.strip_suffix("min").or_else(|| s.strip_suffix('m')) {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('d') {
        (n, 24.0 * 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0 / 60.0)
    } else {
        return Err(format!("`{s}`: give a unit, e.g. 60m, 3600s, 1h or 7d"));
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v * per_unit),
        _ => Err(format!("`{s}`: expected a positive number before the unit")),
    }
}

impl TrainConfig {
    /// The test-time views the exported graph averages.
    pub fn tta(&self) -> crate::tta::Tta {
        crate::tta::Tta {
            mirror: self.export.tta_mirror,
            shift: self.export.tta_shift,
        }
    }

    /// Refuse settings that would fail later or silently do nothing.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (self.schedule.epochs == 0, "epochs must be at least 1"),
            (self.schedule.batch_size == 0, "batch_size must be at least 1"),
            (
                self.optimiser.lr.is_nan() || self.optimiser.lr <= 0.0,
                "lr must be positive",
            ),
            (!(0.0..1.0).contains(&self.schedule.warmup), "warmup must be in [0, 1)"),
            (!(0.0..1.0).contains(&self.net.dropout), "dropout must be in [0, 1)"),
            (
                !(0.0..1.0).contains(&self.optimiser.label_smoothing),
                "label_smoothing must be in [0, 1)",
            ),
            (self.compute.threads == 0, "threads must be at least 1"),
            (
                !(0.5..1.0).contains(&self.export.coverage),
                "coverage must be in [0.5, 1)",
            ),
            (self.augmentation.translate > 8, "translate must be at most 8 pixels"),
            (self.net.widths.len() < 2, "widths needs a stem and at least one group"),
            (
                self.net.widths.len() > 6,
                "widths allows at most 5 groups (each halves the 32-pixel side)",
            ),
            (
                self.net.arch == Arch::Airbench && self.net.whiten && self.net.widths[0] != WHITEN_WIDTH,
                "with whiten the stem width (first of widths) must be 24: +/- 12 patch directions",
            ),
            (
                self.net.whiten && self.net.whiten_images == 0,
                "whiten_images must be at least 1",
            ),
            (
                !(0.0..=1.0).contains(&self.schedule.lr_start) || !(0.0..=1.0).contains(&self.schedule.lr_end),
                "lr_start and lr_end are fractions of lr in [0, 1]",
            ),
            (
                !(0.0..=1.0).contains(&self.net.bn_momentum),
                "bn_momentum must be in [0, 1]",
            ),
            (
                self.net.bn_eps.is_nan() || self.net.bn_eps <= 0.0,
                "bn_eps must be positive",
            ),
            (self.compute.eval_batch_size == 0, "eval_batch_size must be at least 1"),
            (
                self.data.feedback_weight == 0 || self.data.feedback_holdout_percent > 100,
                "feedback_weight must be at least 1 and feedback_holdout_percent at most 100",
            ),
            (
                self.net.seed_conv_widths.len() > 5
                    || self.net.seed_conv_widths.contains(&0)
                    || self.net.seed_dense_widths.contains(&0),
                "seed_conv_widths: at most 5 blocks; seed widths must be positive",
            ),
            (
                !(0.0..1.0).contains(&self.optimiser.dampening),
                "dampening must be in [0, 1)",
            ),
            (
                self.optimiser.lookahead
                    && (self.optimiser.lookahead_every == 0 || !(0.0..1.0).contains(&self.optimiser.lookahead_decay)),
                "lookahead_every must be at least 1 and lookahead_decay in [0, 1)",
            ),
            (
                self.schedule.time_budget_minutes.is_nan() || self.schedule.time_budget_minutes < 0.0,
                "time_budget_minutes must be 0 (off) or positive",
            ),
            (
                self.optimiser.bias_lr_scale.is_nan() || self.optimiser.bias_lr_scale <= 0.0,
                "bias_lr_scale must be positive",
            ),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err((*why).to_string()),
            None => Ok(()),
        }
    }

    /// Learning rate at `step` of `total`: a triangle from `lr_start` up to the peak at
    /// `warmup`, then down to `lr_end` (fractions of `lr`) at the last step.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let t = (step as f64 / total.max(1) as f64).min(1.0);
        let f = if t < self.schedule.warmup {
            self.schedule.lr_start + (1.0 - self.schedule.lr_start) * t / self.schedule.warmup
        } else {
            1.0 + (self.schedule.lr_end - 1.0) * (t - self.schedule.warmup) / (1.0 - self.schedule.warmup)
        };
        self.optimiser.lr * f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_minutes() {
        for (text, minutes) in [
            ("60m", 60.0),
            ("58min", 58.0),
            ("3600s", 60.0),
            ("1.5h", 90.0),
            (" 90s ", 1.5),
        ] {
            assert_eq!(parse_duration_minutes(text), Ok(minutes), "{text}");
        }
        for bad in ["60", "m", "-5m", "0h", "xh", "inf s"] {
            assert!(parse_duration_minutes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn overrides_win_and_config_round_trips() {
        let mut c = Preset::Tiny.config();
        ConfigOverrides {
            epochs: Some(3),
            ..Default::default()
        }
        .apply(&mut c);
        assert_eq!(c.schedule.epochs, 3);
        assert_eq!(c.data.train_limit, 400);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["epochs"], 3, "sections are not nested in JSON: {json}");
        assert_eq!(json["widths"], serde_json::json!([24, 16, 16, 32]));
        let back: TrainConfig = serde_json::from_value(json).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<TrainConfig>(r#"{"epoch": 3}"#).is_err());
    }

    #[test]
    fn a_config_file_refines_the_preset_and_flags_refine_both() {
        let c = TrainConfig::layered(
            Preset::Seed,
            Some(r#"{"epochs": 7, "lr": 0.002}"#),
            ConfigOverrides::default(),
        )
        .unwrap();
        let want = ConfigOverrides {
            epochs: Some(7),
            lr: Some(0.002),
            ..Default::default()
        }
        .over(Preset::Seed.config());
        assert_eq!(c, want, "fields the file does not name keep the seed preset's values");
        let flags = ConfigOverrides {
            epochs: Some(3),
            ..Default::default()
        };
        let c = TrainConfig::layered(Preset::Seed, Some(r#"{"epochs": 7}"#), flags).unwrap();
        assert_eq!(
            (c.schedule.epochs, c.net.arch, c.schedule.batch_size),
            (3, Arch::Seed, 128)
        );
        let typo = TrainConfig::layered(Preset::Seed, Some(r#"{"epoch": 7}"#), ConfigOverrides::default());
        assert!(typo.unwrap_err().to_string().contains("unknown field `epoch`"));
        assert!(
            TrainConfig::layered(Preset::Tiny, Some("{}"), ConfigOverrides::default()).unwrap()
                == Preset::Tiny.config()
        );
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let c = ConfigOverrides {
            lr: Some(1.0),
            warmup: Some(0.25),
            lr_start: Some(0.0),
            lr_end: Some(0.0),
            ..Default::default()
        }
        .over(TrainConfig::default());
        assert_eq!(c.lr_at(0, 100), 0.0);
        assert!((c.lr_at(25, 100) - 1.0).abs() < 1e-9);
        assert!(c.lr_at(60, 100) < c.lr_at(30, 100));
        assert!(c.lr_at(100, 100).abs() < 1e-9);
        let mut tri = TrainConfig::default();
        tri.optimiser.lr = 2.0;
        assert!((tri.lr_at(0, 1000) - 0.4).abs() < 1e-9);
        assert!((tri.lr_at(230, 1000) - 2.0).abs() < 1e-9);
        assert!((tri.lr_at(1000, 1000) - 0.14).abs() < 1e-9);
    }

    #[test]
    fn bad_settings_are_refused() {
        let mut no_epochs = TrainConfig::default();
        no_epochs.schedule.epochs = 0;
        assert!(no_epochs.validate().is_err());
        assert!("8".parse::<Widths>().is_err());
        assert_eq!("8,16".parse::<Widths>().unwrap().0, vec![8, 16]);
    }
}
