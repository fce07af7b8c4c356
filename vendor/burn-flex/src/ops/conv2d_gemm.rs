//! conv2d forward, input gradient and weight gradient as im2col + GEMM, f32/f64.
//!
//! Why (profiled on a CIFAR-sized net, batch 128, 2 threads): burn-backend's default
//! weight gradient is a convolution of the input with the output gradient, whose
//! "kernel" is the whole output plane, so im2col copies each input pixel `OH*OW` times
//! (31 % of training time); the input gradient went through the general transposed
//! convolution; the forward pass transposed the input to NHWC and scattered GEMM
//! results element by element. Here all three use one im2col layout,
//! `col[(c, ky, kx), (n, oy, ox)]`, which makes each a plain GEMM writing in place:
//! forward `Y[n] = W * col(x[n])`, input gradient `dX[n] = col2im(W^T * dY[n])`,
//! weight gradient `dW = sum over image chunks of dY * col^T` (what PyTorch does).

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// Same convolutions (every 3x3 layer of the shipped net) take a row im2col instead.
mod rows;

/// Output-gradient positions per weight-gradient GEMM: long enough for the GEMM to run
/// at speed, short enough that the im2col chunk (up to 1,152 rows here) stays near L2.
/// Measured with `cargo run --release -p trainer --example conv_layers` (2 threads,
/// batch 1,024, backward ms of the 64 -> 128 @ 15 px / 128 @ 7 px layers): 4,096
/// positions 478 / 221, 512 positions 419 / 208, 256 positions 426 / 220.
const POSITIONS_PER_CHUNK: usize = 512;

/// Output positions per forward / input-gradient GEMM. Batching images lets the 7x7 and
/// 3x3 layers pack W once per chunk instead of once per image; past a few hundred
/// positions the im2col chunk outgrows L2. Measured as above (forward ms, 24 @ 31 px /
/// 64 @ 15 px / 128 @ 7 px): 2,048 positions 191 / 146 / 122, 1,024 176 / 125 / 100,
/// 512 170 / 115 / 103, 256 168 / 121 / 97.
const IMAGE_CHUNK_POSITIONS: usize = 512;

/// Output planes up to this side take the channels-last path ([`Geometry::channels_last`]).
/// Measured as above (forward / backward ms, 24 @ 31 px, 64 @ 15 px -> 64 and -> 128,
/// 128 @ 7 px, 128 @ 3 px): NCHW throughout 197 / 460, 139 / 290, 236 / 492, 121 / 241,
/// 30 / 59; channels-last up to 16 px 195 / 459, 129 / 254, 230 / 432, 100 / 191,
/// 20 / 37; at 31 px too the forward slows to 217 (24 channels make short runs).
const CHANNELS_LAST_MAX_SIDE: usize = 16;

trait Float:
    bytemuck::Pod + Copy + Send + Sync + burn_backend::Element + core::ops::Add<Output = Self> + 'static
{
    const ZERO: Self;
    const ONE: Self;
}
impl Float for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}
impl Float for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

struct Geometry {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    c_out: usize,
    groups: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
}

impl Geometry {
    fn c_per_group(&self) -> usize {
        self.c / self.groups
    }
    fn out_per_group(&self) -> usize {
        self.c_out / self.groups
    }
    fn col_rows(&self) -> usize {
        self.c_per_group() * self.kh * self.kw
    }
    fn positions(&self) -> usize {
        self.oh * self.ow
    }
    /// Images per forward / input-gradient GEMM: whole images up to
    /// [`IMAGE_CHUNK_POSITIONS`], and at least eight chunks per batch so both threads stay
    /// busy to the end.
    fn images_per_chunk(&self) -> usize {
        (IMAGE_CHUNK_POSITIONS / self.positions().max(1))
            .min(self.n.div_ceil(8))
            .max(1)
    }

    /// Whether to run the channels-last path: on small planes the NCHW im2col copies runs
    /// of `ow` floats (7 or 3 on the shipped net), channels-last runs of `c`.
    fn channels_last(&self) -> bool {
        self.groups == 1 && self.ow <= CHANNELS_LAST_MAX_SIDE
    }

