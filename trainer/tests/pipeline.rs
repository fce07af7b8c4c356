//! The trainer's whole path on the committed fixture images in well under a minute: tiny preset ->
//! train -> export -> tract check -> publish to a folder; and the official binary
//! format on small files generated here.

use std::path::Path;

#[path = "pipeline/sharded_data.rs"]
mod sharded_data;

use contract::{IMAGE_BYTES, ModelPointer, meta};
use trainer::config::Preset;
use trainer::data::cifar_binary;
use trainer::run::{DataSource, RunOptions};

/// The committed fixture set: 500 validation images, 50 per class (tests/fixtures/README.md).
fn fixture_images() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/cifar10-val")
}

#[test]
fn tiny_preset_trains_exports_checks_and_publishes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let metrics = trainer::run::train(RunOptions {
        config: Preset::Tiny.config(),
        data: DataSource::Folder(fixture_images()),
        test: None,
        out: out.clone(),
        skip_bad_images: false,
        feedback: None,
    })
    .expect("tiny run");
    assert_eq!(metrics.epochs.len(), 1);
    assert_eq!(metrics.validation.images, 100);
    assert!(metrics.onnx_parity_max_abs_diff <= 1e-4);
    for f in [
        "model.onnx",
        "metrics.json",
        "golden.json",
        "learning-curves.png",
        "confusion-matrix.png",
        "reliability.png",
        "uncertainty.png",
    ] {
        assert!(out.join(f).is_file(), "{f} written");
    }
    // The tiny preset exercises the whole recipe: whitening, mirror TTA in the graph and
    // a fitted temperature, all within the parity check above. The temperature is fitted
    // on one half of the validation split and its figures come from the other (where a
    // one-epoch net's NLL may as well rise as fall).
    let cal = &metrics.calibration;
    assert!(cal.temperature > 0.05 && cal.temperature < 20.0, "{cal:?}");
    assert!(cal.nll_after.is_finite() && cal.ece_after.is_finite(), "{cal:?}");
    let u = metrics.uncertainty.as_ref().expect("an uncertainty report");
    assert_eq!(u.calibration_images + u.reporting_images, 100);
    assert!((u.temperature - cal.temperature).abs() < 1e-4);
    assert_eq!(u.ood.kinds.len(), trainer::ood::KINDS.len());
    let png = std::fs::read(out.join("learning-curves.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");

    // The file follows the contract, read by tract and by the protobuf itself.
    let bytes = std::fs::read(out.join("model.onnx")).unwrap();
    let proto = inference::parse_proto(&bytes).unwrap();
    let props = inference::metadata_of(&proto);
    for key in meta::REQUIRED {
        assert!(props.contains_key(key), "metadata {key}");
    }
    assert_eq!(props[meta::MODEL_VERSION], metrics.model_version);
    assert_eq!(props[meta::TTA], "mirror");
    // The weights are stored as f16 (`half_weights`), each behind a cast, and the parity
    // check above held on that file: burn's net was rounded the same way.
    let graph = proto.graph.as_ref().unwrap();
    let halves = graph
        .initializer
        .iter()
        .filter(|i| i.data_type == tract_onnx::pb::tensor_proto::DataType::Float16 as i32)
        .count();
    let casts = graph.node.iter().filter(|n| n.op_type == "Cast").count();
    assert!(
        halves >= 4 && casts >= halves,
        "{halves} f16 initializers, {casts} casts"
    );
    let t: f64 = props[meta::TEMPERATURE].parse().unwrap();
    assert!((t - cal.temperature).abs() < 1e-4, "{t} vs {}", cal.temperature);
    let labels: Vec<String> = serde_json::from_str(&props[meta::LABELS]).unwrap();
    assert_eq!(labels, contract::CIFAR10_LABELS);
    let config: serde_json::Value = serde_json::from_str(&props[meta::CONFIG]).unwrap();
    assert_eq!(config["epochs"], 1);
    let graph = proto.graph.as_ref().unwrap();
    assert_eq!(graph.input[0].name, "image");
    let outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(outputs, ["probabilities", "ood_score"]);
    for key in [meta::COVERAGE, meta::CONFORMAL_THRESHOLD, meta::OOD_THRESHOLD] {
        assert!(props.contains_key(key), "metadata {key}");
    }
    let classifier = inference::Classifier::from_bytes(&bytes).unwrap();
    // Symbolic batch: 1, 3 and 7 images all run.
    for n in [1, 3, 7] {
        let rows = classifier.probabilities(&vec![[90u8; IMAGE_BYTES]; n]).unwrap();
        assert_eq!(rows.len(), n);
        for r in rows {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
    // The golden pair matches tract.
    let golden: trainer::run::Golden =
        serde_json::from_slice(&std::fs::read(out.join("golden.json")).unwrap()).unwrap();
    let rows = classifier.probabilities(&golden.images()).unwrap();
    for (a, b) in rows.iter().zip(&golden.probabilities) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-4);
        }
    }

    // Publish to a folder: content-addressed model, pointer last and consistent.
    let dest = dir.path().join("bucket");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let published = rt
        .block_on(registry::publish(&out, &format!("file://{}", dest.display())))
        .unwrap();
    let pointer: ModelPointer =
        serde_json::from_slice(&std::fs::read(dest.join("models/latest.json")).unwrap()).unwrap();
    assert_eq!(pointer, published.pointer);
    assert_eq!(pointer.sha256, contract::sha256_hex(&bytes));
    assert_eq!(pointer.key, format!("models/{}.onnx", pointer.sha256));
    assert_eq!(std::fs::read(dest.join(&pointer.key)).unwrap(), bytes);
    assert!(dest.join(format!("models/{}/metrics.json", pointer.sha256)).is_file());
    assert_eq!(pointer.version, metrics.model_version);
}

