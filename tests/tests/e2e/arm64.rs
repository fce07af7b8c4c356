//! The real arm64 `bootstrap` (`make build-arm64`: cargo lambda build --profile lambda --arm64) under qemu-aarch64,
//! served by a minimal Lambda runtime API on loopback: it must answer `/health` and a
//! prediction, and match x86 tract's probabilities. Timings under emulation mean nothing
//! and are not looked at. The package's size is held here too, as `make package-size`
//! prints it.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e::*;
use serde_json::{Value, json};

/// The arm64 build's `bootstrap`, which `make build-arm64` writes.
fn bootstrap() -> std::path::PathBuf {
    let path = root().join("target/lambda/classify/bootstrap");
    assert!(path.is_file(), "{} missing: run `make build-arm64`", path.display());
    path
}

/// The bootstrap under qemu-aarch64, fed `events` (popped from the back) by a loopback
/// runtime API: the service, its answers, and the folder its log lives in.
fn under_qemu(events: Vec<Value>) -> (Service, std::sync::mpsc::Receiver<(String, Value)>, tempfile::TempDir) {
    let (port, rx) = runtime_api::start(events);
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("qemu-aarch64");
    // Lambda's arm64 is Graviton2 (Neoverse N1: NEON, no SVE). On qemu's default CPU, which
    // offers SVE and emulates it slowly, the bootstrap took 8 s an image on one machine and
    // the parity test timed out; as a Neoverse N1 it passes in about 6 minutes.
    cmd.args(["-cpu", "neoverse-n1", "-L", "/usr/aarch64-linux-gnu"])
        .arg(bootstrap())
        .envs(runtime_api::lambda_env(port));
    (Service::spawn("qemu-bootstrap", cmd, work.path()), rx, work)
}

fn event(method: &str, path: &str, content_type: &str, body: Option<String>, b64: bool) -> Value {
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": content_type},
        "requestContext": {"http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"},
                           "requestId": "r", "stage": "$default", "timeEpoch": 0},
        "body": body, "isBase64Encoded": b64,
    })
}

#[test]
#[ignore = "needs the arm64 build and qemu-user; run by `make test`"]
fn arm64_bootstrap_answers_health_and_a_prediction() {
    let image = sample_images(1).remove(3); // a cat
    // The same cat as a 1280x1024 photo: it takes the DC-only JPEG decoder.
    let photo = {
        let small = image::load_from_memory(&image.2).unwrap();
        let big = small
            .resize_exact(1280, 1024, image::imageops::FilterType::Triangle)
            .to_rgb8();
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(big)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .unwrap();
        out.into_inner()
    };
    // Queue pops from the back: health first, then the prediction, then the photo.
    let events = vec![
        event("POST", "/predict", "image/jpeg", Some(STANDARD.encode(&photo)), true),
        event("POST", "/predict", "image/jpeg", Some(STANDARD.encode(&image.2)), true),
        event("GET", "/health", "", None, false),
    ];
    let (service, rx, _work) = under_qemu(events);
    let mut answers = Vec::new();
    for _ in 0..3 {
        match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(a) => answers.push(a),
            Err(e) => panic!("no answer from the arm64 bootstrap ({e}):\n{}", service.log_text()),
        }
    }
    let (path, health) = &answers[0];
    assert!(path.ends_with("req-2/response"), "{path}: {health}");
    assert_eq!(health["statusCode"], 200, "{health}");
    let health: api::Health = serde_json::from_str(health["body"].as_str().unwrap()).unwrap();
    assert_eq!(health.status, "ok");
    let (path, predict) = &answers[1];
    assert!(path.ends_with("req-1/response"), "{path}: {predict}");
    assert_eq!(predict["statusCode"], 200, "{predict}");
    let body: api::PredictResponse = serde_json::from_str(predict["body"].as_str().unwrap()).unwrap();
    assert_eq!(body.result.predictions.len(), 5);
    assert!(body.result.probability > 0.0);
    assert_eq!(body.model_version, health.model_version);
    // The photo: arm64's decode and inference agree with this machine's on the same bytes
    // (the embedded model is models/cifar10.onnx).
    let (path, answer) = &answers[2];
    assert!(path.ends_with("req-0/response"), "{path}: {answer}");
    assert_eq!(answer["statusCode"], 200, "{answer}");
    let arm: api::PredictResponse = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    let model = std::fs::read(root().join("models/cifar10.onnx")).unwrap();
    let x86 = inference::Classifier::from_bytes(&model)
        .unwrap()
        .probabilities(&[contract::decode_rgb32(&photo, &contract::DecodeLimits::default()).unwrap()])
        .unwrap()
        .remove(0);
    let (top, p) = contract::argmax(&x86);
    let best = &arm.result.predictions[0];
    assert_eq!(best.label, contract::CIFAR10_LABELS[top], "{answer}");
    assert!(
        (best.probability - p).abs() < 1e-3,
        "arm64 {} vs x86 {p}",
        best.probability
    );
    let log = service.log_text();
    assert!(log.contains("model loaded"), "cold start is logged:\n{log}");
}

