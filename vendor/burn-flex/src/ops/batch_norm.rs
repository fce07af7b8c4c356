//! Training-mode batch norm as two passes over the data each way (added with the
//! `batch_norm` patch, PATCHES.md change 7).
//!
//! Upstream's default composes it from reductions and broadcasts: `swap_dims` copies the
//! activations channel-first twice forward and twice backward, and each elementwise step
//! allocates and walks the whole tensor. Here the statistics come from one read (each
//! `[n, c]` plane's mean and squared deviations while it sits in L1, merged per channel
//! with Chan's formula in f64), the output from one read and one write; backward reads
//! `x` and the incoming gradient once for the two per-channel sums, then writes the input
//! gradient, in the incoming gradient's buffer when nothing else holds it. Contiguous f32
//! only; other dtypes keep upstream's composition.

use alloc::vec;
use alloc::vec::Vec;

use burn_backend::ops::FloatTensorOps;
use burn_backend::{DType, Scalar, TensorMetadata};
use burn_std::{Bytes, Shape};

use crate::{Flex, FlexTensor, Layout};

/// Per-channel running moments: element count, mean and sum of squared deviations.
#[derive(Clone, Copy, Default)]
struct Moments {
    count: f64,
    mean: f64,
    m2: f64,
}

impl Moments {
    /// Chan et al.'s pairwise update: exact for any split, stable for large counts.
    fn merge(self, other: Moments) -> Moments {
        if self.count == 0.0 {
            return other;
        }
        if other.count == 0.0 {
            return self;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        Moments {
            count,
            mean: self.mean + delta * other.count / count,
            m2: self.m2 + other.m2 + delta * delta * self.count * other.count / count,
        }
    }
}

/// A plane's count, mean and squared deviations. Sums run on `x - plane[0]` and around
/// the f32 mean, so values far from zero keep their digits.
#[inline]
fn plane_moments(plane: &[f32]) -> Moments {
    let Some(&x0) = plane.first() else {
        return Moments::default();
    };
    let n = plane.len() as f64;
    let mean = x0 as f64 + chunked_sum(plane, |v| v - x0) as f64 / n;
    let m32 = mean as f32;
    let around = chunked_sum(plane, |v| (v - m32) * (v - m32)) as f64;
    let d = mean - m32 as f64;
    Moments {
        count: n,
        mean,
        m2: (around - n * d * d).max(0.0),
    }
}

/// Sum of `f` over `values`, eight independent partial sums.
#[inline]
fn chunked_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a += f(v);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    acc.iter().sum::<f32>() + tail
}

/// Sum of `f(a, b)` over matching elements, eight independent partial sums.
#[inline]
fn chunked_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (xa, xb) in (&mut ca).zip(&mut cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(xa).zip(xb) {
            *s += f(u, v);
        }
    }
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(&u, &v)| f(u, v)).sum();
    acc.iter().sum::<f32>() + tail
}

fn is_plain_f32(t: &FlexTensor) -> bool {
    t.dtype() == DType::F32
}

fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("batch norm: contiguous f32 tensor")
}

fn vector(values: Vec<f32>) -> FlexTensor {
    let shape = Shape::from(vec![values.len()]);
    FlexTensor::new(Bytes::from_elems(values), Layout::contiguous(shape), DType::F32)
}

/// `[n, c, rest...]` as (images, channels, plane size).
fn dims(shape: &[usize]) -> (usize, usize, usize) {
    let n = shape[0];
    let c = shape[1];
    let plane = shape[2..].iter().product();
    (n, c, plane)
}

