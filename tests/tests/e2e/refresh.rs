//! A published model goes live without a redeploy: the function behind cargo lambda's
//! emulator follows `models/latest.json` on a real S3 server (moto on loopback) while a
//! client keeps sending requests; a pointer with a wrong checksum or to a missing object
//! leaves the current model serving, and `/health` says why. A new stack's empty bucket
//! serves the embedded model until the first model is published.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api::{Health, PredictResponse, RefreshOutcome};
use e2e::*;

const REFRESH_SECONDS: u64 = 2;

fn health(base: &str) -> Health {
    let mut r = http().get(&format!("{base}/health")).call().expect("health");
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

/// Send requests until `versions` says stop; every answer with its header and time.
fn client_loop(predict: String, image: Vec<u8>, stop: Arc<AtomicBool>) -> Vec<(Instant, u16, String, String)> {
    let agent = http();
    let mut seen = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut r = agent
            .post(&predict)
            .header("content-type", "image/jpeg")
            .send(&image[..])
            .expect("request sent");
        let status = r.status().as_u16();
        let header = r
            .headers()
            .get(api::MODEL_VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body: PredictResponse = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
        seen.push((Instant::now(), status, header, body.model_version));
    }
    seen
}

/// Poll `/health` (each call is a request, so it also triggers the check) until `ok`.
fn wait_for(base: &str, what: &str, ok: impl Fn(&Health) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let h = health(base);
        if ok(&h) {
            return start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: {h:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn a_published_model_goes_live_and_bad_pointers_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let s3 = S3Server::with_bucket(work.path(), "models");
    let shipped = std::fs::read(root().join("models/cifar10.onnx")).unwrap();
    let run_a = stage_run(&work.path().join("a"), &shipped);
    let run_b = stage_run(
        &work.path().join("b"),
        &with_metadata(&shipped, contract::meta::MODEL_VERSION, "0123456789abcdef"),
    );
    publish_run(&run_a, "s3://models/live/", &s3);
    let mut env = s3.env();
    env.push(("MODEL_URI", "s3://models/live/models/latest.json".into()));
    env.push(("MODEL_REFRESH_SECONDS", REFRESH_SECONDS.to_string()));
    let watch = start_function(&env, work.path());
    let version_a = health(&watch.base).model_version;
    assert_ne!(version_a, "0123456789abcdef");

    // B is published while a client keeps sending: every request answers 200, each
    // answer's header names the version in its body, and B takes over in time.
    let stop = Arc::new(AtomicBool::new(false));
    let image = sample_images(1).remove(0).2;
    let client = {
        let (predict, image, stop) = (format!("{}/predict", watch.base), image.clone(), stop.clone());
        std::thread::spawn(move || client_loop(predict, image, stop))
    };
    std::thread::sleep(Duration::from_millis(500));
    let published = Instant::now();
    publish_run(&run_b, "s3://models/live/", &s3);
    let publish_took = published.elapsed();
    wait_for(&watch.base, "B goes live", |h| h.model_version == "0123456789abcdef");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let seen = client.join().unwrap();
    assert!(
        seen.iter()
            .all(|(_, status, header, body)| *status == 200 && header == body),
        "{seen:?}"
    );
    let first_b = seen
        .iter()
        .position(|(_, _, _, v)| v == "0123456789abcdef")
        .expect("the client saw B");
    assert!(first_b > 0 && seen[..first_b].iter().all(|(_, _, _, v)| *v == version_a));
    assert!(
        seen[first_b..].iter().all(|(_, _, _, v)| v == "0123456789abcdef"),
        "no flip-flop"
    );
    let switch = seen[first_b].0.duration_since(published) - publish_took;
    eprintln!(
        "B answered {switch:?} after its pointer was written ({} requests)",
        seen.len()
    );
    assert!(
        switch <= Duration::from_secs(REFRESH_SECONDS + 1),
        "switched after {switch:?}"
    );
    assert_eq!(health(&watch.base).refresh.last_outcome, Some(RefreshOutcome::Updated));

    // Rolling back is promoting A again.
    let out = std::process::Command::new(bin("trainer"))
        .args([
            "models",
            "promote",
            &contract::sha256_hex(&shipped)[..12],
            "--at",
            "s3://models/live/",
        ])
        .envs(s3.env())
        .output()
        .expect("trainer runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(&watch.base, "back to A", |h| h.model_version == version_a);

    // A pointer with a wrong checksum, then one to a missing object: A keeps serving.
    let (_, pointer) = s3.get_object("models", "live/models/latest.json");
    let mut bad: contract::ModelPointer = serde_json::from_slice(&pointer).unwrap();
    bad.sha256 = "0".repeat(64);
    s3.put_object("models", "live/models/latest.json", serde_json::to_vec(&bad).unwrap());
    let h = health(&watch.base);
    wait_for(&watch.base, "checksum failure reported", |h| {
        h.refresh.last_outcome == Some(RefreshOutcome::Failed)
            && h.refresh.last_error.as_deref().is_some_and(|e| e.contains("sha256"))
    });
    assert_eq!(h.model_version, version_a);
    let mut missing = bad.clone();
    missing.key = "live/models/deleted.onnx".into();
    s3.put_object(
        "models",
        "live/models/latest.json",
        serde_json::to_vec(&missing).unwrap(),
    );
    wait_for(&watch.base, "missing object reported", |h| {
        h.refresh
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("deleted.onnx"))
    });
    let mut r = http()
        .post(&format!("{}/predict", watch.base))
        .header("content-type", "image/jpeg")
        .send(&image[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: PredictResponse = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(body.model_version, version_a, "the current model keeps serving");
    let log = watch.function.log_text();
    assert_eq!(
        log.matches("model refresh failed").count(),
        2,
        "one log line per bad pointer version:\n{log}"
    );
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn a_new_stack_answers_at_once_and_takes_the_first_published_model() {
    let work = tempfile::tempdir().unwrap();
    let s3 = S3Server::with_bucket(work.path(), "fresh");
    let mut env = s3.env();
    env.push(("MODEL_URI", "s3://fresh/models/latest.json".into()));
    env.push(("MODEL_REFRESH_SECONDS", REFRESH_SECONDS.to_string()));
    let watch = start_function(&env, work.path());
    let first = health(&watch.base);
    assert_eq!(first.source, "embedded:models/cifar10.onnx", "{first:?}");
    assert!(first.refresh.enabled, "the missing pointer is watched: {first:?}");
    // Checks of a pointer that is still missing are not failures.
    std::thread::sleep(Duration::from_secs(REFRESH_SECONDS + 1));
    let h = health(&watch.base);
    assert_ne!(h.refresh.last_outcome, Some(RefreshOutcome::Failed), "{h:?}");
    assert!(!watch.function.log_text().contains("model refresh failed"));

    let shipped = std::fs::read(root().join("models/cifar10.onnx")).unwrap();
    let run = stage_run(
        &work.path().join("first"),
        &with_metadata(&shipped, contract::meta::MODEL_VERSION, "fedcba9876543210"),
    );
    publish_run(&run, "s3://fresh/", &s3);
    wait_for(&watch.base, "the first published model goes live", |h| {
        h.model_version == "fedcba9876543210" && h.source.starts_with("s3://fresh/models/latest.json")
    });
}
