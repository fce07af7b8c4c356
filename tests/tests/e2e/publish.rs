//! `trainer publish` against a real S3 API (moto_server on loopback): content-addressed
//! objects, pointer last, and a failed upload that leaves the old pointer alone.

use std::process::Command;

use e2e::*;

fn publish(run: &std::path::Path, to: &str, s3: &S3Server) -> std::process::Output {
    Command::new(bin("trainer"))
        .args(["publish", "--run"])
        .arg(run)
        .args(["--to", to])
        .envs(s3.env())
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
    let s3 = S3Server::start(work.path());
    s3.create_bucket("bucket");
    // The shipped model's run files are a complete run directory.
    let run = root().join("models");
    let staged = work.path().join("run");
    std::fs::create_dir_all(&staged).unwrap();
    std::fs::copy(run.join("cifar10.onnx"), staged.join("model.onnx")).unwrap();
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
    // ...and a broken run directory never touches the pointer.
    std::fs::write(staged.join("model.onnx"), b"not a model").unwrap();
    let out = publish(&staged, "s3://bucket/prod/", &s3);
    assert!(!out.status.success());
    let (_, after) = get(&s3, "prod/models/latest.json");
    let after: contract::ModelPointer = serde_json::from_slice(&after).unwrap();
    assert_eq!(after, pointer, "old pointer kept");
}
