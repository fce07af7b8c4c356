//! The one recipe on burn's wgpu backend, checked against the CPU backend without a GPU:
//! Mesa's software Vulkan (lavapipe) runs it here (`make test-wgpu`). Only built with
//! `--features wgpu`.
#![cfg(feature = "wgpu")]

use std::path::Path;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::Device;
use contract::Rgb32;
use trainer::backend::Backend;
use trainer::config::Arch;
use trainer::config::{Preset, TrainConfig};
use trainer::data::{Dataset, load_image_folder, to_input};
use trainer::export::{self, ExportMeta, Head};
use trainer::model::{Net, whitening_filters};
use trainer::run::{DataSource, RunOptions};
use trainer::training::{self, InMemory};

fn fixtures() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cifar10-val")
}

/// Twenty steps of twenty images, on the tiny preset's net.
fn twenty_steps() -> TrainConfig {
    let mut config = Preset::Tiny.config();
    config.schedule.batch_size = 20;
    config.schedule.epochs = 1;
    config.schedule.time_budget_minutes = 0.0;
    config.compute.eval_batch_size = 100;
    config
}

fn split(all: &Dataset) -> (Dataset, Dataset) {
    let (train, val): (Vec<usize>, Vec<usize>) = (0..all.len()).partition(|i| i % 5 != 0);
    (all.subset(&train[..400]), all.subset(&val))
}

fn meta(all: &Dataset) -> ExportMeta {
    ExportMeta {
        labels: all.classes.clone(),
        dataset: "fixtures".into(),
        val_accuracy: 0.0,
        trained_at: "test".into(),
        config_json: "{}".into(),
        val_ece: 0.0,
    }
}

fn top1(onnx: &[u8], images: &[Rgb32]) -> Vec<usize> {
    let classifier = inference::Classifier::from_bytes(onnx).expect("tract loads the export");
    classifier
        .probabilities(images)
        .expect("tract runs the export")
        .iter()
        .map(|row| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0)
        .collect()
}

#[test]
fn same_weights_same_batches_give_the_same_losses_and_answers() {
    let all = load_image_folder(&fixtures(), false).unwrap();
    let (train, val) = split(&all);
    let config = twenty_steps();
    assert_eq!(train.len().div_ceil(config.schedule.batch_size), 20);
    let flex = Device::flex().autodiff();
    let gpu = Backend::Wgpu.device().expect("built with wgpu").autodiff();
    let whitening = (config.net.whiten && config.net.arch == Arch::Airbench).then(|| {
        let refs: Vec<&Rgb32> = train.images.iter().take(config.net.whiten_images).collect();
        whitening_filters(&to_input(&refs, None), config.net.whiten_eps)
    });
    flex.seed(7);
    let initial = Net::new(&config, all.classes.len(), whitening.clone(), &flex);
    // Saved from the CPU backend, loaded into a net built on the GPU one.
    let bytes = initial.clone().into_record().into_bytes().expect("record serialises");
    let on_gpu = Net::new(&config, all.classes.len(), whitening, &gpu)
        .load_record(ModuleRecord::from_bytes(bytes).expect("record reads back"));

    let mut runs = Vec::new();
    for (name, model, device) in [("flex", initial, &flex), ("wgpu", on_gpu, &gpu)] {
        let (model, epochs) = training::fit(&config, model, &mut InMemory::new(&train), &val, device, |_| {}).unwrap();
        let m = &epochs[0];
        eprintln!("{name}: train loss {:.5} val loss {:.5}", m.train_loss, m.val_loss);
        let model = model.valid().to_device(&Device::flex());
        let onnx = export::export(&model, &meta(&all), Head::default()).unwrap();
        runs.push((m.train_loss, m.val_loss, top1(&onnx.bytes, &all.images)));
    }
    let (cpu, gpu) = (&runs[0], &runs[1]);
    for (what, a, b) in [("train", cpu.0, gpu.0), ("validation", cpu.1, gpu.1)] {
        assert!((a - b).abs() <= 0.02 * a.abs(), "{what} loss: flex {a} vs wgpu {b}");
    }
    let agree = cpu.2.iter().zip(&gpu.2).filter(|(a, b)| a == b).count();
    eprintln!("top-1 agrees on {agree}/{} fixture images", all.len());
    assert!(
        agree * 100 >= 95 * all.len(),
        "top-1 agrees on only {agree}/{}",
        all.len()
    );
}

#[test]
fn a_short_wgpu_run_learns_and_exports_what_tract_reads() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Preset::Tiny.config();
    config.schedule.epochs = 3;
    config.compute.backend = Backend::Wgpu;
    let metrics = trainer::run::train(RunOptions {
        config,
        data: DataSource::Folder(fixtures()),
        test: None,
        out: dir.path().join("run"),
        skip_bad_images: false,
        feedback: None,
    })
    .expect("a wgpu run");
    let losses: Vec<f64> = metrics.epochs.iter().map(|e| e.train_loss).collect();
    eprintln!("wgpu train losses per epoch: {losses:?}");
    assert!(losses[2] < losses[0], "loss did not fall: {losses:?}");
    // `run::train` fails unless tract's answers match burn's; the figure is kept too.
    assert!(
        metrics.onnx_parity_max_abs_diff <= 1e-4,
        "{}",
        metrics.onnx_parity_max_abs_diff
    );
    assert!(metrics.config.compute.backend == Backend::Wgpu);
}
