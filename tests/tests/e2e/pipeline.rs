//! Trainer -> S3 (moto_server on loopback) -> function under `cargo lambda watch` -> HTTP,
//! in named stages that share one trained, published and served model (training and
//! starting the function are what cost time). Needs `make setup` (the .venv with
//! cargo-lambda and moto) and release binaries (`make test` provides both), hence
//! `#[ignore]` for a plain `cargo test`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use api::{BatchPredictResponse, ErrorBody, ErrorCode, ImageResult, ModelInfo, PredictResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e::*;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

thread_local! {
    /// Every JSON answer seen, for the OpenAPI check at the end.
    static SEEN: std::cell::RefCell<Vec<Value>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn record(method: &str, url: &str, status: u16, body: &Value) {
    let path = url
        .split("/lambda-url/")
        .nth(1)
        .and_then(|p| p.split_once('/'))
        .map(|(_, p)| p)
        .unwrap_or("");
    let path = format!("/{}", path.split('?').next().unwrap_or(""));
    SEEN.with(|s| {
        s.borrow_mut()
            .push(json!({"method": method, "path": path, "status": status, "body": body}))
    });
}

fn post(agent: &ureq::Agent, url: &str, content_type: &str, body: &[u8]) -> (u16, Value) {
    let mut r = agent
        .post(url)
        .header("content-type", content_type)
        .send(body)
        .expect("request sent");
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().expect("body");
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("non-JSON answer ({status}): {e}: {text}"));
    record("post", url, status, &v);
    (status, v)
}

fn get_json(agent: &ureq::Agent, url: &str) -> (u16, Value) {
    let mut r = agent.get(url).call().expect("request sent");
    let status = r.status().as_u16();
    let v: Value = r.body_mut().read_json().expect("JSON body");
    record("get", url, status, &v);
    (status, v)
}

/// An answer read into the API type it must be.
fn typed<T: DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

/// A command that must succeed; its stdout.
fn succeed(what: &str, cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Announce a stage, so a failure's output names the stage it happened in.
fn stage<T>(name: &str, f: impl FnOnce() -> T) -> T {
    eprintln!("--- stage: {name}");
    let t = f();
    eprintln!("--- stage ok: {name}");
    t
}

/// What the stages share: the served model and the answers `trainer evaluate` expects.
struct Pipeline {
    work: tempfile::TempDir,
    watch: Watch,
    agent: ureq::Agent,
    labels: Vec<String>,
    images: Vec<(String, String, Vec<u8>)>,
    folder: PathBuf,
    /// `class/file` -> probabilities in label order, from the model file through tract.
    expected: BTreeMap<String, Vec<f64>>,
    /// `class/file` -> true class.
    truth: BTreeMap<String, String>,
}

impl Pipeline {
    fn predict(&self) -> String {
        format!("{}/predict", self.watch.base)
    }

    fn top1(&self, file: &str) -> &str {
        let row = &self.expected[file];
        let best = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        &self.labels[best]
    }

    /// A top_k=10 result carries the same probabilities `trainer evaluate` computed.
    fn check(&self, file: &str, result: &ImageResult) {
        let want = &self.expected[file];
        let got: BTreeMap<&str, f64> = result
            .predictions
            .iter()
            .map(|p| (p.label.as_str(), f64::from(p.probability)))
            .collect();
        assert_eq!(got.len(), 10, "top_k=10 returns every class");
        for (i, label) in self.labels.iter().enumerate() {
            let d = (got[label.as_str()] - want[i]).abs();
            assert!(
                d <= 1e-5,
                "{file} {label}: function {} vs evaluate {} (diff {d})",
                got[label.as_str()],
                want[i]
            );
        }
    }
}

fn train_and_publish(work: &Path, s3: &S3Server) -> PathBuf {
    let run = work.join("run");
    succeed(
        "train",
        Command::new(bin("trainer"))
            .args(["train", "--preset", "tiny", "--data"])
            .arg(fixture_images())
            .arg("--out")
            .arg(&run),
    );
    succeed(
        "publish",
        Command::new(bin("trainer"))
            .args(["publish", "--run"])
            .arg(&run)
            .args(["--to", "s3://models/e2e/"])
            .envs(s3.env()),
    );
    run
}

fn serve_through_the_pointer(s3: &S3Server, run: &Path, logs: &Path) -> (Watch, ModelInfo) {
    let mut env = s3.env();
    env.push(("MODEL_URI", "s3://models/e2e/models/latest.json".into()));
    env.push(("ALLOWED_ORIGINS", "https://app.example".into()));
    let watch = start_function(&env, logs);
    let agent = http();
    let (status, model) = get_json(&agent, &format!("{}/model", watch.base));
    assert_eq!(status, 200, "{model}");
    let model: ModelInfo = typed(&model);
    let (status, health) = get_json(&agent, &format!("{}/health", watch.base));
    assert_eq!(status, 200);
    assert_eq!(typed::<api::Health>(&health).model_version, model.model_version);
    let metrics: Value = serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        model.model_version,
        metrics["model_version"].as_str().unwrap(),
        "function serves the published model"
    );
    assert!(
        model.source.starts_with("s3://models/e2e/models/latest.json"),
        "{}",
        model.source
    );
    (watch, model)
}

