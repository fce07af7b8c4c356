//! The burn-flex kernels patched in `vendor/burn-flex` (conv2d forward and both
//! gradients, tiling max pool, vectorised GELU and its gradient, fused training batch
//! norm both ways) checked through burn's public API and autodiff against
//! their definitions, at the shapes the shipped net trains with and at awkward ones.

use burn::tensor::activation::gelu;
use burn::tensor::module::{batch_norm_train, conv2d, max_pool2d_with_indices};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn values(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 37 + seed * 11) % 101) as f32 - 50.0) / 25.0)
        .collect()
}

fn tensor(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v, shape), &Device::flex())
}

/// A value and the sum of its terms' magnitudes (what f32 rounding error scales with).
type Sum = (f64, f64);

/// conv2d's output, input gradient and weight gradient straight from their definitions
/// (groups = 1, symmetric padding), for `loss = sum(y * dy)`.
struct Reference {
    y: Vec<Sum>,
    dx: Vec<Sum>,
    dw: Vec<Sum>,
}

#[allow(clippy::too_many_arguments)]
fn reference(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    dy: &[f32],
    [n, c, h, wd]: [usize; 4],
    [o_n, _, kh, kw]: [usize; 4],
    [oh, ow]: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    dil: [usize; 2],
) -> Reference {
    let mut r = Reference {
        y: (0..n * o_n * oh * ow)
            .map(|i| (f64::from(bias[(i / (oh * ow)) % o_n]), 0.0))
            .collect(),
        dx: vec![(0.0, 0.0); x.len()],
        dw: vec![(0.0, 0.0); w.len()],
    };
    let add = |s: &mut Sum, v: f64| {
        s.0 += v;
        s.1 += v.abs();
    };
    for b in 0..n {
        for o in 0..o_n {
            for oy in 0..oh {
                for ox in 0..ow {
                    let yi = ((b * o_n + o) * oh + oy) * ow + ox;
                    for ci in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * stride[0] + ky * dil[0]) as isize - pad[0] as isize;
                                let ix = (ox * stride[1] + kx * dil[1]) as isize - pad[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                    continue;
                                }
                                let xi = ((b * c + ci) * h + iy as usize) * wd + ix as usize;
                                let wi = ((o * c + ci) * kh + ky) * kw + kx;
                                let (xv, wv, gv) = (f64::from(x[xi]), f64::from(w[wi]), f64::from(dy[yi]));
                                add(&mut r.y[yi], xv * wv);
                                add(&mut r.dx[xi], wv * gv);
                                add(&mut r.dw[wi], xv * gv);
                            }
                        }
                    }
                }
            }
        }
    }
    r
}

fn assert_close(what: &str, got: Vec<f32>, want: &[Sum]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, (r, abs))) in got.iter().zip(want).enumerate() {
        // A wrong tap or image would be off by a whole term (~1); f32 rounding by far less.
        let tol = 1e-5 * abs + 1e-5;
        assert!((f64::from(*g) - r).abs() < tol, "{what}[{i}] = {g}, want {r}");
    }
}