/// A 32x32 image as PNG (lossless: the function decodes exactly these pixels).
fn png(pixels: &contract::Rgb32) -> Vec<u8> {
    let img = image::RgbImage::from_raw(32, 32, pixels.to_vec()).expect("32x32x3");
    let mut out = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut out, image::ImageFormat::Png)
        .unwrap();
    out.into_inner()
}

#[test]
#[ignore = "needs the arm64 build and qemu-user; run by `make test-arm64`"]
fn arm64_answers_match_x86_on_the_golden_pair_and_every_fixture_image() {
    let golden: Value = serde_json::from_slice(&std::fs::read(root().join("models/golden.json")).unwrap()).unwrap();
    let golden_images: Vec<Vec<u8>> = golden["images_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| png(&hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap()))
        .collect();
    let fixtures: Vec<Vec<u8>> = sample_images(50).into_iter().map(|(_, _, bytes)| bytes).collect();
    assert_eq!(fixtures.len(), 500);
    // Every class's probability (top_k 10), in batches the API takes.
    let mut requests: Vec<&[Vec<u8>]> = vec![&golden_images];
    requests.extend(fixtures.chunks(64));
    let events: Vec<Value> = requests
        .iter()
        .rev()
        .map(|batch| {
            let body = json!({"images": batch.iter().map(|b| STANDARD.encode(b)).collect::<Vec<_>>(), "top_k": 10});
            event("POST", "/predict", "application/json", Some(body.to_string()), false)
        })
        .collect();
    let (service, rx, _work) = under_qemu(events);

    let x86 = inference::Classifier::from_bytes(&std::fs::read(root().join("models/cifar10.onnx")).unwrap()).unwrap();
    let labels = x86.labels().to_vec();
    let limits = contract::DecodeLimits::default();
    let (mut images, mut worst) = (0, 0f32);
    for batch in &requests {
        let (_, answer) = rx
            .recv_timeout(Duration::from_secs(600))
            .unwrap_or_else(|e| panic!("no answer from the arm64 bootstrap ({e}):\n{}", service.log_text()));
        assert_eq!(answer["statusCode"], 200, "{answer}");
        let arm: api::BatchPredictResponse = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
        let decoded: Vec<contract::Rgb32> = batch
            .iter()
            .map(|b| contract::decode_rgb32(b, &limits).unwrap())
            .collect();
        let want = x86.probabilities(&decoded).unwrap();
        assert_eq!(arm.results.len(), want.len());
        for (result, row) in arm.results.iter().zip(&want) {
            assert_eq!(result.predictions.len(), labels.len());
            assert_eq!(
                result.predictions[0].label,
                labels[contract::argmax(row).0],
                "same top-1"
            );
            for p in &result.predictions {
                let i = labels.iter().position(|l| *l == p.label).unwrap();
                worst = worst.max((p.probability - row[i]).abs());
            }
            images += 1;
        }
    }
    assert_eq!(images, 508);
    assert!(worst <= 1e-4, "arm64 and x86 probabilities differ by up to {worst}");
    // x86 against the golden pair's recorded outputs is crates/inference/tests/golden.rs.
    eprintln!("arm64 vs x86: {images} images, same top-1, max |difference| {worst:.2e}");
}

/// What the deployment package weighs today (`make package-size`, docs/benchmarks.md:
/// 9.33 / 4.95 MB), with 2 % of room but never past issue 40's budget (10 MB / 5 MB, what
/// `make package` holds it to): a change that makes it heavier must lower these or say why.
const BOOTSTRAP_CEILING_MB: f64 = 9.5;
const ZIP_CEILING_MB: f64 = 5.0;

#[test]
#[ignore = "needs the arm64 build; run by `make test-arm64`"]
fn the_package_is_no_heavier_than_its_recorded_size() {
    let bootstrap = bootstrap();
    let work = tempfile::tempdir().unwrap();
    let (ok, text) = e2e::run(
        Command::new(venv_tool("python"))
            .arg(root().join("scripts/package.py"))
            .arg("--report")
            .arg(&bootstrap)
            .arg(work.path().join("classify.zip")),
    );
    assert!(ok, "package.py: {text}");
    // "bootstrap 9.33 MB (limit 10), /tmp/.../classify.zip 4.95 MB (limit 5)"
    let sizes: Vec<f64> = text
        .split(" MB")
        .filter_map(|part| part.rsplit(' ').next()?.parse().ok())
        .collect();
    assert_eq!(sizes.len(), 2, "cannot read the sizes in: {text}");
    assert!(
        sizes[0] <= BOOTSTRAP_CEILING_MB && sizes[1] <= ZIP_CEILING_MB,
        "the package grew past its recorded size ({BOOTSTRAP_CEILING_MB} / {ZIP_CEILING_MB} MB): {text}"
    );
    let zip = std::fs::metadata(work.path().join("classify.zip")).unwrap().len() as f64 / 1e6;
    assert!((zip - sizes[1]).abs() < 0.01, "printed {} MB, wrote {zip} MB", sizes[1]);
}
