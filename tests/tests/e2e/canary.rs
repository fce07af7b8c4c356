//! Model releases through the pointer, end to end on a real S3 server (moto on loopback)
//! and the function behind cargo lambda's emulator: `trainer models canary` lets a
//! candidate answer its share of requests, picked by image so each image sticks to one
//! side; `--shadow` runs it beside the current model, which still answers, and the metric
//! records carry the agreement; promote and rollback move the pointer; a candidate the
//! function cannot serve (other labels) or a malformed share leaves the current model
//! answering every request, and `/health` says why.

use std::process::Command;
use std::time::{Duration, Instant};

use api::{Health, PredictResponse, RefreshOutcome};
use contract::pointer::split_bucket;
use e2e::*;
use serde_json::Value;

const AT: &str = "s3://models/live/";
const B: &str = "bbbbbbbbbbbbbbbb";

fn health(base: &str) -> Health {
    let mut r = http().get(&format!("{base}/health")).call().expect("health");
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

fn wait_for(base: &str, what: &str, ok: impl Fn(&Health) -> bool) {
    let start = Instant::now();
    loop {
        let h = health(base);
        if ok(&h) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: {h:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn models(s3: &S3Server, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin("trainer"))
        .arg("models")
        .args(args)
        .args(["--at", AT])
        .envs(s3.env())
        .output()
        .expect("trainer runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The version that answered each image, from the header, checked against the body.
fn answers(base: &str, images: &[(String, String, Vec<u8>)]) -> Vec<String> {
    let agent = http();
    images
        .iter()
        .map(|(_, _, bytes)| {
            let mut r = agent
                .post(&format!("{base}/predict"))
                .header("content-type", "image/jpeg")
                .send(&bytes[..])
                .expect("answered");
            assert_eq!(r.status().as_u16(), 200);
            let header = r.headers()[api::MODEL_VERSION_HEADER].to_str().unwrap().to_string();
            let body: PredictResponse = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
            assert_eq!(header, body.model_version);
            header
        })
        .collect()
}

/// The last `n` metric records the function printed.
fn records(watch: &Watch, n: usize) -> Vec<Value> {
    let all: Vec<Value> = watch
        .function
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some() && v["Route"] == "/predict")
        .collect();
    all[all.len() - n..].to_vec()
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn a_candidate_answers_or_shadows_its_share_and_releases_move_the_pointer() {
    let work = tempfile::tempdir().unwrap();
    let s3 = S3Server::with_bucket(work.path(), "models");
    let shipped = std::fs::read(root().join("models/cifar10.onnx")).unwrap();
    let b = with_metadata(&shipped, contract::meta::MODEL_VERSION, B);
    let other_labels = with_metadata(&shipped, contract::meta::LABELS, r#"["aeroplan""#);
    // B first, then A: A serves and B is published beside it.
    publish_run(&stage_run(&work.path().join("b"), &b), AT, &s3);
    publish_run(&stage_run(&work.path().join("a"), &shipped), AT, &s3);
    let mut env = s3.env();
    env.push(("MODEL_URI", format!("{AT}models/latest.json")));
    env.push(("MODEL_REFRESH_SECONDS", "1".into()));
    let watch = start_function(&env, work.path());
    let a = health(&watch.base).model_version;
    assert_ne!(a, B);

    // The side each image lands on, computed as the function does: from its 32x32 pixels.
    let images = sample_images(3);
    let limits = contract::DecodeLimits {
        max_side: 4096,
        max_pixels: 16_777_216,
        max_alloc: 1 << 30,
    };
    let bucket: Vec<u8> = images
        .iter()
        .map(|(_, _, bytes)| split_bucket(&contract::decode_rgb32(bytes, &limits).unwrap()))
        .collect();

    let (ok, text) = models(&s3, &["canary", &contract::sha256_hex(&b)[..12], "--percent", "50"]);
    assert!(ok, "{text}");
    wait_for(&watch.base, "the canary serves", |h| {
        h.candidate
            .as_ref()
            .is_some_and(|c| c.serving && c.percent == 50 && c.mode == "canary")
    });
    let seen = answers(&watch.base, &images);
    let expected: Vec<&str> = bucket.iter().map(|&k| if k < 50 { B } else { a.as_str() }).collect();
    assert_eq!(seen, expected, "each image on its side");
    assert!(
        seen.iter().any(|v| v == B) && seen.contains(&a),
        "both answer: {seen:?}"
    );
    assert_eq!(answers(&watch.base, &images), seen, "and it sticks there");
    for (record, version) in records(&watch, images.len()).iter().zip(&seen) {
        let variant = if version == B { "candidate" } else { "current" };
        assert_eq!(
            (record["Variant"].as_str(), record["model_version"].as_str()),
            (Some(variant), Some(version.as_str()))
        );
        assert!(record["Top1Probability"].as_f64().unwrap() > 0.0);
        assert!(record.get("ShadowCompared").is_none());
    }

    let (ok, text) = models(&s3, &["canary", B, "--percent", "50", "--shadow"]);
    assert!(ok, "{text}");
    wait_for(&watch.base, "the shadow runs", |h| {
        h.candidate.as_ref().is_some_and(|c| c.serving && c.mode == "shadow")
    });
    assert!(
        answers(&watch.base, &images).iter().all(|v| *v == a),
        "a shadow never answers"
    );
    for (record, k) in records(&watch, images.len()).iter().zip(&bucket) {
        assert_eq!(record["Variant"], "current");
        if *k < 50 {
            // Same weights, so the same top-1: agreement is total.
            assert_eq!(
                (record["ShadowAgreed"].as_u64(), record["ShadowCompared"].as_u64()),
                (Some(1), Some(1)),
                "{record}"
            );
        } else {
            assert!(record.get("ShadowCompared").is_none(), "{record}");
        }
    }

    let (ok, text) = models(&s3, &["promote", B]);
    assert!(ok, "{text}");
    wait_for(&watch.base, "B promoted", |h| {
        h.model_version == B && h.candidate.is_none()
    });
    assert!(answers(&watch.base, &images).iter().all(|v| v == B));
    let (ok, text) = models(&s3, &["rollback"]);
    assert!(ok, "{text}");
    wait_for(&watch.base, "rolled back to A", |h| h.model_version == a);
    let (ok, text) = models(&s3, &["rollback"]);
    assert!(!ok && text.contains("no previous model"), "{text}");

    // A candidate with other labels: refused by the trainer, and by the function when a
    // pointer names it anyway; the current model answers everything meanwhile.
    let c_run = stage_run(&work.path().join("c"), &other_labels);
    let out = publish_command(&c_run, AT, &s3).arg("--no-promote").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let c_sha = contract::sha256_hex(&other_labels);
    let (_, manifest) = s3.get_object("models", &format!("live/models/{c_sha}/model.json"));
    let c_key: contract::ModelPointer = serde_json::from_slice(&manifest).unwrap();
    let (_, still) = s3.get_object("models", "live/models/latest.json");
    assert_eq!(
        serde_json::from_slice::<contract::ModelPointer>(&still)
            .unwrap()
            .version,
        a,
        "--no-promote leaves the pointer"
    );
    let (ok, text) = models(&s3, &["canary", &c_key.sha256[..12], "--percent", "50"]);
    assert!(!ok && text.contains("same classes"), "{text}");
    let (_, bytes) = s3.get_object("models", "live/models/latest.json");
    let mut pointer: contract::ModelPointer = serde_json::from_slice(&bytes).unwrap();
    pointer.candidate = Some(Box::new(contract::Candidate {
        model: c_key,
        percent: 100,
        mode: contract::Split::Canary,
        since: "2026-12-04T00:00:00Z".into(),
    }));
    s3.put_object(
        "models",
        "live/models/latest.json",
        serde_json::to_vec(&pointer).unwrap(),
    );
    wait_for(&watch.base, "the candidate is refused", |h| {
        h.candidate
            .as_ref()
            .is_some_and(|c| !c.serving && c.error.as_deref().is_some_and(|e| e.contains("labels")))
    });
    assert!(answers(&watch.base, &images).iter().all(|v| *v == a));
    assert!(watch.function.log_text().contains("candidate failed to load"));

    // A share over 100 %: the pointer is malformed, the check fails, A keeps serving.
    let text = String::from_utf8(serde_json::to_vec(&pointer).unwrap())
        .unwrap()
        .replace(r#""percent":100"#, r#""percent":150"#);
    s3.put_object("models", "live/models/latest.json", text.into_bytes());
    wait_for(&watch.base, "the malformed pointer is reported", |h| {
        h.refresh.last_outcome == Some(RefreshOutcome::Failed)
            && h.refresh.last_error.as_deref().is_some_and(|e| e.contains("over 100"))
    });
    assert!(answers(&watch.base, &images).iter().all(|v| *v == a));
}
