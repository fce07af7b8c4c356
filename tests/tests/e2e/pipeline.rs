//! Trainer -> S3 (moto_server on loopback) -> function under `cargo lambda watch` -> HTTP.
//! Needs `make setup` (the .venv with cargo-lambda and moto) and release binaries
//! (`make test` provides both), hence `#[ignore]` for a plain `cargo test`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use e2e::*;
use serde_json::{Value, json};

const FUNCTION: &str = "classify";

struct Watch {
    _service: Service,
    base: String,
}

fn start_function(env: &[(&'static str, String)], logs: &std::path::Path) -> Watch {
    let port = free_port();
    let mut cmd = Command::new(venv_tool("cargo-lambda"));
    cmd.current_dir(root())
        .args([
            "lambda",
            "watch",
            "--release",
            "--disable-cors",
            "-p",
            FUNCTION,
            "--bin",
            FUNCTION,
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .env(
            "PATH",
            format!(
                "{}:{}",
                root().join(".venv/bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut service = Service::spawn("cargo-lambda-watch", cmd, logs);
    let base = format!("http://127.0.0.1:{port}/lambda-url/{FUNCTION}");
    let agent = http();
    let health = format!("{base}/health");
    service.wait_until(Duration::from_secs(600), || {
        agent
            .get(&health)
            .call()
            .map(|r| r.status().as_u16() == 200)
            .unwrap_or(false)
    });
    Watch {
        _service: service,
        base,
    }
}

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

fn probabilities_by_label(result: &Value) -> BTreeMap<String, f64> {
    result["predictions"]
        .as_array()
        .expect("predictions")
        .iter()
        .map(|p| {
            (
                p["label"].as_str().unwrap().to_string(),
                p["probability"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn train_publish_serve_and_refuse_bad_input() {
    let work = tempfile::tempdir().expect("tempdir");
    let logs = work.path();
    let s3 = S3Server::start(logs);
    s3.create_bucket("models");

    // 1. Train a tiny model on real images and publish it to S3.
    let run = work.path().join("run");
    let out = Command::new(bin("trainer"))
        .args(["train", "--preset", "tiny", "--data"])
        .arg(dataset_tgz())
        .arg("--out")
        .arg(&run)
        .output()
        .expect("trainer runs");
    assert!(
        out.status.success(),
        "train failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(bin("trainer"))
        .args(["publish", "--run"])
        .arg(&run)
        .args(["--to", "s3://models/e2e/"])
        .envs(s3.env())
        .output()
        .expect("publish runs");
    assert!(
        out.status.success(),
        "publish failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 2. The function loads it through the pointer.
    let mut env = s3.env();
    env.push(("MODEL_URI", "s3://models/e2e/models/latest.json".into()));
    env.push(("ALLOWED_ORIGINS", "https://app.example".into()));
    let watch = start_function(&env, logs);
    let agent = http();
    let (_, model) = get_json(&agent, &format!("{}/model", watch.base));
    assert_eq!(get_json(&agent, &format!("{}/health", watch.base)).0, 200);
    let metrics: Value = serde_json::from_slice(&std::fs::read(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(
        model["model_version"], metrics["model_version"],
        "function serves the published model"
    );

    // 3. Expected answers: `trainer evaluate` on the same files.
    let images = sample_images(2);
    let folder = work.path().join("eval");
    write_folder(&folder, &images);
    let preds = work.path().join("predictions.json");
    let out = Command::new(bin("trainer"))
        .args(["evaluate", "--model"])
        .arg(run.join("model.onnx"))
        .arg("--data")
        .arg(&folder)
        .arg("--predictions")
        .arg(&preds)
        .output()
        .expect("evaluate runs");
    assert!(
        out.status.success(),
        "evaluate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected: Value = serde_json::from_slice(&std::fs::read(&preds).unwrap()).unwrap();
    let expected_labels: BTreeMap<String, String> = expected
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: BTreeMap<String, Vec<f64>> = expected
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["file"].as_str().unwrap().to_string(),
                p["probabilities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect(),
            )
        })
        .collect();
    let labels: Vec<String> = serde_json::from_value(model["labels"].clone()).unwrap();
    let check = |file: &str, result: &Value| {
        let want = &expected[file];
        let got = probabilities_by_label(result);
        assert_eq!(got.len(), 10, "top_k=10 returns every class");
        for (i, label) in labels.iter().enumerate() {
            let d = (got[label] - want[i]).abs();
            assert!(
                d <= 1e-5,
                "{file} {label}: function {} vs evaluate {} (diff {d})",
                got[label],
                want[i]
            );
        }
    };
    let predict = format!("{}/predict", watch.base);
    let mut batch = Vec::new();
    for (class, name, bytes) in &images {
        let file = format!("{class}/{name}");
        let b64 = STANDARD.encode(bytes);
        let (status, single) = post(
            &agent,
            &predict,
            "application/json",
            json!({"image": b64, "top_k": 10}).to_string().as_bytes(),
        );
        assert_eq!(status, 200, "{single}");
        check(&file, &single);
        let (status, raw) = post(&agent, &format!("{predict}?top_k=10"), "image/jpeg", bytes);
        assert_eq!(status, 200, "{raw}");
        check(&file, &raw);
        batch.push(b64);
    }
    let (status, answer) = post(
        &agent,
        &predict,
        "application/json",
        json!({"images": batch, "top_k": 10}).to_string().as_bytes(),
    );
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().expect("results");
    assert_eq!(results.len(), images.len());
    for ((class, name, _), result) in images.iter().zip(results) {
        check(&format!("{class}/{name}"), result);
    }

    // 3b. The endpoint clients: `evaluate --url` scores the same folder to the same accuracy,
    // `classify --url` prints the same top label.
    let local_correct = expected_labels
        .iter()
        .filter(|(file, want)| {
            let row = &expected[*file];
            let best = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            labels[best] == **want
        })
        .count();
    let report = work.path().join("endpoint.json");
    let png = work.path().join("endpoint-confusion.png");
    let out = Command::new(bin("trainer"))
        .args(["evaluate", "--url", &watch.base, "--concurrency", "3", "--data"])
        .arg(&folder)
        .arg("--report")
        .arg(&report)
        .arg("--confusion-png")
        .arg(&png)
        .output()
        .expect("evaluate --url runs");
    assert!(
        out.status.success(),
        "evaluate --url: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(r["images"], images.len());
    assert_eq!(r["failed"], 0);
    let acc = r["accuracy"].as_f64().unwrap();
    assert!(
        (acc - local_correct as f64 / images.len() as f64).abs() < 1e-9,
        "endpoint {acc} vs local {local_correct}"
    );
    assert!(r["latency_p99_ms"].as_f64().unwrap() >= r["latency_p50_ms"].as_f64().unwrap());
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    let (class, name, bytes) = &images[0];
    let file = work.path().join(name);
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new(bin("trainer"))
        .args(["classify", "--json", "--url", &watch.base])
        .arg(&file)
        .output()
        .expect("classify runs");
    assert!(
        out.status.success(),
        "classify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = &expected[&format!("{class}/{name}")];
    let best = (0..want.len()).fold(0, |b, i| if want[i] > want[b] { i } else { b });
    assert_eq!(answers[0]["body"]["label"], labels[best].as_str());

    // 4. Bad requests: each a documented 4xx JSON error.
    let png_head = &images[0].2[..images[0].2.len() / 3];
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "invalid JSON",
            "application/json",
            b"{not json".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "missing field",
            "application/json",
            b"{\"picture\": \"x\"}".to_vec(),
            400,
            "missing_image",
        ),
        (
            "bad base64",
            "application/json",
            br#"{"image": "***"}"#.to_vec(),
            400,
            "invalid_base64",
        ),
        (
            "not an image",
            "application/json",
            json!({"image": STANDARD.encode("hello")}).to_string().into_bytes(),
            400,
            "invalid_image",
        ),
        ("truncated image", "image/jpeg", png_head.to_vec(), 400, "invalid_image"),
        (
            "top_k too big",
            "application/json",
            json!({"image": batch[0], "top_k": 11}).to_string().into_bytes(),
            400,
            "invalid_top_k",
        ),
        (
            "top_k zero",
            "application/json",
            json!({"image": batch[0], "top_k": 0}).to_string().into_bytes(),
            400,
            "invalid_top_k",
        ),
        (
            "empty batch",
            "application/json",
            br#"{"images": []}"#.to_vec(),
            400,
            "empty_batch",
        ),
        (
            "too many images",
            "application/json",
            json!({"images": vec![&batch[0]; 65]}).to_string().into_bytes(),
            413,
            "too_many_images",
        ),
        (
            "unsupported type",
            "text/plain",
            b"hello".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "tiff",
            "application/octet-stream",
            b"II*\0\x08\0\0\0rest".to_vec(),
            415,
            "unsupported_image_format",
        ),
        ("empty body", "image/png", Vec::new(), 400, "empty_body"),
    ];
    for (what, ct, body, status, code) in cases {
        let (got, v) = post(&agent, &predict, ct, &body);
        assert_eq!((got, v["error"]["code"].as_str()), (status, Some(code)), "{what}: {v}");
        assert!(
            v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: message"
        );
    }
    assert_eq!(get_json(&agent, &format!("{}/nope", watch.base)).0, 404);
    assert_eq!(get_json(&agent, &predict).0, 405);

    // 5. CORS preflight from an allowed origin, and still healthy afterwards.
    let r = agent
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
    let (class, name, bytes) = &images[0];
    let (status, again) = post(&agent, &format!("{predict}?top_k=10"), "image/jpeg", bytes);
    assert_eq!(status, 200);
    check(&format!("{class}/{name}"), &again);

    // 5b. "None of these": a threshold above the top-1 probability gives `label: null`
    // with the classes still listed (query for raw bodies, a field for JSON).
    let top1 = again["probability"].as_f64().unwrap();
    let strict = (top1 + 0.01).min(1.0);
    let (status, none) = post(
        &agent,
        &format!("{predict}?top_k=3&min_probability={strict}"),
        "image/jpeg",
        bytes,
    );
    assert_eq!(status, 200, "{none}");
    if top1 < 0.99 {
        assert!(none["label"].is_null() && none["matched"] == false, "{none}");
    }
    assert_eq!(none["predictions"].as_array().map(Vec::len), Some(3));
    let body = json!({"image": STANDARD.encode(bytes), "min_probability": 0.0});
    let (status, any) = post(&agent, &predict, "application/json", body.to_string().as_bytes());
    assert_eq!((status, any["matched"].as_bool()), (200, Some(true)), "{any}");
    assert_eq!(any["label"], again["label"]);

    // 6. Every answer above validates against openapi.yaml.
    let seen = work.path().join("responses.json");
    std::fs::write(&seen, SEEN.with(|s| serde_json::to_vec(&*s.borrow())).unwrap()).unwrap();
    let (ok, text) = e2e::run(
        Command::new(venv_tool("python"))
            .arg(root().join("scripts/validate_openapi.py"))
            .arg(root().join("openapi.yaml"))
            .arg(&seen),
    );
    assert!(ok, "OpenAPI validation: {text}");

    // 7. The page, in headless Chromium: a photo gets the API's label, a text file an error.
    let sample = work.path().join("cat.jpg");
    std::fs::write(&sample, &images.iter().find(|(c, _, _)| c == "cat").unwrap().2).unwrap();
    let (ok, text) = e2e::run(
        Command::new("node")
            .arg("--test")
            .arg(root().join("tests/web/page.test.mjs"))
            .env("BASE_URL", &watch.base)
            .env("IMAGE", &sample),
    );
    assert!(ok, "page test: {text}");
}
