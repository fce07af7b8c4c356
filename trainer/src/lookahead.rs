//! Lookahead as airbench uses it: an exponential average of the weights that the
//! weights are reset to every few steps. Late in training, when the learning rate
//! falls, the average is a better model than the last iterate (airbench's ablation:
//! 12 instead of 13.5 epochs to 94 %).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::{Tensor, TensorData};

use crate::config::TrainConfig;

/// The averaged weights, on the host (a few hundred thousand floats, touched every few
/// steps). Float parameters only: batch-norm running statistics are not parameters in
/// burn and already are averages.
#[derive(Debug, Clone, Default)]
pub struct Lookahead {
    average: HashMap<ParamId, Vec<f32>>,
}

/// The decay at `step` of `total`: `final_decay * (step / total)^3`, as airbench ramps it.
pub fn decay_at(final_decay: f64, step: usize, total: usize) -> f64 {
    final_decay * (step as f64 / total.max(1) as f64).min(1.0).powi(3)
}

pub(crate) fn host<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.clone().into_data().try_to_vec_as::<f32>().expect("float tensor")
}

/// `t` with its values replaced by `f` of them on the host, on the same device and as
/// trainable as it was: the one way parameters are rewritten outside an optimizer step.
pub(crate) fn with_values<const D: usize>(t: Tensor<D>, f: impl FnOnce(Vec<f32>) -> Vec<f32>) -> Tensor<D> {
    let (shape, device, grad) = (t.shape(), t.device(), t.is_require_grad());
    let t = Tensor::<D>::from_data(TensorData::new(f(host(&t)), shape), &device);
    if grad { t.require_grad() } else { t }
}

impl Lookahead {
    /// Start the average at the model's current weights.
    pub fn new<M: Module>(model: &M) -> Self {
        struct Collect<'a>(&'a mut HashMap<ParamId, Vec<f32>>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                self.0.insert(param.id, host(&param.val()));
            }
        }
        let mut average = HashMap::new();
        model.visit(&mut Collect(&mut average));
        Self { average }
    }

    /// `average = decay * average + (1 - decay) * weights`, then `weights = average`.
    pub fn update<M: Module>(&mut self, model: M, decay: f64) -> M {
        struct Step<'a> {
            average: &'a mut HashMap<ParamId, Vec<f32>>,
            decay: f32,
        }
        impl ModuleMapper for Step<'_> {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let id = param.id;
                let (decay, average) = (self.decay, &mut *self.average);
                param.map(|t| {
                    with_values(t, |now| {
                        let avg = average.entry(id).or_insert_with(|| now.clone());
                        for (a, w) in avg.iter_mut().zip(&now) {
                            *a = decay * *a + (1.0 - decay) * w;
                        }
                        avg.clone()
                    })
                })
            }
        }
        model.map(&mut Step {
            average: &mut self.average,
            decay: decay as f32,
        })
    }
}

/// Whether `step` (counted after the optimiser step) updates the average; whether there
/// is an average at all is the caller's `Option<Lookahead>`.
pub fn due(config: &TrainConfig, step: usize) -> bool {
    step.is_multiple_of(config.optimiser.lookahead_every)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::{Linear, LinearConfig};
    use burn::tensor::Device;

    fn weights(m: &Linear) -> Vec<f32> {
        host(&m.weight.val())
    }

    #[test]
    fn the_average_follows_its_formula() {
        let device = Device::flex().autodiff();
        let mut m: Linear = LinearConfig::new(3, 2).init(&device);
        let w0 = weights(&m);
        let mut la = Lookahead::new(&m);
        // Move the weights, then average with decay 0.25: 0.25 * w0 + 0.75 * w1.
        m.weight = m.weight.map(|t| t.add_scalar(1.0).detach().require_grad());
        let w1 = weights(&m);
        let m = la.update(m, 0.25);
        for ((got, a), b) in weights(&m).iter().zip(&w0).zip(&w1) {
            assert!((got - (0.25 * a + 0.75 * b)).abs() < 1e-6);
        }
        assert!(m.weight.val().is_require_grad(), "a trainable weight stays trainable");
        // Decay 1 returns the average unchanged, whatever the weights did since.
        let avg = weights(&m);
        let mut m = m;
        m.weight = m.weight.map(|t| t.mul_scalar(3.0).detach().require_grad());
        let m = la.update(m, 1.0);
        assert_eq!(weights(&m), avg);
    }

    /// `training::fit` re-estimates batch-norm statistics through a gradient-free clone
    /// (whose forward builds no autodiff graph); that only works if the clone shares the
    /// running statistics with the model and still runs in training mode.
    #[test]
    fn a_gradient_free_clone_updates_the_shared_batch_norm_statistics() {
        use burn::nn::{BatchNorm, BatchNormConfig};
        let device = Device::flex().autodiff();
        let norm: BatchNorm = BatchNormConfig::new(2).init(&device);
        let before = host(&norm.running_mean.value());
        let probe = norm.clone().no_grad();
        drop(probe.forward(Tensor::<4>::ones([4, 2, 3, 3], &device).mul_scalar(5.0)));
        let after = host(&norm.running_mean.value_sync());
        assert_eq!(before, vec![0.0, 0.0]);
        // PyTorch-style momentum 0.1: 0.9 * 0 + 0.1 * 5.
        for m in after {
            assert!((m - 0.5).abs() < 1e-6, "running mean {m}");
        }
    }

    #[test]
    fn decay_ramps_as_a_cube() {
        assert_eq!(decay_at(0.8, 0, 100), 0.0);
        assert!((decay_at(0.8, 50, 100) - 0.1).abs() < 1e-12);
        assert!((decay_at(0.8, 100, 100) - 0.8).abs() < 1e-12);
    }
}