fn check_conv(x_shape: [usize; 4], c_out: usize, k: [usize; 2], stride: [usize; 2], pad: [usize; 2], dil: [usize; 2]) {
    let out = |d: usize| (x_shape[2 + d] + 2 * pad[d] - dil[d] * (k[d] - 1) - 1) / stride[d] + 1;
    let w_shape = [c_out, x_shape[1], k[0], k[1]];
    let y_shape = [x_shape[0], c_out, out(0), out(1)];
    let x = values(x_shape.iter().product(), 1);
    let w = values(w_shape.iter().product(), 2);
    let bias = values(c_out, 3);
    let dy = values(y_shape.iter().product(), 4);
    let want = reference(
        &x,
        &w,
        &bias,
        &dy,
        x_shape,
        w_shape,
        [y_shape[2], y_shape[3]],
        stride,
        pad,
        dil,
    );

    let device = Device::flex().autodiff();
    let xt = Tensor::<4>::from_data(TensorData::new(x, x_shape), &device).require_grad();
    let wt = Tensor::<4>::from_data(TensorData::new(w, w_shape), &device).require_grad();
    let bt = Tensor::<1>::from_data(TensorData::new(bias, [c_out]), &device).require_grad();
    let y = conv2d(
        xt.clone(),
        wt.clone(),
        Some(bt.clone()),
        ConvOptions::new(stride, pad, dil, 1),
    );
    let plane = y_shape[2] * y_shape[3];
    let want_db: Vec<Sum> = (0..c_out)
        .map(|o| {
            let terms = (0..y_shape[0]).flat_map(|b| &dy[(b * c_out + o) * plane..(b * c_out + o + 1) * plane]);
            terms.fold((0.0, 0.0), |(s, a), &v| (s + f64::from(v), a + f64::from(v).abs()))
        })
        .collect();
    let loss = (y.clone() * Tensor::<4>::from_data(TensorData::new(dy, y_shape), &device)).sum();
    let grads = loss.backward();
    let vec = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    let what = format!("{x_shape:?} k {k:?} stride {stride:?} pad {pad:?} dilation {dil:?}");
    assert_close(&format!("{what} y"), vec(y), &want.y);
    assert_close(&format!("{what} dx"), vec(xt.grad(&grads).unwrap()), &want.dx);
    assert_close(&format!("{what} dw"), vec(wt.grad(&grads).unwrap()), &want.dw);
    let db = bt.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
    assert_close(&format!("{what} db"), db, &want_db);
}

#[test]
fn conv_forward_and_gradients_match_their_definitions() {
    // The shipped net's layers: 3x3, pad 1, at 32 and 8 px.
    check_conv([4, 3, 32, 32], 16, [3, 3], [1, 1], [1, 1], [1, 1]);
    check_conv([3, 32, 8, 8], 64, [3, 3], [1, 1], [1, 1], [1, 1]);
    // Many images per GEMM chunk (all three passes), at 4x4, the last chunk short.
    check_conv([300, 4, 4, 4], 6, [3, 3], [1, 1], [1, 1], [1, 1]);
    // Chunks of 3 images at 3x3 (the last group's plane) and, strided, at 7x7 -> 4x4.
    check_conv([17, 5, 3, 3], 7, [3, 3], [1, 1], [1, 1], [1, 1]);
    check_conv([20, 3, 7, 7], 4, [3, 3], [2, 2], [1, 1], [1, 1]);
    // Stride, no padding, rectangular kernel, dilation, 1x1.
    check_conv([2, 3, 9, 7], 4, [3, 2], [2, 1], [0, 1], [1, 1]);
    check_conv([2, 2, 9, 9], 3, [3, 3], [1, 2], [2, 2], [2, 1]);
    check_conv([2, 5, 6, 6], 3, [1, 1], [1, 1], [0, 0], [1, 1]);
    // Planes up to 16 px take the channels-last path, wider ones NCHW: the same
    // stride, rectangular-kernel and dilation cases on both sides of the line, and the
    // shipped net's 15 px layer beside its 31 px one.
    check_conv([3, 6, 15, 15], 8, [3, 3], [1, 1], [1, 1], [1, 1]);
    check_conv([2, 3, 21, 40], 4, [3, 2], [2, 1], [0, 1], [1, 1]);
    check_conv([2, 2, 19, 37], 3, [3, 3], [1, 2], [2, 2], [2, 1]);
    // "Same" convolutions (stride 1, odd kernel, centring padding) take the row im2col:
    // one image per chunk at 31 px, a 5x3 kernel on a rectangular plane with several
    // images per chunk (two zero rows between them), a 1x1 with none.
    check_conv([3, 4, 31, 31], 5, [3, 3], [1, 1], [1, 1], [1, 1]);
    check_conv([19, 3, 6, 5], 4, [5, 3], [1, 1], [2, 1], [1, 1]);
    check_conv([11, 3, 4, 4], 2, [1, 1], [1, 1], [0, 0], [1, 1]);
    // Channel counts and planes that leave ragged edges around the 8x8 transpose blocks.
    check_conv([2, 13, 11, 9], 10, [3, 3], [1, 1], [1, 1], [1, 1]);
}

