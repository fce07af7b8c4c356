//! The loop back from traffic, end to end on loopback: a model A serves behind its pointer
//! on a real S3 server (moto) with capture at 100 % and feedback on; labelled images go
//! through it, half of them altered (colours inverted, which A never saw);
//! its capture records travel as the stack's Firehose stream would write them; users
//! correct A's wrong answers (by request id, a few by image, one naming a request that was
//! never captured); a model B trains on the same base images plus the corrections; B is
//! tried as a shadow, then a canary, then promoted, and on altered photos held out of the
//! corrections B is right more often than A; `trainer drift` flags the altered traffic and
//! stays quiet on the unaltered.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use api::{Health, PredictResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e::*;
use serde_json::{Value, json};

const AT: &str = "s3://models/live/";

fn health(base: &str) -> Health {
    let mut r = http().get(&format!("{base}/health")).call().expect("health");
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

fn wait_for(base: &str, what: &str, ok: impl Fn(&Health) -> bool) {
    let start = Instant::now();
    while !ok(&health(base)) {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: {:?}", health(base));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn trainer(args: &[&str], s3: &S3Server) -> (i32, String) {
    let out = Command::new(bin("trainer"))
        .args(args)
        .envs(s3.env())
        .output()
        .expect("trainer runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Colours inverted: what a phone with a broken filter might send.
fn altered(png: &[u8]) -> Vec<u8> {
    let mut img = image::load_from_memory(png).unwrap().into_rgb8();
    for p in img.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = 255 - *c;
        }
    }
    encode(img)
}

fn encode(img: image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A labelled set a tiny net learns in seconds, so what the corrections teach stands out
/// from noise: each class a disc of its own hue on a light, noisy background, at a random
/// place and size. Inverted, a disc takes another class's hue on a dark background, which
/// A has never seen.
fn synthetic(per_class: usize) -> Vec<(String, String, Vec<u8>)> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut out = Vec::new();
    for (k, class) in contract::CIFAR10_LABELS.iter().enumerate() {
        let hue = k as f64 * 36.0;
        let (r, g, b) = hsv(hue);
        for i in 0..per_class {
            let (cx, cy, radius) = (8 + next() % 16, 8 + next() % 16, 6 + next() % 5);
            let light = 180 + (next() % 50) as u8;
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                let noise = (next() % 21) as i32 - 10;
                let inside = (x as i64 - cx as i64).pow(2) + (y as i64 - cy as i64).pow(2) <= (radius * radius) as i64;
                let px = if inside { [r, g, b] } else { [light; 3] };
                image::Rgb(px.map(|c| (i32::from(c) + noise).clamp(0, 255) as u8))
            });
            out.push((class.to_string(), format!("{class}-{i}.png"), encode(img)));
        }
    }
    out
}

fn hsv(hue: f64) -> (u8, u8, u8) {
    let x = 1.0 - ((hue / 60.0) % 2.0 - 1.0).abs();
    let (r, g, b) = match (hue / 60.0) as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    ((r * 220.0) as u8, (g * 220.0) as u8, (b * 220.0) as u8)
}

/// One prediction: (true class, was altered, answer version, top-1 label, request id).
struct Sent {
    class: String,
    altered: bool,
    version: String,
    top1: String,
    request_id: String,
    bytes: Vec<u8>,
}

fn predict(base: &str, class: &str, altered: bool, bytes: &[u8]) -> Sent {
    let mut r = http()
        .post(&format!("{base}/predict"))
        .header("content-type", "image/png")
        .send(bytes)
        .expect("answered");
    assert_eq!(r.status().as_u16(), 200);
    let request_id = r.headers()[api::REQUEST_ID_HEADER].to_str().unwrap().to_string();
    let body: PredictResponse = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    Sent {
        class: class.into(),
        altered,
        version: body.model_version,
        top1: body.result.predictions[0].label.clone(),
        request_id,
        bytes: bytes.to_vec(),
    }
}

fn accuracy(sent: &[&Sent]) -> f64 {
    sent.iter().filter(|s| s.top1 == s.class).count() as f64 / sent.len() as f64
}