    /// For kernel column `kx`: the output columns `ox_lo..ox_hi` whose input column lies
    /// inside the image, and the input column of `ox_lo`; `None` if there are none.
    fn valid_cols(&self, kx: usize) -> Option<(usize, usize, usize)> {
        let (sx, px, x_off) = (self.stride[1], self.pad[1], kx * self.dilation[1]);
        let lo = px.saturating_sub(x_off).div_ceil(sx).min(self.ow);
        let hi = (self.w + px)
            .checked_sub(x_off)
            .map_or(0, |v| v.div_ceil(sx))
            .clamp(lo, self.ow);
        (hi > lo).then(|| (lo, hi, lo * sx + x_off - px))
    }
}

/// Gradient of conv2d with respect to its weight, for f32 and f64 tensors.
///
/// Asymmetric padding needs no special case: the end padding only shows in the output
/// gradient's size, which is read from its shape.
pub fn conv2d_weight_backward(
    x: FlexTensor,
    weight_shape: Shape,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match x.dtype() {
        DType::F32 => weight_grad::<f32>(x, weight_shape, output_grad, options, DType::F32),
        DType::F64 => weight_grad::<f64>(x, weight_shape, output_grad, options, DType::F64),
        dtype => panic!("conv2d_weight_backward: unsupported dtype {dtype:?}"),
    }
}

impl Geometry {
    fn new(x: &[usize], weight: &[usize], y: [usize; 2], options: &ConvOptions<2>) -> Self {
        Geometry {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            c_out: weight[0],
            groups: options.groups,
            kh: weight[2],
            kw: weight[3],
            oh: y[0],
            ow: y[1],
            stride: options.stride,
            pad: options.padding_begin(),
            dilation: options.dilation,
        }
    }
}

fn weight_grad<T: Float>(
    x: FlexTensor,
    weight_shape: Shape,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
    dtype: DType,
) -> FlexTensor {
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    let ys = dy.layout().shape();
    let g = Geometry::new(x.layout().shape(), &weight_shape, [ys[2], ys[3]], options);
    let x_data: &[T] = x.storage();
    let dy_data: &[T] = dy.storage();
    if rows::applies(&g) {
        let dw = rows::weight_grad(x_data, dy_data, &g);
        return FlexTensor::new(Bytes::from_elems(dw), Layout::contiguous(weight_shape), dtype);
    }
    let (rows, opg) = (g.col_rows(), g.out_per_group());
    let per_group = opg * rows;
    let images_per_chunk = POSITIONS_PER_CHUNK.div_ceil(g.positions().max(1)).max(1);
    let nhwc = g.channels_last();
    let chunk_grad = |b0: usize, b1: usize, dw: &mut [T], bufs: &mut Scratch<T>| {
        let Scratch { col, tmp: dyt, nhwc: xt } = bufs;
        let k = (b1 - b0) * g.positions();
        scratch(col, rows * k);
        scratch(dyt, opg * k);
        if nhwc {
            to_nhwc(xt, x_data, &g, b0, b1);
            im2col_nhwc(col, xt, &g, b1 - b0);
            gather_grad(dyt, dy_data, &g, 0, b0, b1);
            // dw[o, (ky, kx, c)] += sum_k dyt[o, k] * col[k, (ky, kx, c)]
            unsafe {
                gemm_rm(opg, rows, k, dw.as_mut_ptr(), true, (dyt.as_ptr(), false, k), (col.as_ptr(), false, rows));
            }
            return;
        }
        for grp in 0..g.groups {
            im2col(col, x_data, &g, grp, b0, b1);
            gather_grad(dyt, dy_data, &g, grp, b0, b1);
            // dw[o, r] += sum_k dyt[o, k] * col[r, k]
            unsafe {
                gemm_rm(
                    opg,
                    rows,
                    k,
                    dw.as_mut_ptr().add(grp * per_group),
                    true,
                    (dyt.as_ptr(), false, k),
                    (col.as_ptr(), true, k),
                );
            }
        }
    };
    let dw = sum_over_chunks(g.n, images_per_chunk, g.groups * per_group, chunk_grad);
    let dw = if nhwc { from_tap_major(&dw, &g) } else { dw };

    FlexTensor::new(Bytes::from_elems(dw), Layout::contiguous(weight_shape), dtype)
}