#[test]
fn muon_and_shift_tta_train_and_export_within_parity() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut config = Preset::Tiny.config();
    config.optimiser.optimizer = trainer::config::OptimizerKind::Muon;
    config.export.tta_shift = true;
    let metrics = trainer::run::train(RunOptions {
        config,
        data: DataSource::Folder(fixture_images()),
        test: None,
        out: out.clone(),
        skip_bad_images: false,
        feedback: None,
    })
    .expect("tiny run with Muon and shift TTA");
    // Six views in the graph (plain, mirror, two shifts of each), checked by tract
    // against burn's forward pass over the same views.
    assert!(metrics.onnx_parity_max_abs_diff <= 1e-4);
    assert!(metrics.epochs[0].train_loss.is_finite());
    let bytes = std::fs::read(out.join("model.onnx")).unwrap();
    let props = inference::metadata_of(&inference::parse_proto(&bytes).unwrap());
    assert_eq!(props[meta::TTA], "mirror+shift");
    let config: serde_json::Value = serde_json::from_str(&props[meta::CONFIG]).unwrap();
    assert_eq!(config["optimizer"], "muon");
}

/// Records in the official layout: label byte, then red, green and blue planes.
fn write_batch(path: &Path, records: &[(u8, [u8; 3])]) {
    let mut bytes = Vec::new();
    for (label, rgb) in records {
        bytes.push(*label);
        for c in rgb {
            bytes.extend(std::iter::repeat_n(*c, 1024));
        }
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn official_binary_format_loads_from_generated_files() {
    let dir = tempfile::tempdir().unwrap();
    for (i, name) in cifar_binary::TRAIN_FILES.iter().enumerate() {
        write_batch(&dir.path().join(name), &[(i as u8, [10, 20, 30]), (9, [1, 2, 3])]);
    }
    write_batch(&dir.path().join(cifar_binary::TEST_FILE), &[(3, [200, 100, 50])]);
    let train = cifar_binary::load(dir.path(), cifar_binary::Split::Train).unwrap();
    assert_eq!(train.len(), 10);
    assert_eq!(train.labels[..4], [0, 9, 1, 9]);
    // Planar -> HWC: every pixel is (10, 20, 30).
    assert_eq!(&train.images[0][..6], &[10, 20, 30, 10, 20, 30]);
    let test = cifar_binary::load(dir.path(), cifar_binary::Split::Test).unwrap();
    assert_eq!((test.len(), test.labels[0], test.images[0][0]), (1, 3, 200));
    assert_eq!(test.classes[3], "cat");
    // Already-extracted files are used without any download.
    let cache = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cache.path().join(cifar_binary::DIR)).unwrap();
    for f in cifar_binary::TRAIN_FILES.iter().chain([&cifar_binary::TEST_FILE]) {
        std::fs::copy(dir.path().join(f), cache.path().join(cifar_binary::DIR).join(f)).unwrap();
    }
    assert_eq!(
        cifar_binary::fetch(cache.path()).unwrap(),
        cache.path().join(cifar_binary::DIR)
    );

    // Broken files get clear errors, not panics.
    std::fs::write(dir.path().join(cifar_binary::TEST_FILE), [1u8; 100]).unwrap();
    let err = cifar_binary::load(dir.path(), cifar_binary::Split::Test)
        .unwrap_err()
        .to_string();
    assert!(err.contains("3073-byte records"), "{err}");
    write_batch(&dir.path().join(cifar_binary::TEST_FILE), &[(12, [0, 0, 0])]);
    let err = cifar_binary::load(dir.path(), cifar_binary::Split::Test)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label 12"), "{err}");
}

#[test]
fn download_failure_names_the_url_and_the_alternative() {
    let cache = tempfile::tempdir().unwrap();
    let url = "http://127.0.0.1:9/cifar-10-binary.tar.gz";
    let err = cifar_binary::fetch_from(url, cache.path()).unwrap_err().to_string();
    assert!(err.contains(url), "{err}");
    assert!(err.contains("--data"), "{err}");
}

#[test]
fn md5_is_checked() {
    let path = Path::new("x.tar.gz");
    cifar_binary::verify_md5(path, b"abc", "900150983cd24fb0d6963f7d28e17f72").unwrap();
    let err = cifar_binary::verify_md5(path, b"abd", cifar_binary::MD5)
        .unwrap_err()
        .to_string();
    assert!(err.contains(cifar_binary::MD5), "{err}");
}

#[test]
fn unreadable_images_name_the_file_or_are_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    for class in ["a", "b"] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        let img = image::RgbImage::from_pixel(40, 20, image::Rgb([1, 2, 3]));
        img.save(dir.path().join(class).join("ok.png")).unwrap();
    }
    std::fs::write(dir.path().join("b/broken.jpg"), b"\xff\xd8\xff not really").unwrap();
    let err = trainer::data::load_image_folder(dir.path(), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.jpg") && err.contains("--skip-bad-images"), "{err}");
    let ds = trainer::data::load_image_folder(dir.path(), true).unwrap();
    assert_eq!((ds.len(), ds.skipped), (2, 1));
    assert_eq!(ds.classes, ["a", "b"]);
    let err = trainer::data::load_image_folder(&dir.path().join("a"), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("class folders"), "{err}");
}