fn check_max_pool(shape: [usize; 4], k: usize, x: Vec<f32>) {
    let [n, c, h, w] = shape;
    let (oh, ow) = (h / k, w / k);
    let (out, idx) = max_pool2d_with_indices(tensor(x.clone(), shape), MaxPoolOptions::new([k, k]));
    assert_eq!(out.dims(), [n, c, oh, ow]);
    let out = out.into_data().try_to_vec::<f32>().unwrap();
    let idx: Vec<i64> = idx.into_data().try_to_vec_as::<i64>().unwrap();
    for p in 0..n * c {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut best, mut best_i) = (f32::NEG_INFINITY, usize::MAX);
                for ky in 0..k {
                    for kx in 0..k {
                        let i = (oy * k + ky) * w + ox * k + kx;
                        let v = x[p * h * w + i];
                        if best_i == usize::MAX || v > best || v.is_nan() {
                            (best, best_i) = (v, i);
                        }
                    }
                }
                let o = (p * oh + oy) * ow + ox;
                assert!(out[o] == best || (out[o].is_nan() && best.is_nan()), "out[{o}]");
                assert_eq!(idx[o], best_i as i64, "index of out[{o}]");
            }
        }
    }
}

#[test]
fn non_overlapping_max_pool_matches_its_definition() {
    check_max_pool([2, 3, 8, 8], 2, values(2 * 3 * 64, 3));
    // The global pool at the end of the net.
    check_max_pool([3, 5, 4, 4], 4, values(3 * 5 * 16, 4));
    // Odd sides (the airbench net pools 31 -> 15 -> 7 -> 3): floor mode leaves the last
    // row and column out of every window.
    check_max_pool([2, 3, 31, 31], 2, values(2 * 3 * 31 * 31, 5));
    check_max_pool([1, 2, 7, 9], 2, values(2 * 7 * 9, 6));
    check_max_pool([2, 2, 7, 7], 3, values(2 * 2 * 49, 7));
    // Ties keep the first, a NaN wins.
    let mut x = vec![1.0; 16];
    x[5] = f32::NAN;
    check_max_pool([1, 1, 4, 4], 2, x);
}

/// Three levels, infinities and NaNs in no pattern: ties and NaNs at every window
/// position, several per window.
fn ties_and_nans(len: usize, seed: u64) -> Vec<f32> {
    let levels = [-1.0, 0.0, 1.0, 1.0, 2.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| levels[rng.random_range(0..levels.len())]).collect()
}

#[test]
fn the_2x2_max_pool_keeps_the_definition_at_every_row_width() {
    // The f32 2x2 kernel runs rows in vector steps of 8, 4, 2 or 1 with an overlapping
    // last step, and tasks of 64 planes: every output width from 1 to 17 (odd input
    // sides included), 150 planes (a short last task), ties and NaNs everywhere.
    for w in 2..=35 {
        let shape = [3, 50, 5, w];
        check_max_pool(shape, 2, ties_and_nans(shape.iter().product(), w as u64));
    }
}

/// GELU and its derivative from their definitions, in f64.
fn gelu_reference(x: f64) -> (f64, f64) {
    let cdf = 0.5 * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (x * cdf, cdf + x * pdf)
}