/// Size a reused scratch buffer to `len`. What it held is never read: im2col and
/// `gather_grad` write every entry (padding included) and the GEMMs overwrite theirs.
fn scratch<T: Float>(buf: &mut Vec<T>, len: usize) {
    buf.resize(len, T::ZERO);
}

/// `dst[m, n] (+)= lhs[m, k] * rhs[k, n]`, `dst` row-major. Each operand is
/// `(pointer, stored transposed, row stride as stored)`: `lhs` is `[m, k]` or, transposed,
/// `[k, m]`; `rhs` is `[k, n]` or `[n, k]`.
unsafe fn gemm_rm<T: Float>(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut T,
    accumulate: bool,
    (lhs, lhs_t, lhs_stride): (*const T, bool, usize),
    (rhs, rhs_t, rhs_stride): (*const T, bool, usize),
) {
    // (row stride, column stride) of the logical, untransposed operand.
    let strides = |t: bool, stride: usize| if t { (1, stride) } else { (stride, 1) };
    let ((lhs_rs, lhs_cs), (rhs_rs, rhs_cs)) = (strides(lhs_t, lhs_stride), strides(rhs_t, rhs_stride));
    unsafe {
        rows::gemm_at(
            [m, n, k],
            (dst, n, 1),
            accumulate,
            (lhs, lhs_rs, lhs_cs),
            (rhs, rhs_rs, rhs_cs),
        )
    }
}

/// Forward conv2d, one chunk of images per task: `y[n, o, :] = W[o, :] * im2col(x[n])`.
pub fn conv2d(x: FlexTensor, weight: FlexTensor, bias: Option<FlexTensor>, options: &ConvOptions<2>) -> FlexTensor {
    match x.dtype() {
        DType::F32 => forward::<f32>(x, weight, bias, options, DType::F32),
        DType::F64 => forward::<f64>(x, weight, bias, options, DType::F64),
        dtype => panic!("conv2d: unsupported dtype {dtype:?}"),
    }
}

fn forward<T: Float>(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
    dtype: DType,
) -> FlexTensor {
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    let out = |d: usize| {
        let (b, e) = options.padding[d];
        (xs[2 + d] + b + e - options.dilation[d] * (ws[2 + d] - 1) - 1) / options.stride[d] + 1
    };
    let g = Geometry::new(xs, ws, [out(0), out(1)], options);
    let (x_data, w_data): (&[T], &[T]) = (x.storage(), weight.storage());
    let bias = bias.map(|b| b.to_contiguous());
    let bias_data: Option<&[T]> = bias.as_ref().map(|b| b.storage());
    let out_shape = Shape::from(vec![g.n, g.c_out, g.oh, g.ow]);
    if rows::applies(&g) {
        let y = rows::forward(x_data, w_data, bias_data, &g);
        return FlexTensor::new(Bytes::from_elems(y), Layout::contiguous(out_shape), dtype);
    }
    let (rows, opg, p) = (g.col_rows(), g.out_per_group(), g.positions());
    let mut y = vec![T::ZERO; g.n * g.c_out * p];
    let per_chunk = g.images_per_chunk();
    // One GEMM per chunk of images, so W is packed once per chunk and small planes
    // (7x7, 3x3) still give the GEMM a long N; results are scattered to NCHW after.
    let nhwc = g.channels_last();
    let w_tap_major = if nhwc { tap_major(w_data, &g) } else { Vec::new() };
    let w_data: &[T] = if nhwc { &w_tap_major } else { w_data };
    let chunk = |b0: usize, y_chunk: &mut [T], bufs: &mut Scratch<T>| {
        let Scratch { col, tmp, nhwc: xt } = bufs;
        let b1 = (b0 + per_chunk).min(g.n);
        let k = (b1 - b0) * p;
        scratch(col, rows * k);
        scratch(tmp, if b1 - b0 > 1 { opg * k } else { 0 });
        if nhwc {
            to_nhwc(xt, x_data, &g, b0, b1);
            im2col_nhwc(col, xt, &g, b1 - b0);
        }
        for grp in 0..g.groups {
            if !nhwc {
                im2col(col, x_data, &g, grp, b0, b1);
            }
            let dst = if tmp.is_empty() {
                y_chunk[grp * opg * p..].as_mut_ptr()
            } else {
                tmp.as_mut_ptr()
            };
            unsafe {
                gemm_rm(
                    opg,
                    k,
                    rows,
                    dst,
                    false,
                    (w_data.as_ptr().add(grp * opg * rows), false, rows),
                    // NHWC im2col is stored position-major: [k, rows].
                    if nhwc { (col.as_ptr(), true, rows) } else { (col.as_ptr(), false, k) },
                );
            }
            if !tmp.is_empty() {
                // tmp[o, (b, p)] -> y[b, grp * opg + o, p]
                for o in 0..opg {
                    for b in 0..b1 - b0 {
                        y_chunk[(b * g.c_out + grp * opg + o) * p..][..p].copy_from_slice(&tmp[o * k + b * p..][..p]);
                    }
                }
            }
        }
        if let Some(bias) = bias_data {
            for img in y_chunk.chunks_mut(g.c_out * p) {
                for (plane, &bv) in img.chunks_mut(p).zip(bias) {
                    plane.iter_mut().for_each(|v| *v = *v + bv);
                }
            }
        }
    };
    for_each_chunk(&mut y, g.c_out * p, per_chunk, chunk);
    FlexTensor::new(Bytes::from_elems(y), Layout::contiguous(out_shape), dtype)
}

