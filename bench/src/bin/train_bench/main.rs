//! `train-bench`: training images/s of each architecture and backend, optionally
//! against PyTorch on the same images and threads, or time to accuracy of both.
//!
//!     cargo run --release -p bench --bin train-bench -- --data train.tar.gz [--torch-python PY]

mod profile;
mod torch;

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use trainer::backend::Backend;
use trainer::cli::DataArgs;
use trainer::config::{ConfigOverrides, Preset, TrainConfig};
use trainer::training::InMemory;

/// Training images/s of each net and backend (and PyTorch's, side by side).
#[derive(Parser)]
#[command(version)]
struct Args {
    #[command(flatten)]
    data: DataArgs,
    /// Training images per measurement (one epoch over them, after an untimed warm-up batch).
    #[arg(long, default_value_t = 2048)]
    images: usize,
    /// Batch size for all measurements.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Worker threads for every backend and for PyTorch.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Extra airbench widths to measure, e.g. `16,32,64,128`.
    #[arg(long)]
    widths: Vec<trainer::config::Widths>,
    /// burn backends to measure, comma-separated (`libtorch` needs the `libtorch` feature).
    #[arg(long, value_delimiter = ',', default_value = "flex")]
    backends: Vec<Backend>,
    /// A Python with PyTorch (e.g. `.venv-torch/bin/python`): also train the same nets in
    /// PyTorch CPU on the same images with the same threads, and print the ratio.
    #[arg(long)]
    torch_python: Option<PathBuf>,
    /// Also break the flex measurement of the default net down by phase, kernel and
    /// input shape (layer), and print it as a table.
    #[arg(long)]
    profile: bool,
    /// Instead of images/s: train the shipped recipe for this many epochs on the full
    /// split with flex, then the same recipe in PyTorch (`scripts/recipe_probe.py`, needs
    /// `--torch-python` and a `.tar.gz` `--data`) on the same threads, one after the
    /// other, and print minutes per epoch and validation accuracy for both.
    #[arg(long)]
    time_to_accuracy: Option<usize>,
    /// Measure this many rounds, each every burn backend then PyTorch, and report each
    /// cell's median: the machines drift by 10-30 % within minutes.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

/// The trainer's allocator, so flex's figures are the ones `trainer train` gets.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The shipped net's row, the one `--profile` breaks down.
const DEFAULT_NET: &str = "airbench (default)";
/// The shipped net once its whitening bias is frozen (most of a training run).
const STEADY_NET: &str = "airbench (default, whitening bias frozen)";

fn main() -> Result<()> {
    anyhow::ensure!(
        trainer::memory::keep_freed_memory(),
        "mimalloc is not the global allocator"
    );
    let args = Args::parse();
    if let Some(epochs) = args.time_to_accuracy {
        return time_to_accuracy(&args, epochs);
    }
    for b in &args.backends {
        b.device()?; // refuse a backend this binary lacks before loading any data
        b.set_threads(args.threads);
    }
    let full = args.data.source(false).load(false)?;
    let n = args.images.min(full.len());
    let set = full.subset(&(0..n).collect::<Vec<_>>());
    let warm = full.subset(&(0..args.batch_size.min(n)).collect::<Vec<_>>());
    let probe = full.subset(&[0]);
    let mut nets: Vec<(String, TrainConfig)> = vec![
        ("seed".into(), Preset::Seed.config()),
        (DEFAULT_NET.into(), Preset::Default.config()),
        (
            "airbench (default, ReLU)".into(),
            ConfigOverrides {
                activation: Some(trainer::config::Activation::Relu),
                ..Default::default()
            }
            .over(Preset::Default.config()),
        ),
        (STEADY_NET.into(), {
            // The recipe's step from epoch 4 on: with the whitening bias frozen nothing
            // needs the first 3x3 conv's input gradient, and neither engine computes it.
            let mut c = Preset::Default.config();
            c.net.whiten_bias_epochs = 0;
            c
        }),
    ];
    for w in args.widths {
        nets.push((
            format!(
                "airbench {}",
                w.iter().map(ToString::to_string).collect::<Vec<_>>().join("/")
            ),
            ConfigOverrides {
                whiten: Some(w[0] == trainer::model::WHITEN_WIDTH),
                widths: Some(w),
                ..Default::default()
            }
            .over(Preset::Default.config()),
        ));
    }
    for (_, c) in &mut nets {
        c.schedule.epochs = 1;
        c.schedule.batch_size = args.batch_size;
        // Training-step throughput only: the lookahead's end-of-run batch-norm pass is a
        // one-off that a one-epoch measurement would count as training.
        c.optimiser.lookahead = false;
    }
    // rounds[round][net][backend]
    let mut rounds = Vec::new();
    let mut torch_rounds = Vec::new();
    let mut profile = None;
    for round in 0..args.rounds.max(1) {
        let mut rows = vec![Vec::new(); nets.len()];
        for &backend in &args.backends {
            for (row, (name, config)) in rows.iter_mut().zip(&nets) {
                let device = backend.device()?.autodiff();
                device.seed(config.data.seed);
                // Timing only: any filters of the right shape cost the same as fitted ones.
                let whitening = config
                    .net
                    .whiten
                    .then(|| vec![0.05f32; trainer::model::WHITEN_WIDTH * 12]);
                let model = trainer::model::Net::new(config, full.classes.len(), whitening, &device);
                let (model, _) =
                    trainer::training::fit(config, model, &mut InMemory::new(&warm), &probe, &device, |_| {})?;
                trainer::memory::reset_peak_rss();
                let profiled = args.profile && round == 0 && backend == Backend::Flex && name == DEFAULT_NET;
                burn_flex::profile::enable(profiled);
                let (_, h) = trainer::training::fit(config, model, &mut InMemory::new(&set), &probe, &device, |_| {})?;
                burn_flex::profile::enable(false);
                if profiled {
                    profile = Some((name.clone(), burn_flex::profile::take()));
                }
                let peak = trainer::memory::peak_rss_mib().unwrap_or(f64::NAN);
                eprintln!(
                    "round {}: burn {backend:?} {name}: {:.1} img/s, peak RSS {peak:.0} MiB",
                    round + 1,
                    h[0].images_per_second
                );
                row.push((h[0].images_per_second, peak));
            }
        }
        rounds.push(rows);
        if let Some(py) = &args.torch_python {
            let runs = torch::pytorch_images_per_second(py, &nets, &set, args.batch_size, args.threads)?;
            for ((name, _), t) in nets.iter().zip(&runs) {
                eprintln!(
                    "round {}: PyTorch {name}: {:.1} img/s ({})",
                    round + 1,
                    t.images_per_second,
                    t.layout
                );
            }
            torch_rounds.push(runs);
        }
    }
    // The median round of each cell's images/s (the lower middle for an even count);
    // peak RSS from the first round, since the allocator keeps freed memory mapped and
    // later rounds would report the process's peak so far.
    let median_of = |v: Vec<(f64, f64)>| {
        let first_peak = v[0].1;
        let mut ips: Vec<f64> = v.into_iter().map(|(ips, _)| ips).collect();
        ips.sort_by(f64::total_cmp);
        (ips[(ips.len() - 1) / 2], first_peak)
    };
    let rows: Vec<Vec<(f64, f64)>> = (0..nets.len())
        .map(|i| {
            (0..args.backends.len())
                .map(|b| median_of(rounds.iter().map(|r| r[i][b]).collect()))
                .collect()
        })
        .collect();
    let torch: Option<Vec<torch::TorchRun>> = (!torch_rounds.is_empty()).then(|| {
        (0..nets.len())
            .map(|i| {
                let mut runs: Vec<&torch::TorchRun> = torch_rounds.iter().map(|r| &r[i]).collect();
                runs.sort_by(|a, b| a.images_per_second.total_cmp(&b.images_per_second));
                let m = runs[(runs.len() - 1) / 2];
                torch::TorchRun {
                    images_per_second: m.images_per_second,
                    peak_rss_mib: m.peak_rss_mib,
                    layout: m.layout.clone(),
                }
            })
            .collect()
    });
    if args.rounds > 1 {
        println!(
            "median of {} rounds, each every burn backend then PyTorch:",
            args.rounds
        );
    }
    let mut head = String::from("| net | batch | images | threads |");
    for b in &args.backends {
        head += &format!(" burn {b:?} img/s | {b:?} peak RSS MiB |");
    }
    if torch.is_some() {
        head += " PyTorch img/s (faster layout) | PyTorch peak RSS MiB |";
        for b in &args.backends {
            head += &format!(" {b:?} / PyTorch |");
        }
    }
    println!("{head}");
    println!("{}", "|---".repeat(head.matches(" |").count()) + "|");
    for (i, (name, _)) in nets.iter().enumerate() {
        let mut line = format!("| {name} | {} | {n} | {} |", args.batch_size, args.threads);
        for (v, peak) in &rows[i] {
            line += &format!(" {v:.1} | {peak:.0} |");
        }
        if let Some(t) = &torch {
            let t = &t[i];
            line += &format!(" {:.1} ({}) | {:.0} |", t.images_per_second, t.layout, t.peak_rss_mib);
            for (v, _) in &rows[i] {
                line += &format!(" {:.2}x |", v / t.images_per_second);
            }
        }
        println!("{line}");
    }
    if let Some((name, entries)) = profile {
        println!("\nflex profile, {name}, batch {}:", args.batch_size);
        print!("{}", profile::profile_table(&entries, n.div_ceil(args.batch_size)));
    }
    Ok(())
}

/// Both engines train the same recipe for `epochs` on a 45,000 / 5,000 split of the same
/// JPEGs, in one command, so the two rows share a machine state.
fn time_to_accuracy(args: &Args, epochs: usize) -> Result<()> {
    let python = args
        .torch_python
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--time-to-accuracy needs --torch-python"))?;
    let tar = args
        .data
        .data
        .as_ref()
        .filter(|p| p.to_string_lossy().ends_with(".tar.gz"))
        .ok_or_else(|| anyhow::anyhow!("--time-to-accuracy needs --data pointing at a .tar.gz"))?;
    let dir = tempfile::tempdir()?;
    let config = ConfigOverrides {
        epochs: Some(epochs),
        threads: Some(args.threads),
        ..Default::default()
    }
    .over(Preset::Default.config());
    Backend::Flex.set_threads(args.threads);
    let flex = trainer::run::train(trainer::run::RunOptions {
        config,
        data: args.data.source(false),
        test: None,
        out: dir.path().join("flex"),
        skip_bad_images: false,
        feedback: None,
    })?;
    let torch = torch::pytorch_time_to_accuracy(python, tar, epochs, args.threads)?;
    println!("| engine | epochs | threads | training s | min per epoch | val accuracy | with mirror TTA |");
    println!("|---|---|---|---|---|---|---|");
    let row = |name: &str, seconds: f64, plain: f64, tta: f64| {
        println!(
            "| {name} | {epochs} | {} | {seconds:.1} | {:.2} | {:.2} % | {:.2} % |",
            args.threads,
            seconds / 60.0 / epochs as f64,
            100.0 * plain,
            100.0 * tta
        );
    };
    // Training seconds so far and validation after each epoch, without the validation
    // passes (both sides validate between epochs off the clock).
    let mut flex_points = Vec::new();
    let mut elapsed = 0.0;
    for e in &flex.epochs {
        elapsed += e.seconds;
        flex_points.push((elapsed, e.val_accuracy));
    }
    row(
        "burn flex (trainer)",
        elapsed,
        flex.validation_accuracy_without_tta,
        flex.validation.accuracy,
    );
    row("PyTorch CPU (recipe_probe.py)", torch.seconds, torch.tta0, torch.tta1);

    // Minutes of training until each engine's validation after an epoch first reaches a
    // mark (no TTA, as the trainer validates between epochs), else whether the run's end
    // reaches it with mirror TTA.
    let torch_points: Vec<(f64, f64)> = torch.epochs.iter().map(|e| (e.seconds, e.tta0)).collect();
    println!();
    println!("| engine | minutes to 85 % | minutes to 90 % |");
    println!("|---|---|---|");
    let marks = |name: &str, points: &[(f64, f64)], total: f64, tta: f64| {
        let cells: Vec<String> = [0.85, 0.90]
            .iter()
            .map(|&mark| crossing(points, total, tta, mark))
            .collect();
        println!("| {name} | {} | {} |", cells[0], cells[1]);
    };
    marks("burn flex (trainer)", &flex_points, elapsed, flex.validation.accuracy);
    marks(
        "PyTorch CPU (recipe_probe.py)",
        &torch_points,
        torch.seconds,
        torch.tta1,
    );
    Ok(())
}

/// When a run first reached `mark`: the first epoch whose validation (no TTA) did, else
/// the run's end if its mirror-TTA accuracy did.
fn crossing(points: &[(f64, f64)], total: f64, tta: f64, mark: f64) -> String {
    match points.iter().position(|&(_, acc)| acc >= mark) {
        Some(i) => format!("{:.1} (epoch {})", points[i].0 / 60.0, i + 1),
        None if tta >= mark => format!("{:.1} (end, with mirror TTA)", total / 60.0),
        None => "not reached".into(),
    }
}
