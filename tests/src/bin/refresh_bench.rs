//! What following the pointer costs, against a real S3 server (moto on loopback), through
//! the function's runtime loop: the cold start (pointer + model fetch, then parse +
//! optimise + probe, as the function logs them), the time an unchanged-pointer check adds
//! to the request that triggers it, and request latency while a new model is swapped in.
//! `cargo run --release -p e2e --bin refresh_bench -- [REQUESTS]` (bounded: 10 min).

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::soak::event;
use e2e::*;

/// Run `requests` raw-JPEG predictions through the function; `during(i)` is called as the
/// i-th answer arrives. Per-request time is the gap between consecutive answers (the
/// function pulls the next event as soon as it answers). Returns those gaps and the log.
fn run(
    env: &[(&'static str, String)],
    requests: usize,
    work: &std::path::Path,
    mut during: impl FnMut(usize),
) -> (Vec<f64>, String) {
    let cat = std::fs::read(root().join("tests/fixtures/cat.jpg")).expect("cat.jpg");
    let events = (0..requests)
        .map(|_| event("POST", "/predict", "image/jpeg", &cat, true))
        .collect();
    let (port, rx) = runtime_api::start(events);
    let mut cmd = Command::new(bin("classify"));
    cmd.envs(runtime_api::lambda_env(port)).envs(env.iter().cloned());
    let service = Service::spawn("classify-bench", cmd, work);
    let limit = Instant::now() + Duration::from_secs(600);
    let (mut gaps, mut last) = (Vec::new(), None);
    for i in 0..requests {
        let (_, v) = rx
            .recv_timeout(limit.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("no answer {i}:\n{}", service.log_text()));
        assert_eq!(v["statusCode"], 200, "{v}");
        let now = Instant::now();
        if let Some(t) = last {
            gaps.push(now.duration_since(t).as_secs_f64() * 1e3);
        }
        last = Some(now);
        during(i);
    }
    (gaps, service.log_text())
}

/// The `fields` of each JSON log line that mentions `message`, in order.
fn logged<'a>(log: &'a str, message: &'a str) -> impl Iterator<Item = serde_json::Value> + 'a {
    log.lines()
        .filter(move |l| l.contains(message))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|mut v| v["fields"].take())
}

/// Fresh function processes started to time the cold start.
const COLD_STARTS: usize = 10;

fn row(name: &str, gaps: &mut [f64]) {
    gaps.sort_by(f64::total_cmp);
    println!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.1} |",
        gaps.len(),
        scoring::percentile(gaps, 0.5),
        scoring::percentile(gaps, 0.99),
        scoring::percentile(gaps, 0.999),
        gaps[gaps.len() - 1]
    );
}

fn main() {
    let requests: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3000);
    let work = tempfile::tempdir().expect("tempdir");
    let s3 = S3Server::with_bucket(work.path(), "models");
    let shipped = std::fs::read(root().join("models/cifar10.onnx")).expect("shipped model");
    let (run_a, run_b) = (work.path().join("a"), work.path().join("b"));
    let other = retrained(&shipped);
    for (dir, bytes) in [(&run_a, &shipped), (&run_b, &other)] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("model.onnx"), bytes).unwrap();
    }
    publish_run(&run_a, "s3://models/bench/", &s3);
    let mut env = s3.env();
    env.push(("MODEL_URI", "s3://models/bench/models/latest.json".into()));
    env.push(("RUST_LOG", "classify=debug,warn".into()));

    let mut off = env.clone();
    off.push(("MODEL_REFRESH_SECONDS", "0".into()));
    let (mut fetches, mut loads, mut colds) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..COLD_STARTS {
        let (_, log) = run(&off, 1, work.path(), |_| {});
        let fields = logged(&log, "model loaded")
            .map(|f| (f["fetch_ms"].as_f64(), f["optimise_ms"].as_f64()))
            .next();
        let Some((Some(fetch), Some(load))) = fields else {
            panic!("no \"model loaded\" line with fetch_ms and optimise_ms:\n{log}");
        };
        fetches.push(fetch);
        loads.push(load);
        colds.push(fetch + load);
    }
    let (mut base, _) = run(&off, requests, work.path(), |_| {});

    let mut on = env.clone();
    on.push(("MODEL_REFRESH_SECONDS", "1".into()));
    let (mut checked, log) = run(&on, requests, work.path(), |_| {});
    let mut checks: Vec<f64> = logged(&log, "pointer unchanged")
        .filter_map(|f| f["check_ms"].as_f64())
        .collect();

    // B goes up a quarter of the way in; the request that finds it pays for the swap.
    let (mut swapping, log) = run(&on, requests, work.path(), |i| {
        if i == requests / 4 {
            publish_run(&run_b, "s3://models/bench/", &s3);
        }
    });
    let swapped = log.contains("model refreshed");

    println!("| cold start, shipped model from S3 ({COLD_STARTS} starts) | p50 ms | max ms |");
    println!("| --- | ---: | ---: |");
    for (name, v) in [
        ("pointer + model fetch", &mut fetches),
        ("parse + optimise + probe", &mut loads),
        ("total", &mut colds),
    ] {
        v.sort_by(f64::total_cmp);
        println!(
            "| {name} | {:.1} | {:.1} |",
            scoring::percentile(v, 0.5),
            v[v.len() - 1]
        );
    }
    println!();
    println!("| requests (raw 32x32 JPEG, tests/fixtures/cat.jpg) | n | p50 ms | p99 ms | p99.9 ms | max ms |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    row("refresh off", &mut base);
    row("refresh every 1 s, pointer unchanged", &mut checked);
    row("refresh every 1 s, B published mid-run", &mut swapping);
    checks.sort_by(f64::total_cmp);
    if checks.is_empty() {
        println!("\nno pointer checks logged");
    } else {
        println!(
            "\nunchanged-pointer check (conditional GET, 304), added to its request: n {} p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            checks.len(),
            scoring::percentile(&checks, 0.5),
            scoring::percentile(&checks, 0.99),
            checks[checks.len() - 1]
        );
    }
    let swap_ms = logged(&log, "model refreshed").find_map(|f| f["swap_ms"].as_f64());
    println!("swap happened: {swapped}; fetch + verify + optimise + probe on the swapping request: {swap_ms:?} ms");
}