/// Gradient of conv2d with respect to its input: `col2im(W^T * dY[n])`, one GEMM per
/// chunk of images.
pub fn conv2d_x_backward(
    x_shape: &[usize],
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
) -> FlexTensor {
    match output_grad.dtype() {
        DType::F32 => x_grad::<f32>(x_shape, weight, output_grad, options, DType::F32),
        DType::F64 => x_grad::<f64>(x_shape, weight, output_grad, options, DType::F64),
        dtype => panic!("conv2d_x_backward: unsupported dtype {dtype:?}"),
    }
}

fn x_grad<T: Float>(
    x_shape: &[usize],
    weight: FlexTensor,
    output_grad: FlexTensor,
    options: &ConvOptions<2>,
    dtype: DType,
) -> FlexTensor {
    let weight = weight.to_contiguous();
    let dy = output_grad.to_contiguous();
    let ys = dy.layout().shape();
    let g = Geometry::new(x_shape, weight.layout().shape(), [ys[2], ys[3]], options);
    let (w_data, dy_data): (&[T], &[T]) = (weight.storage(), dy.storage());
    let x_layout = Layout::contiguous(Shape::from(x_shape.to_vec()));
    if rows::applies(&g) {
        return FlexTensor::new(Bytes::from_elems(rows::x_grad(w_data, dy_data, &g)), x_layout, dtype);
    }
    let (rows, opg, p) = (g.col_rows(), g.out_per_group(), g.positions());
    let mut dx = vec![T::ZERO; g.n * g.c * g.h * g.w];
    let per_chunk = g.images_per_chunk();
    let nhwc = g.channels_last();
    let w_tap_major = if nhwc { tap_major(w_data, &g) } else { Vec::new() };
    let chunk = |b0: usize, dx_chunk: &mut [T], bufs: &mut Scratch<T>| {
        let Scratch { col: dcol, tmp: dyt, nhwc: dxt } = bufs;
        let b1 = (b0 + per_chunk).min(g.n);
        let k = (b1 - b0) * p;
        scratch(dcol, rows * k);
        scratch(dyt, if b1 - b0 > 1 { opg * k } else { 0 });
        if nhwc {
            let dy_ptr = if dyt.is_empty() {
                unsafe { dy_data.as_ptr().add(b0 * g.c_out * p) }
            } else {
                gather_grad(dyt, dy_data, &g, 0, b0, b1);
                dyt.as_ptr()
            };
            // dcol[(b, p), (ky, kx, c)] = sum_o dY[b, o, p] * W[o, (ky, kx, c)]
            unsafe {
                gemm_rm(
                    k,
                    rows,
                    opg,
                    dcol.as_mut_ptr(),
                    false,
                    (dy_ptr, true, k),
                    (w_tap_major.as_ptr(), false, rows),
                );
            }
            col2im_nhwc(dcol, dxt, &g, b1 - b0);
            from_nhwc(dx_chunk, dxt, &g, b1 - b0);
            return;
        }
        for grp in 0..g.groups {
            let dy_ptr = if dyt.is_empty() {
                unsafe { dy_data.as_ptr().add((b0 * g.c_out + grp * opg) * p) }
            } else {
                gather_grad(dyt, dy_data, &g, grp, b0, b1);
                dyt.as_ptr()
            };
            // dcol[r, (b, p)] = sum_o W[o, r] * dY[b, o, p]
            unsafe {
                gemm_rm(
                    rows,
                    k,
                    opg,
                    dcol.as_mut_ptr(),
                    false,
                    (w_data.as_ptr().add(grp * opg * rows), true, rows),
                    (dy_ptr, false, k),
                );
            }
            for b in 0..b1 - b0 {
                let dx_img = &mut dx_chunk[b * g.c * g.h * g.w..];
                col2im(dcol, k, b * p, &mut dx_img[grp * g.c_per_group() * g.h * g.w..], &g);
            }
        }
    };
    for_each_chunk(&mut dx, g.c * g.h * g.w, per_chunk, chunk);
    FlexTensor::new(Bytes::from_elems(dx), x_layout, dtype)
}

