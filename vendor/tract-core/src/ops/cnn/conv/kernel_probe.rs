//! Which f32 matmul kernel an im2col convolution runs, by timing the candidates on this core.
//!
//! `MmmDispatch::pick` ranks kernels with a linear cost model fitted on one machine per
//! vendor and instruction set (for AMD AVX-512: a Zen 5 part, whose 512-bit FMAs are full
//! width). On a Zen 4 core, where they are double-pumped, that model sends the convolutions of
//! a small CIFAR net to `avx512_mmm_f32_16x12`, which runs them at 78-81 GFLOP/s, where
//! `avx512_mmm_f32_32x5`, `32x6` or `64x3` reach 93-105 on the same shapes (likely its
//! twelve broadcasts per k step; not profiled further). Rather than a table per microarchitecture, each candidate
//! kernel is timed once per process on a small full-tile product (4-6 ms for the 19
//! candidates on a Zen 4 core), as `fma_width` measures the FMA ports rather than naming CPUs, and a shape's
//! cost is its padded work over the measured rate. The cost model's own pick stands unless
//! the measurement says another kernel is clearly (5 %) faster, and kernels measured within
//! 10 % of the fastest are told apart by the shape alone, so noise cannot flip choices
//! between kernels that are equally good.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use tract_linalg::mmm::{AsInputValue, FusedSpec, MatMatMul, Suitable};
use tract_linalg::pack::PackedFormat;

use crate::internal::*;

crate::declare_knob!(
    scopable TRACT_CONV_KERNEL_PROBE,
    bool,
    true,
    "Time the f32 matmul kernels once per process and let the measurement override the cost model's kernel for im2col convolutions when it is clearly faster."
);

/// How much faster (by the measurement) another kernel must be to replace the model's pick.
const MARGIN: f64 = 0.95;
/// Predicted times within this factor of the fastest count as a tie.
const TIE: f64 = 1.10;

/// Multiply-adds per second of `mmm` on full tiles, memoised by kernel name.
fn rate(mmm: &dyn MatMatMul, packing: usize) -> Option<f64> {
    static RATES: Mutex<BTreeMap<String, Option<f64>>> = Mutex::new(BTreeMap::new());
    let key = format!("{}/{packing}", mmm.name());
    if let Some(r) = RATES.lock().ok()?.get(&key) {
        return *r;
    }
    // Measured outside the lock; two threads racing on one kernel both time it, harmlessly.
    let r = measure(mmm, packing).ok();
    RATES.lock().ok()?.insert(key, r);
    r
}

/// Best of a few runs of a product of about 64 x 48 x 256, rounded to whole tiles.
fn measure(mmm: &dyn MatMatMul, packing: usize) -> TractResult<f64> {
    let (mr, nr) = (mmm.mr(), mmm.nr());
    let (m, n, k) = (64usize.div_ceil(mr) * mr, 48usize.div_ceil(nr) * nr, 256);
    let (pack_a, pack_b) = &mmm.packings()[packing];
    // Values of order one: subnormals would time the FPU's slow path instead.
    let a = tensor1(&(0..m * k).map(|i| 0.5 + (i % 7) as f32 * 0.01).collect::<Vec<f32>>())
        .into_shape(&[m, k])?;
    let b = tensor1(&(0..k * n).map(|i| 0.5 - (i % 5) as f32 * 0.01).collect::<Vec<f32>>())
        .into_shape(&[k, n])?;
    let pa = pack_a.prepare_one(&a, 1, 0)?;
    let pb = pack_b.prepare_one(&b, 0, 1)?;
    let mut c = Tensor::zero::<f32>(&[m, n])?;
    let mut best = f64::INFINITY;
    for _ in 0..6 {
        let start = Instant::now();
        unsafe {
            let store = mmm.c_view(Some(0), Some(1)).wrap(&c.view_mut());
            let ops = [
                FusedSpec::AddMatMul {
                    a: AsInputValue::Borrowed(&*pa),
                    b: AsInputValue::Borrowed(&*pb),
                    packing,
                },
                FusedSpec::Store(store),
            ];
            mmm.run(m, n, &ops)?;
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    Ok((m * n * k) as f64 / best.max(1e-9))
}

/// Whether both operands of `mmm`'s `packing` are plain f32 panels, the only ones `Im2col`
/// writes and the only ones that keep the product f32: where AMX is exposed, the dispatch also
/// offers kernels that pack both sides to bf16, and they time fastest.
fn f32_panels(mmm: &dyn MatMatMul, packing: usize) -> bool {
    let f32_panel = |p: &dyn tract_linalg::mmm::MMMInputFormat| {
        p.downcast_ref::<PackedFormat>().is_some_and(|p| p.dt == f32::datum_type())
    };
    mmm.packings().get(packing).is_some_and(|(a, b)| f32_panel(&**a) && f32_panel(&**b))
}

/// Multiply-adds of an `m x k x n` product on `mmm`'s whole tiles.
fn padded_work(mmm: &dyn MatMatMul, m: usize, k: usize, n: usize) -> usize {
    m.div_ceil(mmm.mr()) * mmm.mr() * n.div_ceil(mmm.nr()) * mmm.nr() * k
}

/// Predicted seconds for an `m x k x n` product: padded work over the measured rate.
fn predicted(mmm: &dyn MatMatMul, packing: usize, m: usize, k: usize, n: usize) -> Option<f64> {
    Some(padded_work(mmm, m, k, n) as f64 / rate(mmm, packing)?)
}

/// The probe's kernel of `suitable` for this shape (the shape decides among near-ties) when
/// it beats `picked` by the margin.
/// Only native, extractor-free kernels are timed; matrix-vector ones only for `n == 1`.
pub(super) fn faster_than(
    picked: &(Box<dyn MatMatMul>, usize),
    suitable: Vec<Suitable>,
    m: usize,
    k: usize,
    n: usize,
) -> Option<(Box<dyn MatMatMul>, usize)> {
    if !TRACT_CONV_KERNEL_PROBE.get() {
        return None;
    }
    let picked_t = predicted(&*picked.0, picked.1, m, k, n)?;
    let timed: Vec<((Box<dyn MatMatMul>, usize), f64)> = suitable
        .into_iter()
        .filter(|(mmm, packing, extractor)| {
            extractor.is_none()
                && mmm.arch().is_some()
                && (mmm.nr() > 1 || n == 1)
                && f32_panels(&**mmm, *packing)
        })
        .filter_map(|(mmm, packing, _)| {
            let t = predicted(&*mmm, packing, m, k, n)?;
            Some(((mmm, packing), t))
        })
        .collect();
    let fastest = timed.iter().map(|(_, t)| *t).min_by(f64::total_cmp)?;
    // Kernels this close are equally good as far as one process can measure: the best of
    // them here are within 8 % of each other on the net's shapes, and which one measured
    // fastest changed from process to process (64x3, 32x6, fma 16x6). Among them the
    // shape decides, the same way in every process: least padded work, then the larger
    // tile, then the dispatch's order (`min_by_key` keeps the first of equal keys).
    let (best, best_t) = timed
        .into_iter()
        .filter(|(_, t)| *t <= fastest * TIE)
        .min_by_key(|((mmm, _), _)| {
            (padded_work(&**mmm, m, k, n), std::cmp::Reverse(mmm.mr() * mmm.nr()))
        })?;
    (best_t < picked_t * MARGIN).then_some(best)
}
