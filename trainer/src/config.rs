//! Every training hyper-parameter in one struct (airbench's habit): printed at start,
//! saved in `metrics.json` and in the model's metadata.

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::model::Arch;

/// Optimiser family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    Adam,
    /// SGD with Nesterov momentum.
    Sgd,
}

/// Defines `TrainConfig` and `ConfigOverrides` (its CLI twin, all fields optional) from
/// one list, so a new hyper-parameter cannot be forgotten on either side.
macro_rules! train_config {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr ),* $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct TrainConfig { $( $(#[doc = $doc])* pub $name: $ty, )* }

        impl Default for TrainConfig {
            fn default() -> Self { Self { $( $name: $default, )* } }
        }

        /// Command-line overrides of [`TrainConfig`]; each wins over the preset and the file.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct ConfigOverrides { $( $(#[doc = $doc])* #[arg(long)] pub $name: Option<$ty>, )* }

        impl ConfigOverrides {
            pub fn apply(self, config: &mut TrainConfig) {
                $( if let Some(v) = self.$name { config.$name = v; } )*
            }
        }
    };
}

train_config! {
    /// Network architecture.
    arch: Arch = Arch::Airbench,
    /// Channel widths of the airbench net: stem, then one conv group per entry.
    widths: Widths = Widths(vec![16, 32, 64, 128]),
    /// Passes over the training set.
    epochs: usize = 18,
    /// Images per optimiser step.
    batch_size: usize = 128,
    /// Optimiser.
    optimizer: OptimizerKind = OptimizerKind::Sgd,
    /// Peak learning rate (reached after warm-up, then linear decay to zero).
    lr: f64 = 0.1,
    /// Fraction of all steps spent warming the learning rate up linearly from zero.
    warmup: f64 = 0.15,
    /// SGD momentum (Nesterov).
    momentum: f64 = 0.9,
    /// L2 weight decay.
    weight_decay: f64 = 5e-4,
    /// Label smoothing of the cross-entropy target.
    label_smoothing: f32 = 0.2,
    /// Dropout before the dense layers (seed net only).
    dropout: f64 = 0.25,
    /// Random translation in pixels (reflect padding), 0 to disable.
    translate: usize = 2,
    /// Random horizontal flips.
    flip: bool = true,
    /// Validation images held out of the training set (stratified).
    val_size: usize = 5000,
    /// Use at most this many training images (0 = all); for quick runs.
    train_limit: usize = 0,
    /// Seed of every random choice (split, init, shuffling, augmentation).
    seed: u64 = 42,
    /// Worker threads for the tensor backend.
    threads: usize = 2,
    /// Tensor backend that trains (export and evaluation always run on flex).
    backend: Backend = Backend::Flex,
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
            return Err("give a stem width and at least one group width, all > 0".into());
        }
        Ok(Widths(v))
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
        match self {
            Preset::Default => TrainConfig::default(),
            Preset::Seed => TrainConfig {
                arch: Arch::Seed,
                optimizer: OptimizerKind::Adam,
                lr: 1e-3,
                weight_decay: 0.0,
                label_smoothing: 0.1,
                ..TrainConfig::default()
            },
            Preset::Tiny => TrainConfig {
                widths: Widths(vec![8, 16, 16, 32]),
                epochs: 1,
                batch_size: 50,
                val_size: 100,
                train_limit: 400,
                lr: 0.05,
                ..TrainConfig::default()
            },
        }
    }
}

impl TrainConfig {
    /// Refuse settings that would fail later or silently do nothing.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (self.epochs == 0, "epochs must be at least 1"),
            (self.batch_size == 0, "batch_size must be at least 1"),
            (self.lr.is_nan() || self.lr <= 0.0, "lr must be positive"),
            (!(0.0..1.0).contains(&self.warmup), "warmup must be in [0, 1)"),
            (!(0.0..1.0).contains(&self.dropout), "dropout must be in [0, 1)"),
            (
                !(0.0..1.0).contains(&self.label_smoothing),
                "label_smoothing must be in [0, 1)",
            ),
            (self.threads == 0, "threads must be at least 1"),
            (self.translate > 8, "translate must be at most 8 pixels"),
            (self.widths.len() < 2, "widths needs a stem and at least one group"),
            (
                self.widths.len() > 6,
                "widths allows at most 5 groups (each halves the 32-pixel side)",
            ),
        ];
        match checks.iter().find(|(bad, _)| *bad) {
            Some((_, why)) => Err((*why).to_string()),
            None => Ok(()),
        }
    }

    /// Learning rate at `step` of `total`: linear warm-up, then linear decay to zero.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let t = step as f64 / total.max(1) as f64;
        if t < self.warmup {
            self.lr * t / self.warmup
        } else {
            self.lr * (1.0 - t) / (1.0 - self.warmup)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_and_config_round_trips() {
        let mut c = Preset::Tiny.config();
        ConfigOverrides {
            epochs: Some(3),
            ..Default::default()
        }
        .apply(&mut c);
        assert_eq!(c.epochs, 3);
        assert_eq!(c.train_limit, 400);
        let back: TrainConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<TrainConfig>(r#"{"epoch": 3}"#).is_err());
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        let c = TrainConfig {
            lr: 1.0,
            warmup: 0.25,
            ..Default::default()
        };
        assert_eq!(c.lr_at(0, 100), 0.0);
        assert!((c.lr_at(25, 100) - 1.0).abs() < 1e-9);
        assert!(c.lr_at(60, 100) < c.lr_at(30, 100));
        assert!(c.lr_at(100, 100).abs() < 1e-9);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(
            TrainConfig {
                epochs: 0,
                ..Default::default()
            }
            .validate()
            .is_err()
        );
        assert!("8".parse::<Widths>().is_err());
        assert_eq!("8,16".parse::<Widths>().unwrap().0, vec![8, 16]);
    }
}