/// A task's reused scratch buffers: the im2col matrix, a GEMM result or gathered
/// gradient, and (channels-last path) the chunk's input or input gradient in NHWC.
struct Scratch<T> {
    col: Vec<T>,
    tmp: Vec<T>,
    nhwc: Vec<T>,
}

impl<T> Default for Scratch<T> {
    fn default() -> Self {
        Scratch {
            col: Vec::new(),
            tmp: Vec::new(),
            nhwc: Vec::new(),
        }
    }
}

/// Run `f(first image, the chunk's slice of out, scratch)` for every chunk of
/// `per_chunk` images, in parallel where rayon is on; each task reuses one pair of
/// scratch buffers for all the chunks it takes.
fn for_each_chunk<T: Float, U: Send>(
    out: &mut [U],
    per_image: usize,
    per_chunk: usize,
    f: impl Fn(usize, &mut [U], &mut Scratch<T>) + Send + Sync,
) {
    if per_image == 0 {
        return;
    }
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(per_image * per_chunk)
            .enumerate()
            .for_each_init(Scratch::default, |bufs, (i, s)| f(i * per_chunk, s, bufs));
    }
    #[cfg(not(feature = "rayon"))]
    {
        let mut bufs = Scratch::default();
        out.chunks_mut(per_image * per_chunk)
            .enumerate()
            .for_each(|(i, s)| f(i * per_chunk, s, &mut bufs));
    }
}

/// The sum over chunks of `per_chunk` images of what `f(first image, end, accumulator,
/// scratch)` adds into a `len`-long accumulator, in parallel where rayon is on. Each task
/// keeps one accumulator and one set of scratch buffers for every chunk it takes:
/// allocating (and zeroing) them per chunk cost as much as the copies.
fn sum_over_chunks<T: Float>(
    n: usize,
    per_chunk: usize,
    len: usize,
    f: impl Fn(usize, usize, &mut [T], &mut Scratch<T>) + Send + Sync,
) -> Vec<T> {
    let chunks: Vec<(usize, usize)> = (0..n).step_by(per_chunk).map(|b0| (b0, (b0 + per_chunk).min(n))).collect();
    let zeros = || (vec![T::ZERO; len], Scratch::default());
    let step = |(mut acc, mut bufs): (Vec<T>, Scratch<T>), &(b0, b1): &(usize, usize)| {
        f(b0, b1, &mut acc, &mut bufs);
        (acc, bufs)
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        chunks.par_iter().fold(zeros, step).map(|(acc, _)| acc).reduce(
            || vec![T::ZERO; len],
            |mut a, b| {
                a.iter_mut().zip(b).for_each(|(x, y)| *x = *x + y);
                a
            },
        )
    }
    #[cfg(not(feature = "rayon"))]
    {
        chunks.iter().fold(zeros(), step).0
    }
}