fn check_gelu(x: Vec<f32>, shape: [usize; 4], transpose: bool) {
    let device = Device::flex().autodiff();
    let n = x.len();
    let dy: Vec<f32> = (0..n).map(|i| 0.5 + (i % 7) as f32 * 0.25).collect();
    let leaf = Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &device).require_grad();
    let mut xt = leaf.clone();
    let mut dyt = Tensor::<4>::from_data(TensorData::new(dy.clone(), shape), &device);
    if transpose {
        // A strided view: the kernel's general path, not the contiguous fast one.
        xt = xt.swap_dims(1, 3);
        dyt = dyt.swap_dims(1, 3);
    }
    let y = gelu(xt);
    let grads = (y.clone() * dyt).sum().backward();
    let vec = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    let y = if transpose { vec(y.swap_dims(1, 3)) } else { vec(y) };
    let dx = vec(leaf.grad(&grads).unwrap());
    for i in 0..n {
        let v = f64::from(x[i]);
        let (want_y, want_d) = gelu_reference(v);
        if v.is_nan() {
            assert!(y[i].is_nan() && dx[i].is_nan(), "GELU(NaN) = {} / {}", y[i], dx[i]);
            continue;
        }
        // erf to 1.5e-7 and exp to 3e-7 relative, scaled by |x| in x * Phi(x).
        let tol = 1e-6 * v.abs().max(1.0);
        let dy = f64::from(dy[i]);
        assert!(
            (f64::from(y[i]) - want_y).abs() <= tol,
            "GELU({v}) = {} want {want_y}",
            y[i]
        );
        assert!(
            (f64::from(dx[i]) - want_d * dy).abs() <= tol * dy,
            "GELU'({v}) * {dy} = {} want {}",
            dx[i],
            want_d * dy
        );
    }
}

#[test]
fn gelu_and_its_gradient_match_their_definitions() {
    // -12..12 in steps of 1/4096 (98,305 values: several parallel chunks and an odd
    // tail), plus the far tails and signed zeros.
    let mut x: Vec<f32> = (-49_152..=49_152).map(|i| i as f32 / 4096.0).collect();
    x.extend([
        0.0,
        -0.0,
        1e-30,
        -1e-30,
        40.0,
        -40.0,
        88.5,
        -88.5,
        1e4,
        -1e4,
        f32::MIN_POSITIVE,
    ]);
    x.push(f32::NAN);
    let n = x.len();
    let shape = [1, 1, 1, n];
    check_gelu(x.clone(), shape, false);
    // The same values through the strided path: [3, 5, 7, 9] transposed.
    check_gelu(x[..945].to_vec(), [3, 5, 7, 9], true);
    check_gelu(x[n - 945..].to_vec(), [3, 5, 7, 9], true);
}

