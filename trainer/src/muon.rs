//! Muon for the 3x3 filter banks (airbench94_muon's optimiser): Nesterov momentum, then
//! the update orthogonalised by a Newton-Schulz iteration on the bank viewed as
//! `[C_out, C_in * 9]`, applied to filters renormalised to norm sqrt(C_out).
//!
//! burn's own `Muon` asserts 2-D parameters and decays weights instead of renormalising,
//! so this wraps its momentum and keeps each parameter in its conv shape.

use burn::optim::momentum::{Momentum, MomentumConfig, MomentumState};
use burn::optim::{LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use crate::config::TrainConfig;

/// Keller Jordan's quintic coefficients: the steepest slope at zero that still keeps
/// every singular value in roughly [0.7, 1.2] after a few steps.
const NS_COEFFICIENTS: (f32, f32, f32) = (3.4445, -4.7750, 2.0315);

#[derive(Clone)]
pub struct FilterMuon {
    momentum: Momentum,
    ns_steps: usize,
    /// The Muon rate as a multiple of the schedule's learning rate, so both follow one
    /// schedule: `muon_lr / lr`.
    rate_ratio: f64,
}

impl FilterMuon {
    pub fn new(config: &TrainConfig) -> Self {
        let momentum = MomentumConfig::new()
            .with_momentum(config.optimiser.muon_momentum)
            .with_dampening(0.0)
            .with_nesterov(true);
        FilterMuon {
            momentum: Momentum::new(&momentum),
            ns_steps: config.optimiser.muon_ns_steps,
            rate_ratio: config.optimiser.muon_lr / config.optimiser.lr,
        }
    }
}

fn frobenius<const D: usize>(t: &Tensor<D>) -> f32 {
    t.clone().powf_scalar(2.0).sum().sqrt().into_scalar()
}

/// The nearest semi-orthogonal matrix to `g`'s direction, approximately: `U V^T` of its
/// SVD, with singular values driven towards 1 (not exactly: see [`NS_COEFFICIENTS`]).
pub fn orthogonalize(g: Tensor<2>, steps: usize) -> Tensor<2> {
    let [rows, cols] = g.dims();
    let tall = rows > cols;
    let mut x = if tall { g.transpose() } else { g };
    x = x.clone().div_scalar(frobenius(&x) + 1e-7);
    let (a, b, c) = NS_COEFFICIENTS;
    for _ in 0..steps {
        let gram = x.clone().matmul(x.clone().transpose());
        let poly = gram.clone().mul_scalar(b).add(gram.clone().matmul(gram).mul_scalar(c));
        x = x.clone().mul_scalar(a).add(poly.matmul(x));
    }
    if tall { x.transpose() } else { x }
}

impl Optimizer for FilterMuon {
    type State<const D: usize> = MomentumState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let (grad, state) = self.momentum.transform(grad, state);
        let dims = tensor.dims();
        let rows = dims[0];
        let cols = dims.iter().skip(1).product::<usize>();
        // Renormalising replaces weight decay: the update's size is fixed by the
        // orthogonalisation, so the filters' scale is what sets the effective step.
        let tensor = tensor
            .clone()
            .mul_scalar((rows as f32).sqrt() / frobenius(&tensor).max(1e-12));
        let update = orthogonalize(grad.reshape([rows, cols]), self.ns_steps).reshape(dims);
        (tensor.sub(update.mul_scalar(lr * self.rate_ratio)), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        state.to_device(device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn device() -> Device {
        Device::flex()
    }

    fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(v, shape), &device())
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec_as::<f32>().unwrap()
    }

    /// Newton-Schulz written out in f64 loops, from its definition.
    fn reference(g: &[f64], rows: usize, cols: usize, steps: usize) -> Vec<f64> {
        assert!(rows <= cols);
        let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt() + 1e-7;
        let mut x: Vec<f64> = g.iter().map(|v| v / norm).collect();
        let (a, b, c) = (
            f64::from(NS_COEFFICIENTS.0),
            f64::from(NS_COEFFICIENTS.1),
            f64::from(NS_COEFFICIENTS.2),
        );
        for _ in 0..steps {
            let gram: Vec<f64> = (0..rows * rows)
                .map(|ij| {
                    (0..cols)
                        .map(|k| x[ij / rows * cols + k] * x[ij % rows * cols + k])
                        .sum()
                })
                .collect();
            let gram2: Vec<f64> = (0..rows * rows)
                .map(|ij| {
                    (0..rows)
                        .map(|k| gram[ij / rows * rows + k] * gram[k * rows + ij % rows])
                        .sum()
                })
                .collect();
            let poly: Vec<f64> = gram.iter().zip(&gram2).map(|(g1, g2)| b * g1 + c * g2).collect();
            x = (0..rows * cols)
                .map(|ij| {
                    let (i, j) = (ij / cols, ij % cols);
                    a * x[ij] + (0..rows).map(|k| poly[i * rows + k] * x[k * cols + j]).sum::<f64>()
                })
                .collect();
        }
        x
    }

    fn random(rows: usize, cols: usize, seed: u64) -> Vec<f32> {
        let mut rng = StdRng::seed_from_u64(seed);
        // Rows of very different scales: a badly conditioned matrix, as gradients are.
        (0..rows * cols)
            .map(|i| rng.random_range(-1.0f32..1.0) * (0.5 + 10.0 * (i / cols) as f32 / rows as f32))
            .collect()
    }

    #[test]
    fn orthogonalize_matches_the_iteration_written_out() {
        for (rows, cols) in [(8, 20), (20, 8)] {
            let g = random(rows, cols, 1);
            let got = values(orthogonalize(tensor(g.clone(), [rows, cols]), 5));
            // The wide orientation of the reference; a tall input is transposed first.
            let (r, c) = (rows.min(cols), rows.max(cols));
            let wide: Vec<f64> = if rows <= cols {
                g.iter().map(|&v| f64::from(v)).collect()
            } else {
                (0..r * c).map(|ij| f64::from(g[(ij % c) * cols + ij / c])).collect()
            };
            let want = reference(&wide, r, c, 5);
            for i in 0..rows {
                for j in 0..cols {
                    let w = if rows <= cols {
                        want[i * cols + j]
                    } else {
                        want[j * rows + i]
                    };
                    assert!(
                        (f64::from(got[i * cols + j]) - w).abs() < 1e-4,
                        "{rows}x{cols} at ({i},{j})"
                    );
                }
            }
        }
    }

    #[test]
    fn orthogonalize_brings_every_singular_value_near_one() {
        let (rows, cols) = (24, 64);
        let g = random(rows, cols, 2);
        let spectrum = |m: &[f32]| {
            let gram: Vec<f64> = (0..rows * rows)
                .map(|ij| {
                    (0..cols)
                        .map(|k| f64::from(m[ij / rows * cols + k]) * f64::from(m[ij % rows * cols + k]))
                        .sum()
                })
                .collect();
            let (values, _) = crate::model::symmetric_eigen(gram, rows);
            let (lo, hi) = values
                .iter()
                .fold((f64::MAX, f64::MIN), |(l, h), &v| (l.min(v), h.max(v)));
            (lo.sqrt(), hi.sqrt())
        };
        let (lo, hi) = spectrum(&g);
        assert!(hi / lo > 10.0, "the input should be badly conditioned: {lo} .. {hi}");
        let (lo, hi) = spectrum(&values(orthogonalize(tensor(g, [rows, cols]), 5)));
        assert!(lo > 0.6 && hi < 1.25, "singular values after: {lo} .. {hi}");
    }

    #[test]
    fn a_step_renormalises_then_moves_by_the_orthogonalised_nesterov_gradient() {
        let config = crate::config::ConfigOverrides {
            muon_lr: Some(0.3),
            lr: Some(1.5),
            muon_momentum: Some(0.6),
            muon_ns_steps: Some(5),
            ..Default::default()
        }
        .over(TrainConfig::default());
        let optim = FilterMuon::new(&config);
        let shape = [4, 2, 3, 3];
        let (rows, cols) = (4, 18);
        let w = random(rows, cols, 3);
        let (g1, g2) = (random(rows, cols, 4), random(rows, cols, 5));
        let lr = 0.5;
        let (w1, state) = optim.step(lr, tensor(w.clone(), shape), tensor(g1.clone(), shape), None);
        let (w2, _) = optim.step(lr, w1.clone(), tensor(g2.clone(), shape), state);
        // By hand: velocity v1 = g1, v2 = 0.6 v1 + g2; Nesterov's update u = g + 0.6 v.
        let rate = f64::from(lr as f32) * 0.3 / 1.5;
        let renorm = |m: &[f32]| {
            let n = m.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt();
            m.iter()
                .map(|&v| f64::from(v) * (rows as f64).sqrt() / n)
                .collect::<Vec<_>>()
        };
        let expect = |w: &[f32], u: Vec<f64>| {
            let o = reference(&u, rows, cols, 5);
            renorm(w).iter().zip(o).map(|(w, o)| w - rate * o).collect::<Vec<_>>()
        };
        let u1: Vec<f64> = g1.iter().map(|&g| 1.6 * f64::from(g)).collect();
        let w1 = values(w1);
        for (got, want) in w1.iter().zip(expect(&w, u1)) {
            assert!((f64::from(*got) - want).abs() < 1e-4);
        }
        let u2: Vec<f64> = g1
            .iter()
            .zip(&g2)
            .map(|(&a, &b)| f64::from(b) + 0.6 * (0.6 * f64::from(a) + f64::from(b)))
            .collect();
        for (got, want) in values(w2).iter().zip(expect(&w1, u2)) {
            assert!((f64::from(*got) - want).abs() < 1e-4);
        }
    }
}