/// Scatter-add one image's `dcol[(c, ky, kx), offset + (oy, ox)]` (rows `stride` long)
/// back onto its input planes (the adjoint of [`im2col`] for one group).
fn col2im<T: Float>(dcol: &[T], stride: usize, offset: usize, dx: &mut [T], g: &Geometry) {
    let p = g.positions();
    let [sy, sx] = g.stride;
    let py = g.pad[0];
    let dy = g.dilation[0];
    for c in 0..g.c_per_group() {
        let plane = &mut dx[c * g.h * g.w..][..g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = &dcol[((c * g.kh + ky) * g.kw + kx) * stride + offset..][..p];
                let Some((ox_lo, ox_hi, ix0)) = g.valid_cols(kx) else {
                    continue;
                };
                for oy in 0..g.oh {
                    let iy = (oy * sy + ky * dy).wrapping_sub(py);
                    if iy >= g.h {
                        continue;
                    }
                    let src = &row[oy * g.ow + ox_lo..oy * g.ow + ox_hi];
                    let dst = &mut plane[iy * g.w..][..g.w];
                    if sx == 1 {
                        for (d, &v) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *d = *d + v;
                        }
                    } else {
                        for (i, &v) in src.iter().enumerate() {
                            dst[ix0 + i * sx] = dst[ix0 + i * sx] + v;
                        }
                    }
                }
            }
        }
    }
}

