//! The managed training job's two halves, offline: the command line its container runs
//! (`trainer train --data s3://... --publish s3://...`, against a real S3 API on
//! loopback), and `make train-cloud`'s submit-and-follow (scripts/train_cloud.py) against
//! moto's Batch API standing in for AWS Batch.

use std::process::Command;

use e2e::*;

/// The fixture folder as a `.tar.gz` dataset, uploaded under `datasets/`.
fn upload_dataset(s3: &S3Server, work: &std::path::Path) -> String {
    let folder = work.join("fixtures");
    write_folder(&folder, &sample_images(30));
    let archive = work.join("fixtures.tar.gz");
    let (ok, log) = run(Command::new("tar")
        .arg("czf")
        .arg(&archive)
        .arg("-C")
        .arg(&folder)
        .arg("."));
    assert!(ok, "{log}");
    s3.put_object("bucket", "datasets/fixtures.tar.gz", std::fs::read(&archive).unwrap());
    "s3://bucket/datasets/fixtures.tar.gz".into()
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn the_jobs_command_trains_on_s3_data_and_publishes_without_promoting() {
    let work = tempfile::tempdir().unwrap();
    let s3 = S3Server::with_bucket(work.path(), "bucket");
    // What serves now: the shipped model, promoted.
    let served = stage_run(
        &work.path().join("served"),
        &std::fs::read(root().join("models/cifar10.onnx")).unwrap(),
    );
    publish_run(&served, "s3://bucket/", &s3);
    let (_, pointer_before) = s3.get_object("bucket", "models/latest.json");
    let data = upload_dataset(&s3, work.path());

    let out = work.path().join("run");
    let (ok, log) = run(Command::new(bin("trainer"))
        .args([
            "train",
            "--preset",
            "tiny",
            "--val-size",
            "50",
            "--data",
            &data,
            "--publish",
            "s3://bucket/",
            "--out",
        ])
        .arg(&out)
        .env("TMPDIR", work.path())
        .envs(s3.env()));
    assert!(ok, "{log}");
    let model = std::fs::read(out.join("model.onnx")).unwrap();
    let sha = contract::sha256_hex(&model);
    assert_eq!(s3.get_object("bucket", &format!("models/{sha}.onnx")), (200, model));
    assert_eq!(s3.get_object("bucket", &format!("models/{sha}/metrics.json")).0, 200);
    assert_eq!(
        s3.get_object("bucket", "models/latest.json"),
        (200, pointer_before),
        "the pointer was not moved"
    );
    assert!(log.contains("latest.json left as it was"), "{log}");

    // A bad destination is refused before any training, and a missing dataset is named.
    let (ok, log) = run(Command::new(bin("trainer"))
        .args([
            "train",
            "--preset",
            "tiny",
            "--data",
            &data,
            "--publish",
            "ftp://x/",
            "--out",
        ])
        .arg(&out)
        .envs(s3.env()));
    assert!(
        !ok && log.contains("--publish ftp://x/") && !log.contains("epoch"),
        "{log}"
    );
    let (ok, log) = run(Command::new(bin("trainer"))
        .args([
            "train",
            "--preset",
            "tiny",
            "--data",
            "s3://bucket/datasets/none.tar.gz",
            "--out",
        ])
        .arg(&out)
        .env("TMPDIR", work.path())
        .envs(s3.env()));
    assert!(
        !ok && log.contains("s3://bucket/datasets/none.tar.gz") && log.contains("NoSuchKey"),
        "{log}"
    );
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn train_cloud_submits_a_job_and_follows_it_to_the_end() {
    let work = tempfile::tempdir().unwrap();
    let s3 = S3Server::with_bucket(work.path(), "bucket");
    let aws = |cmd: &mut Command| {
        cmd.envs(s3.env())
            .env("AWS_ENDPOINT_URL", &s3.endpoint)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .current_dir(root());
    };
    let outputs = work.path().join("cdk-outputs.json");
    let mut stand_in = Command::new(venv_tool("python"));
    stand_in
        .arg("tests/fixtures/batch_stand_in.py")
        .arg(&s3.endpoint)
        .arg(&outputs);
    aws(&mut stand_in);
    let (ok, log) = run(&mut stand_in);
    assert!(ok, "{log}");

    let mut submit = Command::new(venv_tool("python"));
    submit
        .args([
            "scripts/train_cloud.py",
            "--data",
            "s3://bucket/datasets/mine.tar.gz",
            "--budget",
            "2h",
        ])
        .args(["--poll-seconds", "0.5", "--timeout-minutes", "2", "--outputs"])
        .arg(&outputs);
    aws(&mut submit);
    let (ok, log) = run(&mut submit);
    assert!(ok, "{log}");
    assert!(log.contains(r#""budget": "2h", "data": "s3://bucket/datasets/mine.tar.gz", "preset": "default", "publish": "s3://bucket/""#), "{log}");
    assert!(
        log.contains("SUCCEEDED") && log.contains("latest.json was not moved"),
        "{log}"
    );

    // A queue that does not exist: a clear failure, exit 2, nothing followed.
    let mut wrong = Command::new(venv_tool("python"));
    wrong
        .args([
            "scripts/train_cloud.py",
            "--queue",
            "nope",
            "--job-definition",
            "trainer",
            "--outputs",
        ])
        .arg(&outputs);
    aws(&mut wrong);
    let out = wrong.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    // Data outside S3 is refused before anything is submitted.
    let mut local = Command::new(venv_tool("python"));
    local
        .args(["scripts/train_cloud.py", "--data", "runs/train.tar.gz", "--outputs"])
        .arg(&outputs);
    aws(&mut local);
    let (ok, log) = run(&mut local);
    assert!(!ok && log.contains("reads the dataset from S3"), "{log}");
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn shards_written_to_s3_are_streamed_back_by_a_run() {
    let work = tempfile::tempdir().unwrap();
    let s3 = S3Server::with_bucket(work.path(), "bucket");
    let (ok, log) = run(Command::new(bin("trainer"))
        .args(["data", "shard"])
        .arg(fixture_images())
        .args([
            "--out",
            "s3://bucket/datasets/fixtures/",
            "--shard-size",
            "128",
            "--val-size",
            "100",
        ])
        .envs(s3.env()));
    assert!(ok, "{log}");
    assert!(
        log.contains("train 400 images in 4 shards, validation 100 in 1"),
        "{log}"
    );
    for key in ["index.json", "train-000000.tar", "train-000003.tar", "val-000000.tar"] {
        assert_eq!(
            s3.get_object("bucket", &format!("datasets/fixtures/{key}")).0,
            200,
            "{key}"
        );
    }
    let out = work.path().join("run");
    let (ok, log) = run(Command::new(bin("trainer"))
        .args([
            "train",
            "--preset",
            "tiny",
            "--shards",
            "s3://bucket/datasets/fixtures/",
            "--out",
        ])
        .arg(&out)
        .envs(s3.env()));
    assert!(ok, "{log}");
    assert!(log.contains("400 train (streamed"), "{log}");
    let metrics: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["validation"]["images"], 100);
    // A prefix without shards is named.
    let (ok, log) = run(Command::new(bin("trainer"))
        .args(["train", "--preset", "tiny", "--shards", "s3://bucket/nothing/", "--out"])
        .arg(&out)
        .envs(s3.env()));
    assert!(!ok && log.contains("s3://bucket/nothing/index.json"), "{log}");
}
