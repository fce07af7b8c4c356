//! Times flex's conv2d forward and backward (both gradients) on the shipped net's layer
//! shapes at batch 1,024, outside the training loop, so a kernel change can be judged
//! in seconds: `cargo run --release -p trainer --example conv_layers [reps]`.

use std::time::Instant;

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed) % 1013) as f32 - 506.0) / 506.0)
        .collect()
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    assert!(
        trainer::memory::keep_freed_memory(),
        "mimalloc is not the global allocator"
    );
    trainer::backend::Backend::Flex.set_threads(2);
    let reps: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(3);
    let n = 1024;
    println!("| layer | forward ms | backward ms | GFLOP/s fwd | GFLOP/s bwd |");
    println!("|---|---|---|---|---|");
    for (c, hw, co) in [
        (24usize, 31usize, 64usize),
        (64, 15, 64),
        (64, 15, 128),
        (128, 7, 128),
        (128, 3, 128),
    ] {
        let opts = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let flop = 2.0 * (n * hw * hw * co * c * 9) as f64;
        let dev = Device::flex();
        let x = Tensor::<4>::from_data(TensorData::new(data(n * c * hw * hw, 1), [n, c, hw, hw]), &dev);
        let w = Tensor::<4>::from_data(TensorData::new(data(co * c * 9, 2), [co, c, 3, 3]), &dev);
        let mut fwd = f64::MAX;
        for _ in 0..reps {
            let t = Instant::now();
            let y = conv2d(x.clone(), w.clone(), None, opts.clone());
            fwd = fwd.min(t.elapsed().as_secs_f64());
            drop(y);
        }
        let ad = Device::flex().autodiff();
        let xa = Tensor::<4>::from_data(TensorData::new(data(n * c * hw * hw, 1), [n, c, hw, hw]), &ad).require_grad();
        let wa = Tensor::<4>::from_data(TensorData::new(data(co * c * 9, 2), [co, c, 3, 3]), &ad).require_grad();
        let dy = Tensor::<4>::from_data(TensorData::new(data(n * co * hw * hw, 3), [n, co, hw, hw]), &ad);
        let mut bwd = f64::MAX;
        for _ in 0..reps {
            let y = conv2d(xa.clone(), wa.clone(), None, opts.clone());
            let loss = (y * dy.clone()).sum();
            let t = Instant::now();
            let g = loss.backward();
            bwd = bwd.min(t.elapsed().as_secs_f64());
            drop(g);
        }
        println!(
            "| {c} @ {hw} px -> {co} | {:.1} | {:.1} | {:.0} | {:.0} |",
            fwd * 1e3,
            bwd * 1e3,
            flop / fwd / 1e9,
            2.0 * flop / bwd / 1e9
        );
    }
}