/// The capture lines the function printed for `ids`, delivered under `prefix` as the
/// stack's Firehose stream writes them (gzipped CloudWatch Logs envelopes, concatenated).
fn deliver(s3: &S3Server, log: &str, ids: &[&str], key: &str) -> usize {
    let lines: Vec<String> = log
        .lines()
        .filter(|l| l.starts_with("{\"capture\""))
        .filter(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            ids.contains(&v["request_id"].as_str().unwrap())
        })
        .map(str::to_string)
        .collect();
    s3.put_object("models", key, traffic::read::firehose_object(&lines, 25));
    lines.len()
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn corrections_from_captured_traffic_train_a_better_model_and_drift_is_seen() {
    let work = tempfile::tempdir().unwrap();
    let s3 = S3Server::with_bucket(work.path(), "models");
    let mut by_class: BTreeMap<String, Vec<(String, String, Vec<u8>)>> = BTreeMap::new();
    for image in synthetic(50) {
        by_class.entry(image.0.clone()).or_default().push(image);
    }
    // 30 images a class train both models; the other 20 are the traffic.
    let base: Vec<_> = by_class.values().flat_map(|v| v[..30].to_vec()).collect();
    let traffic: Vec<_> = by_class.values().flat_map(|v| v[30..].to_vec()).collect();
    let base_dir = work.path().join("base");
    write_folder(&base_dir, &base);
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train",
            "--preset",
            "tiny",
            "--epochs",
            "4",
            "--val-size",
            "50",
            "--data",
        ];
        let (base, out) = (base_dir.display().to_string(), out.display().to_string());
        args.extend([base.as_str(), "--out", out.as_str()]);
        args.extend(extra);
        let (code, text) = trainer(&args, &s3);
        assert_eq!(code, 0, "{text}");
    };
    let run_a = work.path().join("a");
    train(&run_a, &[]);
    let (code, text) = trainer(&["publish", "--run", &run_a.display().to_string(), "--to", AT], &s3);
    assert_eq!(code, 0, "{text}");

    let mut env = s3.env();
    env.push(("MODEL_URI", format!("{AT}models/latest.json")));
    env.push(("MODEL_REFRESH_SECONDS", "1".into()));
    env.push(("CAPTURE_PERCENT", "100".into()));
    env.push(("FEEDBACK_URI", "s3://models/feedback/".into()));
    let watch = start_function(&env, work.path());
    let a = health(&watch.base).model_version;

    let sent: Vec<Sent> = traffic
        .iter()
        .flat_map(|(class, _, png)| {
            [
                predict(&watch.base, class, false, png),
                predict(&watch.base, class, true, &altered(png)),
            ]
        })
        .collect();
    assert!(sent.iter().all(|s| s.version == a));
    // Held out of the corrections: the altered photos of every fourth traffic image.
    let held_out = |i: usize| i % 8 == 1;
    let log = watch.function.log_text();
    let ids = |pick: &dyn Fn(usize, &Sent) -> bool| -> Vec<&str> {
        sent.iter()
            .enumerate()
            .filter(|(i, s)| pick(*i, s))
            .map(|(_, s)| s.request_id.as_str())
            .collect()
    };
    let delivered = deliver(
        &s3,
        &log,
        &ids(&|_, _| true),
        "capture/2026/12/04/10/classify-capture-1-2026-12-04-10-00-00",
    );
    assert_eq!(delivered, sent.len(), "one capture record per image");
    deliver(
        &s3,
        &log,
        &ids(&|_, s| !s.altered),
        "drift-plain/2026/12/04/10/stream-1",
    );
    deliver(
        &s3,
        &log,
        &ids(&|_, s| s.altered),
        "drift-altered/2026/12/04/10/stream-1",
    );

    // Users correct A's wrong answers: by request id, every fifth by sending the image.
    let agent = http();
    let mut corrected = 0;
    for (i, s) in sent.iter().enumerate() {
        if s.top1 == s.class || held_out(i) {
            continue;
        }
        let body = if corrected % 5 == 4 {
            json!({"label": s.class, "image": STANDARD.encode(&s.bytes)})
        } else {
            json!({"label": s.class, "request_id": s.request_id})
        };
        let r = agent
            .post(&format!("{}/feedback", watch.base))
            .header("content-type", "application/json")
            .send(body.to_string().as_bytes())
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        corrected += 1;
    }
    let r = agent
        .post(&format!("{}/feedback", watch.base))
        .header("content-type", "application/json")
        .send(
            json!({"label": "cat", "request_id": "never-captured"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    assert!(corrected > 100, "{corrected} corrections");

    // B: the same base images and recipe, plus the corrections.
    let run_b = work.path().join("b");
    train(&run_b, &["--feedback", "s3://models/feedback/"]);
    let metrics: Value = serde_json::from_slice(&std::fs::read(run_b.join("metrics.json")).unwrap()).unwrap();
    let real = &metrics["real_traffic"];
    assert_eq!(real["counts"]["unmatched"], 1, "{real}");
    let (trained_on, kept) = (
        real["counts"]["trained_on"].as_u64().unwrap(),
        real["counts"]["held_out"].as_u64().unwrap(),
    );
    assert_eq!(trained_on + kept, corrected as u64, "{real}");
    assert!(kept > 0 && real["report"]["accuracy"].is_number(), "{real}");
    assert!(run_b.join("real-traffic.png").exists());
    let b_model = inference::Classifier::from_bytes(&std::fs::read(run_b.join("model.onnx")).unwrap()).unwrap();
    for key in [contract::meta::REAL_TRAFFIC_ACCURACY, contract::meta::REFERENCE_PROFILE] {
        assert!(b_model.metadata().contains_key(key), "B's metadata has {key}");
    }

    // Shadow, then canary, then promote.
    let run_b_text = run_b.display().to_string();
    let (code, text) = trainer(&["publish", "--run", &run_b_text, "--to", AT, "--no-promote"], &s3);
    assert_eq!(code, 0, "{text}");
    let b = b_model.version().to_string();
    for extra in [&["--shadow"][..], &[]] {
        let mut args = vec!["models", "canary", b.as_str(), "--percent", "50", "--at", AT];
        args.extend(extra);
        let (code, text) = trainer(&args, &s3);
        assert_eq!(code, 0, "{text}");
        let mode = if extra.is_empty() { "canary" } else { "shadow" };
        wait_for(&watch.base, mode, |h| {
            h.candidate.as_ref().is_some_and(|c| c.serving && c.mode == mode)
        });
        let answers: Vec<Sent> = traffic[..40]
            .iter()
            .map(|(c, _, p)| predict(&watch.base, c, false, p))
            .collect();
        let from_b = answers.iter().filter(|s| s.version == b).count();
        if mode == "shadow" {
            assert_eq!(from_b, 0, "a shadow never answers");
            let records: Vec<Value> = watch
                .function
                .log_text()
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v.get("ShadowCompared").is_some())
                .collect();
            assert!(!records.is_empty(), "shadow agreement is recorded");
        } else {
            assert!(
                from_b > 0 && from_b < answers.len(),
                "both answer: {from_b} of {}",
                answers.len()
            );
        }
    }
    let (code, text) = trainer(&["models", "promote", b.as_str(), "--at", AT], &s3);
    assert_eq!(code, 0, "{text}");
    wait_for(&watch.base, "B promoted", |h| {
        h.model_version == b && h.candidate.is_none()
    });

    // On altered images no correction named, B beats A.
    let before: Vec<&Sent> = sent
        .iter()
        .enumerate()
        .filter(|(i, s)| held_out(*i) && s.altered)
        .map(|(_, s)| s)
        .collect();
    let after: Vec<Sent> = before
        .iter()
        .map(|s| predict(&watch.base, &s.class, true, &s.bytes))
        .collect();
    assert!(after.iter().all(|s| s.version == b));
    let (acc_a, acc_b) = (accuracy(&before), accuracy(&after.iter().collect::<Vec<_>>()));
    eprintln!(
        "held-out altered photos: A {acc_a:.3}, B {acc_b:.3} ({} photos)",
        before.len()
    );
    assert!(
        acc_b > acc_a,
        "B {acc_b:.3} vs A {acc_a:.3} on {} held-out altered photos",
        before.len()
    );

    // Drift: the altered traffic is flagged, the plain traffic is not.
    let a_onnx = run_a.join("model.onnx").display().to_string();
    let reference = base_dir.display().to_string();
    let drift = |prefix: &str| {
        let out = work.path().join(prefix).display().to_string();
        trainer(
            &[
                "drift",
                "--capture",
                &format!("s3://models/{prefix}/"),
                "--model",
                &a_onnx,
                "--reference",
                &reference,
                "--out",
                &out,
            ],
            &s3,
        )
    };
    let (code, text) = drift("drift-altered");
    eprintln!("{text}");
    assert_eq!(code, 2, "altered traffic drifts:\n{text}");
    assert!(text.contains("brightness"), "{text}");
    let (code, text) = drift("drift-plain");
    eprintln!("{text}");
    assert_eq!(code, 0, "plain traffic does not:\n{text}");
    assert!(text.contains("no drift"), "{text}");
}