/// `col[(c, ky, kx), (b - b0, oy, ox)]` for the channels of group `grp`, zero where the
/// kernel tap falls in the padding.
fn im2col<T: Float>(col: &mut [T], x: &[T], g: &Geometry, grp: usize, b0: usize, b1: usize) {
    let k = (b1 - b0) * g.positions();
    let [sy, sx] = g.stride;
    let py = g.pad[0];
    let dy = g.dilation[0];
    for c in 0..g.c_per_group() {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let row = (c * g.kh + ky) * g.kw + kx;
                let dst_row = &mut col[row * k..(row + 1) * k];
                let cols = g.valid_cols(kx);
                for b in b0..b1 {
                    let plane = &x[((b * g.c) + grp * g.c_per_group() + c) * g.h * g.w..][..g.h * g.w];
                    for oy in 0..g.oh {
                        let dst = &mut dst_row[((b - b0) * g.oh + oy) * g.ow..][..g.ow];
                        let iy = (oy * sy + ky * dy).wrapping_sub(py);
                        if iy >= g.h {
                            dst.fill(T::ZERO);
                            continue;
                        }
                        let Some((ox_lo, ox_hi, ix0)) = cols else {
                            dst.fill(T::ZERO);
                            continue;
                        };
                        let src = &plane[iy * g.w..][..g.w];
                        dst[..ox_lo].fill(T::ZERO);
                        dst[ox_hi..].fill(T::ZERO);
                        if sx == 1 {
                            dst[ox_lo..ox_hi].copy_from_slice(&src[ix0..ix0 + (ox_hi - ox_lo)]);
                        } else {
                            for (i, d) in dst[ox_lo..ox_hi].iter_mut().enumerate() {
                                *d = src[ix0 + i * sx];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dyt[o, (b - b0, p)]` = output gradient of channel `o` of group `grp`.
fn gather_grad<T: Float>(dyt: &mut [T], dy: &[T], g: &Geometry, grp: usize, b0: usize, b1: usize) {
    let p = g.positions();
    let k = (b1 - b0) * p;
    for o in 0..g.out_per_group() {
        for b in b0..b1 {
            let src = &dy[(b * g.c_out + grp * g.out_per_group() + o) * p..][..p];
            dyt[o * k + (b - b0) * p..][..p].copy_from_slice(src);
        }
    }
}

/// `W[o, c, ky, kx]` -> `W[o, (ky, kx, c)]`, the channels-last im2col's row order.
fn tap_major<T: Float>(w: &[T], g: &Geometry) -> Vec<T> {
    let (c, taps) = (g.c, g.kh * g.kw);
    let mut out = vec![T::ZERO; w.len()];
    for o in 0..g.c_out {
        for ci in 0..c {
            for t in 0..taps {
                out[(o * taps + t) * c + ci] = w[(o * c + ci) * taps + t];
            }
        }
    }
    out
}

/// The inverse of [`tap_major`].
fn from_tap_major<T: Float>(w: &[T], g: &Geometry) -> Vec<T> {
    let (c, taps) = (g.c, g.kh * g.kw);
    let mut out = vec![T::ZERO; w.len()];
    for o in 0..g.c_out {
        for ci in 0..c {
            for t in 0..taps {
                out[(o * c + ci) * taps + t] = w[(o * taps + t) * c + ci];
            }
        }
    }
    out
}

/// Images `b0..b1` of `x` (NCHW) as `xt[(b - b0, y, x), c]`.
fn to_nhwc<T: Float>(xt: &mut Vec<T>, x: &[T], g: &Geometry, b0: usize, b1: usize) {
    let (c, hw) = (g.c, g.h * g.w);
    scratch(xt, (b1 - b0) * hw * c);
    for b in b0..b1 {
        rows::transpose(
            &x[b * c * hw..][..c * hw],
            c,
            hw,
            rows::writable(&mut xt[(b - b0) * hw * c..][..hw * c]),
        );
    }
}

/// `dx[b, c, y, x] = dxt[(b, y, x), c]` for `images` images (the chunk's slice of dx).
fn from_nhwc<T: Float>(dx: &mut [T], dxt: &[T], g: &Geometry, images: usize) {
    let (c, hw) = (g.c, g.h * g.w);
    for b in 0..images {
        rows::transpose(
            &dxt[b * hw * c..][..hw * c],
            hw,
            c,
            rows::writable(&mut dx[b * c * hw..][..c * hw]),
        );
    }
}

/// For output position `(oy, ox)` and tap `(ky, kx)`: the input pixel's index in its
/// plane, or `None` where the tap falls in the padding.
fn tap_source(g: &Geometry, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<usize> {
    let iy = (oy * g.stride[0] + ky * g.dilation[0]).wrapping_sub(g.pad[0]);
    let ix = (ox * g.stride[1] + kx * g.dilation[1]).wrapping_sub(g.pad[1]);
    (iy < g.h && ix < g.w).then_some(iy * g.w + ix)
}

/// `col[(b, oy, ox), (ky, kx, c)]` from channels-last images: each tap is one copy of
/// `c` floats, zero where it falls in the padding.
fn im2col_nhwc<T: Float>(col: &mut [T], xt: &[T], g: &Geometry, images: usize) {
    let (c, hw, rows) = (g.c, g.h * g.w, g.col_rows());
    for b in 0..images {
        let img = &xt[b * hw * c..][..hw * c];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let pos = (b * g.oh + oy) * g.ow + ox;
                let dst_row = &mut col[pos * rows..][..rows];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let dst = &mut dst_row[(ky * g.kw + kx) * c..][..c];
                        match tap_source(g, oy, ox, ky, kx) {
                            Some(s) => dst.copy_from_slice(&img[s * c..][..c]),
                            None => dst.fill(T::ZERO),
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col_nhwc`]: `dxt[(b, y, x), c]` summed from `dcol`.
fn col2im_nhwc<T: Float>(dcol: &[T], dxt: &mut Vec<T>, g: &Geometry, images: usize) {
    let (c, hw, rows) = (g.c, g.h * g.w, g.col_rows());
    dxt.clear();
    dxt.resize(images * hw * c, T::ZERO);
    for b in 0..images {
        let img = &mut dxt[b * hw * c..][..hw * c];
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let pos = (b * g.oh + oy) * g.ow + ox;
                let src_row = &dcol[pos * rows..][..rows];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        if let Some(s) = tap_source(g, oy, ox, ky, kx) {
                            let src = &src_row[(ky * g.kw + kx) * c..][..c];
                            for (d, &v) in img[s * c..][..c].iter_mut().zip(src) {
                                *d = *d + v;
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct definition of the weight gradient, for checking.
    fn reference(x: &[f64], dy: &[f64], g: &Geometry) -> Vec<f64> {
        let cpg = g.c_per_group();
        let mut dw = vec![0.0; g.c_out * cpg * g.kh * g.kw];
        for o in 0..g.c_out {
            let grp = o / g.out_per_group();
            for c in 0..cpg {
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let mut s = 0.0;
                        for b in 0..g.n {
                            for oy in 0..g.oh {
                                for ox in 0..g.ow {
                                    let iy = (oy * g.stride[0] + ky * g.dilation[0]) as isize - g.pad[0] as isize;
                                    let ix = (ox * g.stride[1] + kx * g.dilation[1]) as isize - g.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                        continue;
                                    }
                                    let xi = ((b * g.c + grp * cpg + c) * g.h + iy as usize) * g.w + ix as usize;
                                    let yi = ((b * g.c_out + o) * g.oh + oy) * g.ow + ox;
                                    s += x[xi] * dy[yi];
                                }
                            }
                        }
                        dw[((o * cpg + c) * g.kh + ky) * g.kw + kx] = s;
                    }
                }
            }
        }
        dw
    }

    fn check(n: usize, c: usize, hw: [usize; 2], c_out: usize, k: [usize; 2], opts: ConvOptions<2>) {
        let out = |d: usize| {
            (hw[d] + opts.padding[d].0 + opts.padding[d].1 - opts.dilation[d] * (k[d] - 1) - 1) / opts.stride[d] + 1
        };
        let (oh, ow) = (out(0), out(1));
        let xs: Vec<f64> = (0..n * c * hw[0] * hw[1]).map(|i| ((i * 37 % 101) as f64 - 50.0) / 25.0).collect();
        let ys: Vec<f64> = (0..n * c_out * oh * ow).map(|i| ((i * 53 % 97) as f64 - 48.0) / 30.0).collect();
        let g = Geometry {
            n,
            c,
            h: hw[0],
            w: hw[1],
            c_out,
            groups: opts.groups,
            kh: k[0],
            kw: k[1],
            oh,
            ow,
            stride: opts.stride,
            pad: opts.padding_begin(),
            dilation: opts.dilation,
        };
        let expected = reference(&xs, &ys, &g);
        let wshape = Shape::from(vec![c_out, c / opts.groups, k[0], k[1]]);
        let tensor = |v: Vec<f64>, s: Vec<usize>| {
            FlexTensor::new(Bytes::from_elems(v), Layout::contiguous(Shape::from(s)), DType::F64)
        };
        let got = conv2d_weight_backward(
            tensor(xs, vec![n, c, hw[0], hw[1]]),
            wshape,
            tensor(ys, vec![n, c_out, oh, ow]),
            &opts,
        );
        let got: &[f64] = got.storage();
        for (i, (a, b)) in got.iter().zip(&expected).enumerate() {
            assert!((a - b).abs() < 1e-9 * (1.0 + b.abs()), "dw[{i}]: {a} vs {b}");
        }
    }

    #[test]
    fn matches_the_definition() {
        // 3x3 same padding (the common case), odd sizes, strides, dilation, groups.
        check(3, 4, [8, 8], 5, [3, 3], ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
        check(2, 3, [7, 9], 4, [3, 2], ConvOptions::new([2, 1], [1, 0], [1, 1], 1));
        check(2, 2, [9, 9], 3, [3, 3], ConvOptions::new([1, 2], [2, 2], [2, 1], 1));
        check(2, 4, [6, 5], 6, [3, 3], ConvOptions::new([1, 1], [1, 1], [1, 1], 2));
        check(5, 1, [4, 4], 2, [1, 1], ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        // Asymmetric padding (begin 1, end 0).
        check(2, 3, [6, 6], 2, [3, 3], ConvOptions::new_with_padding([1, 1], [(1, 0), (0, 2)], [1, 1], 1));
        // More images than fit one chunk, so chunks are summed.
        check(300, 2, [4, 4], 3, [3, 3], ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
        // Planes wider than 16 px take the NCHW path (the cases above, channels-last).
        check(2, 3, [9, 40], 4, [3, 2], ConvOptions::new([2, 1], [1, 0], [1, 1], 1));
        check(2, 2, [9, 37], 3, [3, 3], ConvOptions::new([1, 2], [2, 2], [2, 1], 1));
        check(40, 2, [20, 20], 3, [3, 3], ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
        // Same convolutions (the row im2col): a 5x3 kernel, several images per chunk.
        check(30, 3, [6, 5], 4, [5, 3], ConvOptions::new([1, 1], [2, 1], [1, 1], 1));
    }
}
