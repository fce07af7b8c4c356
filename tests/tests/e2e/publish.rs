//! `trainer publish` against a real S3 API (moto_server on loopback): content-addressed
//! objects, pointer last, and failed uploads (before anything is written, and between the
//! model and the pointer) that leave the old pointer alone.

use std::process::Command;

use e2e::*;

fn publish(run: &std::path::Path, to: &str, s3: &S3Server) -> std::process::Output {
    publish_via(run, to, s3, &s3.endpoint)
}

fn publish_via(run: &std::path::Path, to: &str, s3: &S3Server, endpoint: &str) -> std::process::Output {
    publish_command(run, to, s3)
        .env("AWS_ENDPOINT_URL_S3", endpoint)
        .output()
        .expect("trainer runs")
}

fn get(s3: &S3Server, key: &str) -> (u16, Vec<u8>) {
    s3.get_object("bucket", key)
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn publish_writes_pointer_last_and_failure_keeps_the_old_one() {
    let work = tempfile::tempdir().unwrap();
    let s3 = S3Server::with_bucket(work.path(), "bucket");
    // The shipped model's run files are a complete run directory.
    let run = root().join("models");
    let staged = stage_run(
        &work.path().join("run"),
        &std::fs::read(run.join("cifar10.onnx")).unwrap(),
    );
    for f in ["metrics.json", "learning-curves.png", "confusion-matrix.png"] {
        std::fs::copy(run.join(f), staged.join(f)).unwrap();
    }
    let out = publish(&staged, "s3://bucket/prod/", &s3);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let model = std::fs::read(staged.join("model.onnx")).unwrap();
    let sha = contract::sha256_hex(&model);
    let (status, pointer) = get(&s3, "prod/models/latest.json");
    assert_eq!(status, 200);
    let pointer: contract::ModelPointer = serde_json::from_slice(&pointer).unwrap();
    assert_eq!(pointer.sha256, sha);
    assert_eq!(pointer.key, format!("prod/models/{sha}.onnx"));
    assert_eq!(get(&s3, &pointer.key), (200, model.clone()));
    assert_eq!(get(&s3, &format!("prod/models/{sha}/metrics.json")).0, 200);

    // An upload that fails (missing bucket) exits non-zero with the reason...
    let out = publish(&staged, "s3://no-such-bucket/prod/", &s3);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no-such-bucket") && stderr.contains("NoSuchBucket"),
        "{stderr}"
    );
    // A failure between the model upload and the pointer write: the new model's objects
    // are there (content-addressed, harmless), the pointer still names the old one.
    let proxy = FaultyProxy::start(&s3.endpoint, "/bucket/prod/models/latest.json");
    let staged_b = work.path().join("run-b");
    std::fs::create_dir_all(&staged_b).unwrap();
    // A second valid model: the shipped one with another training date in its metadata.
    std::fs::write(staged_b.join("model.onnx"), retrained(&model)).unwrap();
    let out = publish_via(&staged_b, "s3://bucket/prod/", &s3, &proxy.endpoint);
    assert!(!out.status.success(), "the pointer write failed, so publish must fail");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("latest.json"), "{stderr}");
    let seen = proxy.seen.lock().unwrap().clone();
    let b_sha = contract::sha256_hex(&std::fs::read(staged_b.join("model.onnx")).unwrap());
    let model_put = seen
        .iter()
        .position(|l| l.starts_with("PUT") && l.contains(&format!("{b_sha}.onnx")));
    let pointer_put = seen
        .iter()
        .position(|l| l.starts_with("PUT") && l.contains("latest.json"));
    assert!(
        matches!((model_put, pointer_put), (Some(m), Some(p)) if m < p),
        "the model went up before the pointer was tried: {seen:#?}"
    );
    assert_eq!(
        get(&s3, &format!("prod/models/{b_sha}.onnx")).0,
        200,
        "the new model was uploaded"
    );
    let (_, kept) = get(&s3, "prod/models/latest.json");
    let kept: contract::ModelPointer = serde_json::from_slice(&kept).unwrap();
    assert_eq!(kept, pointer, "old pointer kept after a mid-upload failure");

    // `models list` shows both, the live one marked; `models promote` moves the pointer
    // only for exactly one match whose object checks out.
    let models = |args: &[&str]| {
        Command::new(bin("trainer"))
            .arg("models")
            .args(args)
            .args(["--at", "s3://bucket/prod/"])
            .envs(s3.env())
            .output()
            .expect("trainer runs")
    };
    let out = models(&["list", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let shas: Vec<&str> = listed.iter().map(|m| m["sha256"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(shas.contains(&sha.as_str()) && shas.contains(&b_sha.as_str()));
    let live: Vec<&str> = listed
        .iter()
        .filter(|m| m["live"] == true)
        .map(|m| m["sha256"].as_str().unwrap())
        .collect();
    assert_eq!(live, [sha.as_str()]);
    // Both share the model version (only the training date differs): ambiguous.
    let out = models(&["promote", &pointer.version]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("matches"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = models(&["promote", "ffffffffffff"]);
    assert!(!out.status.success());
    assert_eq!(
        get(&s3, "prod/models/latest.json").1,
        serde_json::to_vec_pretty(&pointer).unwrap(),
        "untouched"
    );
    let out = models(&["promote", &b_sha[..12]]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, now) = get(&s3, "prod/models/latest.json");
    let now: contract::ModelPointer = serde_json::from_slice(&now).unwrap();
    assert_eq!(now.sha256, b_sha);
    // Back to A by promoting it: B is remembered as the model a rollback returns to.
    let out = models(&["promote", &sha[..12]]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, back) = get(&s3, "prod/models/latest.json");
    let back: contract::ModelPointer = serde_json::from_slice(&back).unwrap();
    assert_eq!(
        back.model_only(),
        pointer.model_only(),
        "promoting A again restores its pointer"
    );
    assert_eq!(back.previous.map(|p| p.sha256), Some(b_sha.clone()));
    let out = models(&["rollback"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_, rolled) = get(&s3, "prod/models/latest.json");
    let rolled: contract::ModelPointer = serde_json::from_slice(&rolled).unwrap();
    assert_eq!(
        (rolled.sha256.as_str(), rolled.previous.is_none()),
        (b_sha.as_str(), true)
    );

    // ...and a broken run directory never touches the pointer.
    std::fs::write(staged.join("model.onnx"), b"not a model").unwrap();
    let out = publish(&staged, "s3://bucket/prod/", &s3);
    assert!(!out.status.success());
    let (_, after) = get(&s3, "prod/models/latest.json");
    let after: contract::ModelPointer = serde_json::from_slice(&after).unwrap();
    assert_eq!(after, rolled, "old pointer kept");
}