/// The workspace's tract-onnx registers an image classifier's operators only
/// (vendor/tract-onnx/PATCHES.md): every net the trainer builds, with either activation
/// and every test-time augmentation, must export to a graph that registry loads.
#[test]
fn every_net_activation_and_tta_exports_a_graph_the_serving_registry_loads() {
    use burn::module::Module;
    use burn::tensor::Device;
    use trainer::config::{WHITEN_PATCH, WHITEN_WIDTH};
    use trainer::export::{ExportMeta, Head};
    use trainer::model::{Activation, Arch, Net};

    let device = Device::flex().autodiff();
    for arch in [Arch::Seed, Arch::Airbench] {
        for activation in [Activation::Relu, Activation::Gelu] {
            for tta_shift in [false, true] {
                let mut config = Preset::Tiny.config();
                config.net.arch = arch;
                config.net.activation = activation;
                config.export.tta_shift = tta_shift;
                let whitening =
                    (arch == Arch::Airbench).then(|| vec![0.1; WHITEN_WIDTH * 3 * WHITEN_PATCH * WHITEN_PATCH]);
                let net = Net::new(&config, 10, whitening, &device)
                    .valid()
                    .to_device(&Device::flex());
                let meta = ExportMeta {
                    labels: (0..10).map(|i| format!("class{i}")).collect(),
                    dataset: "generated".into(),
                    val_accuracy: 0.1,
                    trained_at: "2026-12-07T00:00:00Z".into(),
                    config_json: serde_json::to_string(&config).unwrap(),
                    val_ece: 0.0,
                };
                let head = Head {
                    tta: config.tta(),
                    temperature: 1.5,
                };
                let exported = trainer::export::export(&net, &meta, head).unwrap();
                if let Err(e) = inference::Classifier::from_bytes(&exported.bytes) {
                    panic!("{arch:?}, {activation:?}, shift TTA {tta_shift}: {e}");
                }
            }
        }
    }
}