fn expected_from_the_model_file(
    work: &Path,
    run: &Path,
    images: &[(String, String, Vec<u8>)],
) -> (PathBuf, BTreeMap<String, Vec<f64>>, BTreeMap<String, String>) {
    let folder = work.join("eval");
    write_folder(&folder, images);
    let preds = work.join("predictions.json");
    succeed(
        "evaluate",
        Command::new(bin("trainer"))
            .args(["evaluate", "--model"])
            .arg(run.join("model.onnx"))
            .arg("--data")
            .arg(&folder)
            .arg("--predictions")
            .arg(&preds),
    );
    let rows: Vec<Value> = serde_json::from_slice(&std::fs::read(&preds).unwrap()).unwrap();
    let file = |p: &Value| p["file"].as_str().unwrap().to_string();
    let truth = rows
        .iter()
        .map(|p| (file(p), p["label"].as_str().unwrap().to_string()))
        .collect();
    let expected = rows
        .iter()
        .map(|p| (file(p), typed::<Vec<f64>>(&p["probabilities"])))
        .collect();
    (folder, expected, truth)
}

fn the_three_request_forms_agree_with_the_model_file(p: &Pipeline) {
    let predict = p.predict();
    let mut batch = Vec::new();
    for (class, name, bytes) in &p.images {
        let file = format!("{class}/{name}");
        let b64 = STANDARD.encode(bytes);
        let forms = [
            (
                predict.clone(),
                "application/json",
                json!({"image": b64, "top_k": 10}).to_string().into_bytes(),
            ),
            (format!("{predict}?top_k=10"), "image/jpeg", bytes.clone()),
        ];
        for (url, content_type, body) in forms {
            let (status, answer) = post(&p.agent, &url, content_type, &body);
            assert_eq!(status, 200, "{content_type}: {answer}");
            p.check(&file, &typed::<PredictResponse>(&answer).result);
        }
        batch.push(b64);
    }
    let (status, answer) = post(
        &p.agent,
        &predict,
        "application/json",
        json!({"images": batch, "top_k": 10}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let answer: BatchPredictResponse = typed(&answer);
    assert_eq!(answer.results.len(), p.images.len());
    for ((class, name, _), result) in p.images.iter().zip(&answer.results) {
        p.check(&format!("{class}/{name}"), result);
    }
}

fn the_client_agrees_with_the_model_file(p: &Pipeline) {
    let local_correct = p
        .truth
        .iter()
        .filter(|(file, want)| p.top1(file) == want.as_str())
        .count();
    let report = p.work.path().join("endpoint.json");
    let png = p.work.path().join("endpoint-confusion.png");
    succeed(
        "classify-client evaluate",
        Command::new(bin("classify-client"))
            .args(["evaluate", "--url", &p.watch.base, "--concurrency", "3", "--data"])
            .arg(&p.folder)
            .arg("--report")
            .arg(&report)
            .arg("--confusion-png")
            .arg(&png),
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["images"], p.images.len());
    assert_eq!(r["failed"], 0);
    let acc = r["accuracy"].as_f64().unwrap();
    assert!(
        (acc - local_correct as f64 / p.images.len() as f64).abs() < 1e-9,
        "endpoint {acc} vs local {local_correct}"
    );
    assert!(r["latency_p99_ms"].as_f64().unwrap() >= r["latency_p50_ms"].as_f64().unwrap());
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    let (class, name, bytes) = &p.images[0];
    let file = p.work.path().join(name);
    std::fs::write(&file, bytes).unwrap();
    let stdout = succeed(
        "classify-client classify",
        Command::new(bin("classify-client"))
            .args(["classify", "--json", "--url", &p.watch.base])
            .arg(&file),
    );
    let answers: Vec<Value> = serde_json::from_slice(&stdout).unwrap();
    let answer: PredictResponse = typed(&answers[0]["reply"]);
    assert_eq!(answer.result.label.as_deref(), Some(p.top1(&format!("{class}/{name}"))));
}

fn bad_requests_get_documented_errors(p: &Pipeline) {
    let predict = p.predict();
    let image = &p.images[0].2;
    let b64 = STANDARD.encode(image);
    let cases: Vec<(&str, &str, Vec<u8>, ErrorCode)> = vec![
        (
            "invalid JSON",
            "application/json",
            b"{not json".to_vec(),
            ErrorCode::InvalidJson,
        ),
        (
            "missing field",
            "application/json",
            b"{\"picture\": \"x\"}".to_vec(),
            ErrorCode::MissingImage,
        ),
        (
            "bad base64",
            "application/json",
            br#"{"image": "***"}"#.to_vec(),
            ErrorCode::InvalidBase64,
        ),
        (
            "not an image",
            "application/json",
            json!({"image": STANDARD.encode("hello")}).to_string().into_bytes(),
            ErrorCode::InvalidImage,
        ),
        (
            "truncated image",
            "image/jpeg",
            image[..image.len() / 3].to_vec(),
            ErrorCode::InvalidImage,
        ),
        (
            "top_k too big",
            "application/json",
            json!({"image": b64, "top_k": 11}).to_string().into_bytes(),
            ErrorCode::InvalidTopK,
        ),
        (
            "top_k zero",
            "application/json",
            json!({"image": b64, "top_k": 0}).to_string().into_bytes(),
            ErrorCode::InvalidTopK,
        ),
        (
            "empty batch",
            "application/json",
            br#"{"images": []}"#.to_vec(),
            ErrorCode::EmptyBatch,
        ),
        (
            "too many images",
            "application/json",
            json!({"images": vec![&b64; 65]}).to_string().into_bytes(),
            ErrorCode::TooManyImages,
        ),
        (
            "unsupported type",
            "text/plain",
            b"hello".to_vec(),
            ErrorCode::UnsupportedMediaType,
        ),
        (
            "tiff",
            "application/octet-stream",
            b"II*\0\x08\0\0\0rest".to_vec(),
            ErrorCode::UnsupportedImageFormat,
        ),
        ("empty body", "image/png", Vec::new(), ErrorCode::EmptyBody),
    ];
    for (what, ct, body, code) in cases {
        let (status, v) = post(&p.agent, &predict, ct, &body);
        let e: ErrorBody = typed(&v);
        assert_eq!((status, e.error.code), (code.status(), code), "{what}: {v}");
        assert!(!e.error.message.is_empty(), "{what}: message");
    }
    assert_eq!(
        typed::<ErrorBody>(&get_json(&p.agent, &format!("{}/nope", p.watch.base)).1)
            .error
            .code,
        ErrorCode::NotFound
    );
    assert_eq!(
        typed::<ErrorBody>(&get_json(&p.agent, &predict).1).error.code,
        ErrorCode::MethodNotAllowed
    );
}

fn cors_and_min_probability(p: &Pipeline) {
    let predict = p.predict();
    let r = p
        .agent
        .options(&predict)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .call()
        .unwrap();
    assert!(r.status().is_success(), "preflight {}", r.status());
    assert_eq!(
        r.headers().get("access-control-allow-origin").unwrap(),
        "https://app.example"
    );
    let (class, name, bytes) = &p.images[0];
    let (status, again) = post(&p.agent, &format!("{predict}?top_k=10"), "image/jpeg", bytes);
    assert_eq!(status, 200);
    let again = typed::<PredictResponse>(&again).result;
    p.check(&format!("{class}/{name}"), &again);

    // "None of these": a threshold above the top-1 probability gives `label: null` with
    // the classes still listed (query for raw bodies, a field for JSON).
    let strict = (again.probability + 0.01).min(1.0);
    let (status, none) = post(
        &p.agent,
        &format!("{predict}?top_k=3&min_probability={strict}"),
        "image/jpeg",
        bytes,
    );
    assert_eq!(status, 200, "{none}");
    let none = typed::<PredictResponse>(&none).result;
    if again.probability < 0.99 {
        assert!(none.label.is_none() && !none.matched, "{none:?}");
    }
    assert_eq!(none.predictions.len(), 3);
    let body = json!({"image": STANDARD.encode(bytes), "min_probability": 0.0});
    let (status, any) = post(&p.agent, &predict, "application/json", body.to_string().as_bytes());
    assert_eq!(status, 200, "{any}");
    let any = typed::<PredictResponse>(&any).result;
    assert!(any.matched);
    assert_eq!(any.label, again.label);
}

/// Every example in openapi.yaml, sent to the running function, gets the answer the spec
/// documents for it.
fn the_specs_examples_work_against_the_function(p: &Pipeline) {
    let spec: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(root().join("openapi.yaml")).unwrap()).unwrap();
    let examples = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap();
    assert_eq!(examples.len(), 3);
    for (name, example) in examples {
        let (status, v) = post(
            &p.agent,
            &p.predict(),
            "application/json",
            example["value"].to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{name}: {v}");
        let answer: api::PredictAnswer = typed(&v);
        let request: api::PredictRequest = typed(&example["value"]);
        assert_eq!(answer.results().len(), request.images.len(), "{name}");
        if let Some(k) = request.top_k {
            assert!(answer.results().iter().all(|r| r.predictions.len() == k), "{name}");
        }
    }
    let bad = &spec["components"]["responses"]["Error"]["content"]["application/json"]["examples"]["badTopK"]["value"];
    let body = json!({"image": STANDARD.encode(&p.images[0].2), "top_k": 11});
    let (status, v) = post(&p.agent, &p.predict(), "application/json", body.to_string().as_bytes());
    let mut got = typed::<ErrorBody>(&v);
    assert!(
        got.error.request_id.take().is_some(),
        "the answer names its request: {v}"
    );
    assert_eq!((status, got), (400, typed::<ErrorBody>(bad)));
}

fn every_answer_matches_openapi(p: &Pipeline) {
    let seen = p.work.path().join("responses.json");
    std::fs::write(&seen, SEEN.with(|s| serde_json::to_vec(&*s.borrow())).unwrap()).unwrap();
    let (ok, text) = e2e::run(
        Command::new(venv_tool("python"))
            .arg(root().join("scripts/validate_openapi.py"))
            .arg(root().join("openapi.yaml"))
            .arg(&seen),
    );
    assert!(ok, "OpenAPI validation: {text}");
}

fn the_page_in_chromium(p: &Pipeline) {
    let sample = p.work.path().join("cat.jpg");
    std::fs::write(&sample, &p.images.iter().find(|(c, _, _)| c == "cat").unwrap().2).unwrap();
    let (ok, text) = e2e::run(
        Command::new("node")
            .arg("--test")
            .arg(root().join("tests/web/page.test.mjs"))
            .env("BASE_URL", &p.watch.base)
            .env("IMAGE", &sample),
    );
    assert!(ok, "page test: {text}");
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn train_publish_serve_and_refuse_bad_input() {
    let work = tempfile::tempdir().expect("tempdir");
    let s3 = S3Server::with_bucket(work.path(), "models");
    let run = stage("train a tiny model and publish it to S3", || {
        train_and_publish(work.path(), &s3)
    });
    let (watch, model) = stage("the function serves it through the pointer", || {
        serve_through_the_pointer(&s3, &run, work.path())
    });
    let images = sample_images(2);
    let (folder, expected, truth) = stage("trainer evaluate scores the model file", || {
        expected_from_the_model_file(work.path(), &run, &images)
    });
    let p = Pipeline {
        work,
        watch,
        agent: http(),
        labels: model.labels,
        images,
        folder,
        expected,
        truth,
    };
    stage("JSON, raw and batch requests agree with the model file", || {
        the_three_request_forms_agree_with_the_model_file(&p)
    });
    stage("classify-client agrees with the model file", || {
        the_client_agrees_with_the_model_file(&p)
    });
    stage("bad requests get documented 4xx errors", || {
        bad_requests_get_documented_errors(&p)
    });
    stage("CORS and min_probability", || cors_and_min_probability(&p));
    stage("the spec's examples work against the function", || {
        the_specs_examples_work_against_the_function(&p)
    });
    stage("every answer matches openapi.yaml", || every_answer_matches_openapi(&p));
    stage("the page in headless Chromium", || the_page_in_chromium(&p));
}