/// Run `body` on each image (`c * plane` floats) and fold the per-channel results.
fn fold_images<T: Clone + Send + Sync + Default>(
    images: usize,
    channels: usize,
    body: impl Fn(usize, &mut [T]) + Send + Sync,
    merge: impl Fn(T, T) -> T + Send + Sync,
) -> Vec<T> {
    let fresh = || vec![T::default(); channels];
    let combine = |a: Vec<T>, b: Vec<T>| a.into_iter().zip(b).map(|(x, y)| merge(x, y)).collect::<Vec<T>>();
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        (0..images)
            .into_par_iter()
            .fold(fresh, |mut acc, i| {
                body(i, &mut acc);
                acc
            })
            .reduce(fresh, combine)
    }
    #[cfg(not(feature = "rayon"))]
    {
        let _ = combine;
        let mut acc = fresh();
        for i in 0..images {
            body(i, &mut acc);
        }
        acc
    }
}

/// Write `out` image by image from `f(image index, image's output)`.
fn for_each_image(out: &mut [f32], image_len: usize, f: impl Fn(usize, &mut [f32]) + Send + Sync) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(image_len).enumerate().for_each(|(i, o)| f(i, o));
    }
    #[cfg(not(feature = "rayon"))]
    out.chunks_mut(image_len).enumerate().for_each(|(i, o)| f(i, o));
}

/// Batch norm over `[n, c, ...]` with the batch's own statistics: `(output, mean, biased
/// variance)`, the last two `[c]`.
pub fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    if !(is_plain_f32(&x) && is_plain_f32(&gamma) && is_plain_f32(&beta)) {
        return composed_train(x, gamma, beta, epsilon);
    }
    let shape = x.layout().shape().clone();
    let (n, c, plane) = dims(&shape);
    let x = x.into_contiguous();
    let (gamma, beta) = (gamma.into_contiguous(), beta.into_contiguous());
    let xs = values(&x);
    let image = c * plane;
    let moments = fold_images(
        n,
        c,
        |i, acc: &mut [Moments]| {
            let img = &xs[i * image..(i + 1) * image];
            for (ch, m) in acc.iter_mut().enumerate() {
                *m = m.merge(plane_moments(&img[ch * plane..(ch + 1) * plane]));
            }
        },
        Moments::merge,
    );
    let mean: Vec<f32> = moments.iter().map(|m| m.mean as f32).collect();
    let var: Vec<f64> = moments
        .iter()
        .map(|m| if m.count > 0.0 { m.m2 / m.count } else { 0.0 })
        .collect();
    // y = (x - mean32) * scale + shift: centring on the f32 mean is exact for x near it
    // (a large mean does not cancel), and `shift` carries beta and what rounding the mean
    // to f32 lost.
    let (g, b) = (values(&gamma), values(&beta));
    let scale: Vec<f32> = (0..c)
        .map(|ch| (g[ch] as f64 / libm::sqrt(var[ch] + epsilon)) as f32)
        .collect();
    let shift: Vec<f32> = (0..c)
        .map(|ch| (b[ch] as f64 - (moments[ch].mean - mean[ch] as f64) * scale[ch] as f64) as f32)
        .collect();
    let mut out = vec![0.0f32; xs.len()];
    if image > 0 {
        for_each_image(&mut out, image, |i, o| {
            let img = &xs[i * image..(i + 1) * image];
            for ch in 0..c {
                let (m, s, t) = (mean[ch], scale[ch], shift[ch]);
                let range = ch * plane..(ch + 1) * plane;
                for (y, &v) in o[range.clone()].iter_mut().zip(&img[range]) {
                    *y = (v - m) * s + t;
                }
            }
        });
    }
    let out = FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(shape), DType::F32);
    let var: Vec<f32> = var.iter().map(|&v| v as f32).collect();
    (out, vector(mean), vector(var))
}

