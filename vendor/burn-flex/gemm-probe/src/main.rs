//! Single-thread GFLOP/s of the GEMMs that burn-flex's conv forward runs per chunk on the
//! shipped net's layers (batch 1,024: `m` output channels, `k` im2col rows, `n` output
//! positions of one chunk), through `gemm` 0.19 as flex calls it and through
//! tract-linalg's kernels, both packing their operands on every call as flex does. Set
//! beside `train-bench --profile`, it says how much of a conv's time is the GEMM itself.
//!
//!     cargo run --release --manifest-path vendor/burn-flex/gemm-probe/Cargo.toml

use std::time::Instant;

use tract_data::internal::*;
use tract_linalg::mmm::{AsInputValue, FusedSpec};

/// The best of five timings of `reps` calls, in seconds per call, after a warm-up.
fn seconds_per_call(mut f: impl FnMut(), reps: usize) -> f64 {
    (0..3).for_each(|_| f());
    (0..5)
        .map(|_| {
            let t = Instant::now();
            (0..reps).for_each(|_| f());
            t.elapsed().as_secs_f64() / reps as f64
        })
        .fold(f64::MAX, f64::min)
}

fn values(len: usize, step: usize, modulus: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * step) % modulus) as f32 / modulus as f32 - 0.5)
        .collect()
}

fn main() -> TractResult<()> {
    // (layer, m, k, n): flex's chunks hold whole images up to 512 positions.
    let shapes = [
        ("24 @ 31 px -> 64", 64, 24 * 9, 961),
        ("64 @ 15 px -> 64", 64, 64 * 9, 2 * 225),
        ("64 @ 15 px -> 128", 128, 64 * 9, 2 * 225),
        ("128 @ 7 px -> 128", 128, 128 * 9, 10 * 49),
        ("128 @ 3 px -> 128", 128, 128 * 9, 56 * 9),
    ];
    println!("| layer (m x k x n) | gemm 0.19 GFLOP/s | tract-linalg GFLOP/s (kernel) |");
    println!("| --- | ---: | ---: |");
    for (layer, m, k, n) in shapes {
        let (a, b) = (values(m * k, 7919, 97), values(k * n, 104_729, 89));
        let flops = 2.0 * (m * k * n) as f64;
        let reps = (2e9 / flops).ceil() as usize;

        // Row-major dst [m, n] = lhs [m, k] * rhs [k, n], as flex's `gemm_rm` passes them.
        let mut c = vec![0f32; m * n];
        let with_gemm = seconds_per_call(
            || unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    c.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    a.as_ptr(),
                    1,
                    k as isize,
                    b.as_ptr(),
                    1,
                    n as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            },
            reps,
        );

        let (ta, tb) = (Tensor::from_shape(&[m, k], &a)?, Tensor::from_shape(&[k, n], &b)?);
        let mmm = tract_linalg::MmmDispatch::native()
            .preferred_kernel(DatumType::F32, Some(m), Some(k), Some(n))
            .ok_or_else(|| format_err!("no f32 kernel"))?;
        let mut ct = Tensor::zero::<f32>(&[m, n])?;
        let mut scratch = unsafe { mmm.allocate_scratch_space() };
        let with_tract = seconds_per_call(
            || {
                let (pack_a, pack_b) = &mmm.packings()[0];
                let (pa, pb) = (
                    pack_a.prepare_one(&ta, 1, 0).expect("packs A"),
                    pack_b.prepare_one(&tb, 0, 1).expect("packs B"),
                );
                // SAFETY: `ct` is an f32 [m, n] tensor, the shape and type the view names.
                let store = unsafe { mmm.c_view(Some(0), Some(1)).wrap(&ct.view_mut()) };
                let specs = [
                    FusedSpec::AddMatMul {
                        a: AsInputValue::Borrowed(&*pa),
                        b: AsInputValue::Borrowed(&*pb),
                        packing: 0,
                    },
                    FusedSpec::Store(store),
                ];
                unsafe { mmm.run_with_scratch_space(m, n, scratch.as_mut(), &specs) }.expect("runs");
            },
            reps,
        );

        // Both must compute the same product, or the timings compare nothing.
        let ours = ct.to_plain_array_view::<f32>()?;
        let diff = c
            .iter()
            .zip(ours.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        ensure!(diff < 1e-3, "{layer}: the two products differ by {diff}");
        println!(
            "| {layer} ({m} x {k} x {n}) | {:.1} | {:.1} ({}) |",
            flops / with_gemm / 1e9,
            flops / with_tract / 1e9,
            mmm.name()
        );
    }
    Ok(())
}