/// Training batch norm and its three gradients for `loss = sum(y * dy)`, from the
/// definition in f64: `y = gamma (x - mean) / sqrt(var + eps) + beta` with the batch's
/// own mean and biased variance per channel.
fn check_batch_norm(x: Vec<f32>, shape: [usize; 4], transpose: bool) {
    let [n, c, h, w] = shape;
    let plane = h * w;
    let eps = 1e-5;
    let gamma: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 * 0.25).collect();
    let beta: Vec<f32> = (0..c).map(|i| i as f32 * 0.5 - 1.0).collect();
    let dy = values(x.len(), 9);
    let at = |b: usize, ch: usize, i: usize| (b * c + ch) * plane + i;

    let device = Device::flex().autodiff();
    let leaf = Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &device).require_grad();
    let gt = Tensor::<1>::from_data(TensorData::new(gamma.clone(), [c]), &device).require_grad();
    let bt = Tensor::<1>::from_data(TensorData::new(beta.clone(), [c]), &device).require_grad();
    let mut dyt = Tensor::<4>::from_data(TensorData::new(dy.clone(), shape), &device);
    let mut xt = leaf.clone();
    if transpose {
        // Same values, strided: laid out as [n, w, h, c] and viewed back as [n, c, h, w].
        let src = Tensor::<4>::from_data(TensorData::new(x.clone(), shape), &device);
        xt = src
            .swap_dims(1, 3)
            .into_data_tensor(&device)
            .swap_dims(1, 3)
            .require_grad();
        dyt = dyt.swap_dims(1, 3).into_data_tensor(&device).swap_dims(1, 3);
    }
    let out = batch_norm_train(xt.clone(), gt.clone(), bt.clone(), eps);
    let grads = (out.output.clone() * dyt).sum().backward();
    let vec4 = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().unwrap();
    let vec1 = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
    let dx_leaf = if transpose { &xt } else { &leaf };
    let (y, dx) = (vec4(out.output), vec4(dx_leaf.grad(&grads).unwrap()));
    let (mean, var) = (vec1(out.mean), vec1(out.variance));
    let (dg, db) = (vec1(gt.grad(&grads).unwrap()), vec1(bt.grad(&grads).unwrap()));

    let m = (n * plane) as f64;
    let close = |what: &str, got: f32, want: f64, scale: f64| {
        assert!(
            (f64::from(got) - want).abs() <= 2e-5 * scale.max(1.0),
            "{what}: {got}, want {want} ({shape:?}, transposed {transpose})"
        );
    };
    for ch in 0..c {
        let xs: Vec<f64> = (0..n)
            .flat_map(|b| (0..plane).map(move |i| (b, i)))
            .map(|(b, i)| f64::from(x[at(b, ch, i)]))
            .collect();
        let mu = xs.iter().sum::<f64>() / m;
        let v = xs.iter().map(|x| (x - mu) * (x - mu)).sum::<f64>() / m;
        let inv = 1.0 / (v + eps).sqrt();
        close("mean", mean[ch], mu, mu.abs());
        close("variance", var[ch], v, v);
        let (mut sum_dy, mut sum_dy_xhat) = (0.0, 0.0);
        for b in 0..n {
            for i in 0..plane {
                let k = at(b, ch, i);
                let xhat = (f64::from(x[k]) - mu) * inv;
                close("y", y[k], f64::from(gamma[ch]) * xhat + f64::from(beta[ch]), 1.0);
                sum_dy += f64::from(dy[k]);
                sum_dy_xhat += f64::from(dy[k]) * xhat;
            }
        }
        close("beta grad", db[ch], sum_dy, m);
        close("gamma grad", dg[ch], sum_dy_xhat, m);
        for b in 0..n {
            for i in 0..plane {
                let k = at(b, ch, i);
                let xhat = (f64::from(x[k]) - mu) * inv;
                let want = f64::from(gamma[ch]) * inv * (f64::from(dy[k]) - sum_dy / m - xhat * sum_dy_xhat / m);
                close("x grad", dx[k], want, f64::from(gamma[ch]) * inv);
            }
        }
    }
}

trait IntoDataTensor {
    /// A contiguous copy, so that swapping dims back gives a strided view.
    fn into_data_tensor(self, device: &Device) -> Self;
}

impl IntoDataTensor for Tensor<4> {
    fn into_data_tensor(self, device: &Device) -> Self {
        Tensor::from_data(self.into_data(), device)
    }
}

#[test]
fn batch_norm_and_its_gradients_match_their_definitions() {
    // Planes of 9, 49 and 225 floats (the shipped net's 3, 7 and 15 px), not multiples
    // of the eight-lane sums; one-pixel planes; more images than a rayon split.
    check_batch_norm(values(5 * 3 * 7 * 9, 5), [5, 3, 7, 9], false);
    check_batch_norm(values(64 * 4 * 3 * 3, 6), [64, 4, 3, 3], false);
    check_batch_norm(values(3 * 8 * 15 * 15, 7), [3, 8, 15, 15], false);
    check_batch_norm(values(40 * 5, 8), [40, 5, 1, 1], false);
    // A mean about 350 standard deviations from zero: sums and centring must not cancel.
    let offset: Vec<f32> = values(6 * 2 * 7 * 7, 3).iter().map(|v| 100.0 + v * 0.25).collect();
    check_batch_norm(offset, [6, 2, 7, 7], false);
    // A strided input and gradient.
    check_batch_norm(values(4 * 3 * 5 * 6, 2), [4, 3, 5, 6], true);
}
