//! Times flex's conv2d (forward, both gradients), 2x2 max pools and GELU, forward and
//! backward, on the shipped net's layer shapes at batch 1,024, outside the training loop,
//! so a kernel change can be judged in seconds: `cargo run --release -p trainer --example
//! conv_layers [reps]`.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use burn::nn::pool::MaxPool2dConfig;
use burn::tensor::activation::gelu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor, TensorData};

fn data(len: usize, seed: usize) -> Vec<f32> {
    (0..len)
        .map(|i| (((i * 7919 + seed) % 1013) as f32 - 506.0) / 506.0)
        .collect()
}

/// Values in no pattern (a max pool's speed can depend on which of four wins).
fn noise(len: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-0.5..0.5)).collect()
}

/// The fastest of `reps` forward passes and of the backward passes of `sum(y * dy)`.
fn forward_backward(reps: usize, forward: impl Fn() -> Tensor<4>, dy: &Tensor<4>) -> (f64, f64) {
    let (mut fwd, mut bwd) = (f64::MAX, f64::MAX);
    for _ in 0..reps {
        let t = Instant::now();
        let y = forward();
        fwd = fwd.min(t.elapsed().as_secs_f64());
        let loss = (y * dy.clone()).sum();
        let t = Instant::now();
        let g = loss.backward();
        bwd = bwd.min(t.elapsed().as_secs_f64());
        drop(g);
    }
    (fwd, bwd)
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
    println!();
    println!("| max pool 2x2 | forward ms | backward ms | GB/s fwd |");
    println!("|---|---|---|---|");
    // As the trainer builds them (trainer::model).
    let pool = MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init();
    for (c, hw) in [(64usize, 31usize), (128, 15), (128, 7)] {
        let ad = Device::flex().autodiff();
        let x = Tensor::<4>::from_data(TensorData::new(noise(n * c * hw * hw, 4), [n, c, hw, hw]), &ad).require_grad();
        let side = hw / 2;
        let dy = Tensor::<4>::from_data(TensorData::new(data(n * c * side * side, 5), [n, c, side, side]), &ad);
        let (fwd, bwd) = forward_backward(reps, || pool.forward(x.clone()), &dy);
        // Read the input once, write values and i32 indices once.
        let bytes = 4.0 * (n * c * (hw * hw + 2 * side * side)) as f64;
        println!(
            "| {c} @ {hw} px | {:.1} | {:.1} | {:.1} |",
            fwd * 1e3,
            bwd * 1e3,
            bytes / fwd / 1e9
        );
    }
    println!();
    println!("| GELU | forward ms | backward ms | M elements/s fwd |");
    println!("|---|---|---|---|");
    for (c, hw) in [(64usize, 15usize), (24, 31)] {
        let ad = Device::flex().autodiff();
        let len = n * c * hw * hw;
        let x = Tensor::<4>::from_data(TensorData::new(noise(len, 6), [n, c, hw, hw]), &ad).require_grad();
        let dy = Tensor::<4>::from_data(TensorData::new(noise(len, 7), [n, c, hw, hw]), &ad);
        let (fwd, bwd) = forward_backward(reps, || gelu(x.clone()), &dy);
        println!(
            "| {c} @ {hw} px | {:.1} | {:.1} | {:.0} |",
            fwd * 1e3,
            bwd * 1e3,
            len as f64 / fwd / 1e6
        );
    }
}