/// Gradients of [`batch_norm_train`] with respect to `x`, `gamma` and `beta`.
pub fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let all_f32 = [&x, &gamma, &mean, &variance, &output_grad].iter().all(|t| is_plain_f32(t));
    if !all_f32 || x.layout().shape() != output_grad.layout().shape() {
        return composed_backward(x, gamma, mean, variance, epsilon, output_grad);
    }
    let shape = x.layout().shape().clone();
    let (n, c, plane) = dims(&shape);
    let x = x.into_contiguous();
    let (gamma, mean, variance) = (gamma.into_contiguous(), mean.into_contiguous(), variance.into_contiguous());
    let mut dy = output_grad.into_contiguous();
    let (xs, mu) = (values(&x), values(&mean));
    let image = c * plane;
    // Σ dy and Σ dy (x - mean) per channel.
    let sums = {
        let dys = values(&dy);
        fold_images(
            n,
            c,
            |i, acc: &mut [(f64, f64)]| {
                let (img, g) = (&xs[i * image..(i + 1) * image], &dys[i * image..(i + 1) * image]);
                for (ch, s) in acc.iter_mut().enumerate() {
                    let range = ch * plane..(ch + 1) * plane;
                    let m = mu[ch];
                    s.0 += chunked_sum(&g[range.clone()], |v| v) as f64;
                    s.1 += chunked_sum2(&g[range.clone()], &img[range], |d, v| d * (v - m)) as f64;
                }
            },
            |a, b| (a.0 + b.0, a.1 + b.1),
        )
    };
    let count = (n * plane) as f64;
    let (g, var) = (values(&gamma), values(&variance));
    let inv_std: Vec<f64> = var.iter().map(|&v| 1.0 / libm::sqrt(v as f64 + epsilon)).collect();
    // `mean` arrives rounded to f32 and the true mean is not kept; centring on the f32
    // value is what the forward pass normalised with, up to its shift's correction.
    // dx = k (dy - Σdy / M - (x - mean) inv_std² Σdy(x - mean) / M), as
    // (dy - a) k + (x - mean) p.
    let mut k = vec![0.0f32; c];
    let mut a = vec![0.0f32; c];
    let mut p = vec![0.0f32; c];
    for ch in 0..c {
        let kk = g[ch] as f64 * inv_std[ch];
        k[ch] = kk as f32;
        a[ch] = (sums[ch].0 / count) as f32;
        p[ch] = (-kk * inv_std[ch] * inv_std[ch] * sums[ch].1 / count) as f32;
    }
    let beta_grad: Vec<f32> = sums.iter().map(|s| s.0 as f32).collect();
    let gamma_grad: Vec<f32> = sums.iter().zip(&inv_std).map(|(s, &is)| (s.1 * is) as f32).collect();
    let write = |i: usize, o: &mut [f32], dys: Option<&[f32]>| {
        let img = &xs[i * image..(i + 1) * image];
        for ch in 0..c {
            let (kk, aa, pp, m) = (k[ch], a[ch], p[ch], mu[ch]);
            let range = ch * plane..(ch + 1) * plane;
            match dys {
                Some(d) => {
                    let d = &d[i * image..(i + 1) * image];
                    for ((o, &d), &v) in o[range.clone()].iter_mut().zip(&d[range.clone()]).zip(&img[range]) {
                        *o = (d - aa) * kk + (v - m) * pp;
                    }
                }
                None => {
                    for (o, &v) in o[range.clone()].iter_mut().zip(&img[range]) {
                        *o = (*o - aa) * kk + (v - m) * pp;
                    }
                }
            }
        }
    };
    let in_place = dy.is_unique();
    let x_grad = if image == 0 {
        dy
    } else if in_place {
        let buf = dy.storage_mut::<f32>();
        for_each_image(&mut buf[..n * image], image, |i, o| write(i, o, None));
        dy
    } else {
        let dys = values(&dy);
        let mut out = vec![0.0f32; n * image];
        for_each_image(&mut out, image, |i, o| write(i, o, Some(dys)));
        FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(shape), DType::F32)
    };
    (x_grad, vector(gamma_grad), vector(beta_grad))
}

