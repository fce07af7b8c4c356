//! The real arm64 `bootstrap` (`make build-arm64`: cargo lambda build --profile lambda --arm64) under qemu-aarch64,
//! served by a minimal Lambda runtime API on loopback: it must answer `/health` and a
//! prediction. Timings under emulation mean nothing and are not looked at.

use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e::*;
use serde_json::{Value, json};

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
    let bootstrap = root().join("target/lambda/classify/bootstrap");
    assert!(
        bootstrap.is_file(),
        "{} missing: run `make build-arm64`",
        bootstrap.display()
    );
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
    let (port, rx) = runtime_api::start(events);
    let work = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("qemu-aarch64");
    cmd.args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(&bootstrap)
        .envs(runtime_api::lambda_env(port));
    let service = Service::spawn("qemu-bootstrap", cmd, work.path());
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