/// Per-channel sums of `[n, c, ...]` (a conv's bias gradient) without the channel-first
/// copy upstream makes; `None` for tensors the fused path does not take.
pub fn channel_sums(t: &FlexTensor) -> Option<FlexTensor> {
    if !is_plain_f32(t) || t.layout().shape().num_dims() < 2 {
        return None;
    }
    let t = t.clone().into_contiguous();
    let (n, c, plane) = dims(t.layout().shape());
    let image = c * plane;
    let ts = values(&t);
    let sums = fold_images(
        n,
        c,
        |i, acc: &mut [f64]| {
            let img = &ts[i * image..(i + 1) * image];
            for (ch, s) in acc.iter_mut().enumerate() {
                *s += chunked_sum(&img[ch * plane..(ch + 1) * plane], |v| v) as f64;
            }
        },
        |a, b| a + b,
    );
    Some(vector(sums.into_iter().map(|s| s as f32).collect()))
}

/// Upstream's default `batch_norm_train`, for dtypes the fused path does not take.
fn composed_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = x.shape();
    let channels = shape[1];
    let flattened = Shape::new([channels, shape.num_elements() / channels]);
    let mut per_channel = vec![1; shape.num_dims()];
    per_channel[1] = channels;
    let per_channel = Shape::from(per_channel);
    let mean = Flex::float_mean_dim(
        Flex::float_reshape(Flex::float_swap_dims(x.clone(), 0, 1), flattened.clone()),
        1,
    );
    let mean = Flex::float_reshape(mean, per_channel.clone());
    let centered = Flex::float_sub(x.clone(), mean.clone());
    let variance = Flex::float_mean_dim(
        Flex::float_reshape(Flex::float_swap_dims(Flex::float_mul(centered.clone(), centered), 0, 1), flattened),
        1,
    );
    let std = Flex::float_sqrt(Flex::float_add_scalar(variance.clone(), Scalar::Float(epsilon)));
    let normalized = Flex::float_div(Flex::float_sub(x, mean.clone()), std);
    let output = Flex::float_add(
        Flex::float_mul(normalized, Flex::float_reshape(gamma, per_channel.clone())),
        Flex::float_reshape(beta, per_channel),
    );
    let mean = Flex::float_reshape(mean, Shape::new([channels]));
    let variance = Flex::float_reshape(variance, Shape::new([channels]));
    (output, mean, variance)
}

/// Upstream's default `batch_norm_train_backward`, for dtypes the fused path does not take.
fn composed_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let shape = x.shape();
    let channels = shape[1];
    let flattened = Shape::new([channels, shape.num_elements() / channels]);
    let mut per_channel = vec![1; shape.num_dims()];
    per_channel[1] = channels;
    let per_channel = Shape::from(per_channel);
    let inv_std = Flex::float_reshape(
        Flex::float_recip(Flex::float_sqrt(Flex::float_add_scalar(variance, Scalar::Float(epsilon)))),
        per_channel.clone(),
    );
    let normalized = Flex::float_mul(
        Flex::float_sub(x, Flex::float_reshape(mean, per_channel.clone())),
        inv_std.clone(),
    );
    let output_grad_flat = Flex::float_reshape(Flex::float_swap_dims(output_grad.clone(), 0, 1), flattened.clone());
    let normalized_grad_flat = Flex::float_reshape(
        Flex::float_swap_dims(Flex::float_mul(output_grad.clone(), normalized.clone()), 0, 1),
        flattened,
    );
    let beta_grad = Flex::float_sum_dim(output_grad_flat.clone(), 1);
    let gamma_grad = Flex::float_sum_dim(normalized_grad_flat.clone(), 1);
    let mean_grad = Flex::float_reshape(Flex::float_mean_dim(output_grad_flat, 1), per_channel.clone());
    let mean_normalized_grad = Flex::float_reshape(Flex::float_mean_dim(normalized_grad_flat, 1), per_channel.clone());
    let centred_grad = Flex::float_sub(output_grad, mean_grad);
    let projected = Flex::float_mul(normalized, mean_normalized_grad);
    let scale = Flex::float_mul(Flex::float_reshape(gamma, per_channel), inv_std);
    let x_grad = Flex::float_mul(scale, Flex::float_sub(centred_grad, projected));
    (
        x_grad,
        Flex::float_reshape(gamma_grad, Shape::new([channels])),
        Flex::float_reshape(beta_grad, Shape::new([channels])),
    )
}
