//! `cargo run --release -p bench --bin function-bench`: whole-handler latency, cold start, and
//! tract against ONNX Runtime on the same file, printed as tables (no timed tests).

use std::io::{BufRead, BufReader, Cursor};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use classify::settings::Settings;
use serde_json::json;

/// The function's allocator (see `main.rs`), so the rows time what Lambda runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Args {
    model: PathBuf,
    /// A model file without the `ood_score` output, to time what that output costs.
    previous: Option<PathBuf>,
    iterations: usize,
    ort_python: Option<String>,
    /// Built `bootstrap` binaries (host architecture) to time against each other instead.
    bootstraps: Vec<PathBuf>,
}

fn args() -> Args {
    let mut a = Args {
        model: "models/cifar10.onnx".into(),
        previous: None,
        iterations: 300,
        ort_python: None,
        bootstraps: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--model" => a.model = it.next().expect("--model PATH").into(),
            "--previous-model" => a.previous = Some(it.next().expect("--previous-model PATH").into()),
            "--iterations" => a.iterations = it.next().and_then(|v| v.parse().ok()).expect("--iterations N"),
            "--ort-python" => a.ort_python = it.next(),
            "--bootstrap" => a.bootstraps.push(it.next().expect("--bootstrap PATH").into()),
            "--help" | "-h" => {
                println!(
                    "bench [--model PATH] [--previous-model PATH] [--iterations N] [--ort-python PYTHON-WITH-ONNXRUNTIME]\n\
                     bench --bootstrap PATH [--bootstrap PATH ...] [--iterations N]: built bootstraps' handler p50s, alternating"
                );
                std::process::exit(0);
            }
            other => panic!("unknown flag {other}"),
        }
    }
    a
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn time_ms(n: usize, mut f: impl FnMut()) -> Vec<f64> {
    f(); // warm-up
    let mut v: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v
}

fn event(content_type: &str, body: String, b64: bool) -> ApiGatewayV2httpRequest {
    serde_json::from_value(json!({
        "version": "2.0", "rawPath": "/predict", "headers": {"content-type": content_type},
        "requestContext": {"http": {"method": "POST", "path": "/predict"}, "requestId": "bench", "timeEpoch": 0},
        "body": body, "isBase64Encoded": b64,
    }))
    .expect("event")
}

/// Time the whole handler on `ev` (its capture records and metric line serialised, as
/// `handle` prints them) and print one `| label | name | p50 | p99 |` row.
fn timed_row(app: &classify::App, ev: &ApiGatewayV2httpRequest, iterations: usize, label: &str, name: &str) {
    let t = time_ms(iterations, || {
        let (r, metrics) = app.respond(ev);
        for record in &metrics.captured {
            std::hint::black_box(serde_json::to_string(record).unwrap());
        }
        std::hint::black_box(metrics.emf(0).to_string());
        assert_eq!(r.status_code, 200);
    });
    println!(
        "| {label} | {name} | {:.2} | {:.2} |",
        percentile(&t, 0.5),
        percentile(&t, 0.99)
    );
}

fn encode(img: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).expect("encode");
    buf.into_inner()
}

fn main() {
    let args = args();
    let bytes = std::fs::read(&args.model).unwrap_or_else(|e| panic!("{}: {e}", args.model.display()));
    println!(
        "model {} ({} bytes), {} iterations, 1 thread\n",
        args.model.display(),
        bytes.len(),
        args.iterations
    );

    // Cold start: parse + optimise (the S3 fetch is network time, not measured here).
    let loads = time_ms(20, || {
        inference::Classifier::from_bytes(&bytes).expect("model loads");
    });
    println!("| cold start | p50 ms | p99 ms |\n|---|---|---|");
    println!(
        "| model parse + tract optimise | {:.1} | {:.1} |\n",
        percentile(&loads, 0.5),
        percentile(&loads, 0.99)
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let settings = Settings {
        model_uri: Some(format!("file://{}", args.model.display())),
        ..Settings::default()
    };
    let app = rt.block_on(classify::init(settings)).expect("init");

    let small = encode(
        image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 90])).into(),
        image::ImageFormat::Png,
    );
    let photo = encode(
        image::RgbImage::from_fn(1024, 768, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x + y) % 256) as u8])
        })
        .into(),
        image::ImageFormat::Jpeg,
    );
    // Phone-photo sizes: smooth gradients plus per-pixel noise of amplitude `noise`.
    let pixels = |w: u32, h: u32, noise: u64| {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        image::RgbImage::from_fn(w, h, |x, y| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let n = (state % noise) as u32;
            image::Rgb([
                ((x * 255 / w + n) % 256) as u8,
                ((y * 255 / h + n) % 256) as u8,
                (((x + y) * 128 / (w + h) + 60 + n) % 256) as u8,
            ])
        })
    };
    // The worst case for entropy decoding: image's encoder (quality 75, full-resolution
    // chroma, twice the blocks of a phone's file) at noise 24, where nearly every DCT
    // coefficient is non-zero.
    let phone = |w: u32, h: u32, noise: u64| encode(pixels(w, h, noise).into(), image::ImageFormat::Jpeg);
    // What phone cameras write: 4:2:0 chroma at quality 90; noise 8 gives 1.9 MB at 12 MP,
    // a little over the 1.6 MB of the photo the speed issue was filed with.
    let camera = |w: u32, h: u32| {
        let mut out = Vec::new();
        let mut enc = jpeg_encoder::Encoder::new(&mut out, 90);
        enc.set_sampling_factor(jpeg_encoder::SamplingFactor::F_2_2);
        enc.encode(
            pixels(w, h, 8).as_raw(),
            w as u16,
            h as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("encodes");
        out
    };
    let (mp12, mp2, mp12_mild) = (phone(4032, 3024, 24), phone(1600, 1200, 24), phone(4032, 3024, 4));
    let (cam12, cam2) = (camera(4032, 3024), camera(1600, 1200));
    let mb = |b: &[u8]| b.len() as f64 / 1e6;
    let batch: Vec<String> = (0..32).map(|_| STANDARD.encode(&small)).collect();
    let cases = [
        (
            "32x32 PNG, raw body".to_string(),
            event("image/png", STANDARD.encode(&small), true),
        ),
        (
            "1024x768 JPEG, raw body".to_string(),
            event("image/jpeg", STANDARD.encode(&photo), true),
        ),
        (
            format!("4032x3024 JPEG (12 MP, noise 24, {:.1} MB), raw body", mb(&mp12)),
            event("image/jpeg", STANDARD.encode(&mp12), true),
        ),
        (
            format!("4032x3024 JPEG (12 MP, noise 4, {:.1} MB), raw body", mb(&mp12_mild)),
            event("image/jpeg", STANDARD.encode(&mp12_mild), true),
        ),
        (
            format!("1600x1200 JPEG (2 MP, noise 24, {:.1} MB), raw body", mb(&mp2)),
            event("image/jpeg", STANDARD.encode(&mp2), true),
        ),
        (
            format!(
                "4032x3024 camera JPEG (12 MP, 4:2:0, q90, {:.1} MB), raw body",
                mb(&cam12)
            ),
            event("image/jpeg", STANDARD.encode(&cam12), true),
        ),
        (
            format!(
                "1600x1200 camera JPEG (2 MP, 4:2:0, q90, {:.1} MB), raw body",
                mb(&cam2)
            ),
            event("image/jpeg", STANDARD.encode(&cam2), true),
        ),
        (
            "batch of 32 PNGs, JSON".to_string(),
            event("application/json", json!({"images": batch}).to_string(), false),
        ),
    ];
    if !args.bootstraps.is_empty() {
        let rows: Vec<_> = cases
            .into_iter()
            .filter(|(n, _)| n.starts_with("32x32") || n.starts_with("4032x3024 camera"))
            .collect();
        built_bootstraps(&args.bootstraps, &rows, args.iterations);
        return;
    }
    println!("| whole handler | p50 ms | p99 ms |\n|---|---|---|");
    for (name, ev) in &cases {
        let t = time_ms(args.iterations, || {
            // What `handle` does, its metric line built but not printed over the table.
            let (r, metrics) = app.respond(ev);
            std::hint::black_box(metrics.emf(0).to_string());
            assert_eq!(r.status_code, 200);
        });
        println!("| {name} | {:.2} | {:.2} |", percentile(&t, 0.5), percentile(&t, 0.99));
    }

    // Capture (CAPTURE_PERCENT=100): every image's 32x32 PNG and answer serialised as a
    // log line, against capture off, on the same events and the same model.
    let capturing = rt
        .block_on(classify::init(Settings {
            model_uri: Some(format!("file://{}", args.model.display())),
            capture_percent: 100,
            ..Settings::default()
        }))
        .expect("init");
    println!("\n| capture | event | p50 ms | p99 ms |\n|---|---|---|---|");
    for (name, ev) in cases
        .iter()
        .filter(|(n, _)| n.starts_with("32x32") || n.starts_with("1024") || n.starts_with("batch"))
    {
        for (label, app) in [("off", &app), ("100 %", &capturing)] {
            timed_row(app, ev, args.iterations, label, name);
        }
    }

    // What the uncertainty answers cost: the same raw-body events on the model file from
    // before the `ood_score` output (when given), and with `explain=true` (occlusion: one
    // forward pass per cell of the saliency grid).
    let mut variants: Vec<(String, classify::App, bool)> = Vec::new();
    if let Some(previous) = &args.previous {
        let before = rt
            .block_on(classify::init(Settings {
                model_uri: Some(format!("file://{}", previous.display())),
                ..Settings::default()
            }))
            .expect("init previous");
        variants.push(("previous model (no ood_score)".into(), before, false));
    }
    let current = || {
        rt.block_on(classify::init(Settings {
            model_uri: Some(format!("file://{}", args.model.display())),
            ..Settings::default()
        }))
        .expect("init")
    };
    variants.push(("this model".into(), current(), false));
    variants.push(("this model, explain=true".into(), current(), true));
    println!("\n| uncertainty | event | p50 ms | p99 ms |\n|---|---|---|---|");
    for (name, ev) in cases
        .iter()
        .filter(|(n, _)| n.starts_with("32x32") || n.starts_with("1024"))
    {
        for (label, app, explain) in &variants {
            let ev: ApiGatewayV2httpRequest = if *explain {
                let mut v = serde_json::to_value(ev).expect("event");
                v["queryStringParameters"] = json!({"explain": "true"});
                v["rawQueryString"] = json!("explain=true");
                serde_json::from_value(v).expect("event")
            } else {
                ev.clone()
            };
            timed_row(app, &ev, args.iterations, label, name);
        }
    }

    // Where a photo's time goes: decoding to 32x32 alone (the rest is the model).
    println!("\n| decode + resize to 32x32 only | p50 ms | p99 ms |\n|---|---|---|");
    for (name, jpeg) in [
        ("12 MP, noise 24", &mp12),
        ("12 MP, noise 4", &mp12_mild),
        ("2 MP, noise 24", &mp2),
        ("12 MP camera, 4:2:0 q90", &cam12),
        ("2 MP camera, 4:2:0 q90", &cam2),
    ] {
        let limits = contract::DecodeLimits::default();
        let t = time_ms(args.iterations, || {
            contract::decode_rgb32(jpeg, &limits).expect("decodes");
        });
        println!("| {name} | {:.2} | {:.2} |", percentile(&t, 0.5), percentile(&t, 0.99));
    }

    // tract and ONNX Runtime take turns, ROUNDS times, and each row is the median of its
    // rounds: this machine drifts by 10-30 % over a minute, and one run of each engine in
    // turn would charge that drift to whichever ran in the slower stretch.
    const ROUNDS: usize = 5;
    const BATCHES: [usize; 2] = [1, 32];
    let mut tract_rounds = vec![Vec::new(); BATCHES.len()];
    let mut ort_rounds = vec![Vec::new(); BATCHES.len()];
    let mut ort_version = String::new();
    for _ in 0..ROUNDS {
        for (i, n) in BATCHES.into_iter().enumerate() {
            let images = vec![[7u8; contract::IMAGE_BYTES]; n];
            let t = time_ms(args.iterations / n.clamp(1, 8), || {
                app.served()
                    .current
                    .classifier
                    .probabilities(&images)
                    .expect("inference");
            });
            tract_rounds[i].push(percentile(&t, 0.5));
        }
        let Some(py) = &args.ort_python else { continue };
        let out = Command::new(py)
            .arg("scripts/ort_bench.py")
            .arg(&args.model)
            .arg(args.iterations.to_string())
            .output()
            .expect("python runs");
        if !out.status.success() {
            println!("onnxruntime bench failed: {}", String::from_utf8_lossy(&out.stderr));
            return;
        }
        let ort: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ort JSON");
        ort_version = ort["version"].as_str().unwrap_or("?").to_string();
        for (i, n) in BATCHES.into_iter().enumerate() {
            ort_rounds[i].push(ort[n.to_string()].as_f64().unwrap());
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "\n| engine ({ROUNDS} alternating rounds, median) | batch | ms per call (p50) | ms per image |\n|---|---|---|---|"
    );
    for (i, n) in BATCHES.into_iter().enumerate() {
        // Each round's own ratio, in the order they ran.
        let ratios: Vec<String> = tract_rounds[i]
            .iter()
            .zip(&ort_rounds[i])
            .map(|(t, o)| format!("{:.2}", t / o))
            .collect();
        let tract = median(&mut tract_rounds[i]);
        println!("| tract | {n} | {tract:.3} | {:.3} |", tract / n as f64);
        if ort_rounds[i].is_empty() {
            continue;
        }
        let ort = median(&mut ort_rounds[i]);
        println!("| onnxruntime {ort_version} | {n} | {ort:.3} | {:.3} |", ort / n as f64);
        println!(
            "| **tract / onnxruntime** | {n} | **{:.2}x** | per round: {} |",
            tract / ort,
            ratios.join(", ")
        );
    }
}

/// The deployed build rather than this binary's profile: each built `bootstrap` (the
/// `lambda` profile for the host, say) answers under a loopback runtime API, and its
/// handler latency is read from its own metric lines. The binaries take turns, ROUNDS
/// times, so this machine's drift lands on all of them alike.
fn built_bootstraps(paths: &[PathBuf], cases: &[(String, ApiGatewayV2httpRequest)], iterations: usize) {
    const ROUNDS: usize = 5;
    let mut p50s = vec![vec![Vec::new(); cases.len()]; paths.len()];
    for _ in 0..ROUNDS {
        for (b, path) in paths.iter().enumerate() {
            for (c, (_, ev)) in cases.iter().enumerate() {
                let mut t = serve_built(path, ev, iterations);
                t.sort_by(f64::total_cmp);
                p50s[b][c].push(percentile(&t, 0.5));
            }
        }
    }
    println!("| bootstrap ({ROUNDS} alternating rounds: median of per-round p50 ms) | event | p50 ms | per round |");
    println!("|---|---|---|---|");
    for (path, per_case) in paths.iter().zip(p50s) {
        for ((name, _), rounds) in cases.iter().zip(per_case) {
            let each: Vec<String> = rounds.iter().map(|v| format!("{v:.2}")).collect();
            let mut sorted = rounds.clone();
            sorted.sort_by(f64::total_cmp);
            println!(
                "| {} | {name} | {:.2} | {} |",
                path.display(),
                percentile(&sorted, 0.5),
                each.join(", ")
            );
        }
    }
}

/// The handler latencies of `iterations` answers from the bootstrap at `path` to `ev`,
/// after one more that pays for its start.
fn serve_built(path: &Path, ev: &ApiGatewayV2httpRequest, iterations: usize) -> Vec<f64> {
    let event = serde_json::to_value(ev).expect("event");
    let (port, answers) = e2e::runtime_api::start(vec![event; iterations + 1]);
    let mut child = Command::new(path)
        .envs(e2e::runtime_api::lambda_env(port))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let stdout = child.stdout.take().expect("piped");
    let (tx, latencies) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let (Some("/predict"), Some(ms)) = (v["Route"].as_str(), v["Latency"].as_f64()) {
                let _ = tx.send(ms);
            }
        }
    });
    let wait = Duration::from_secs(120);
    for _ in 0..=iterations {
        let (_, answer) = answers.recv_timeout(wait).expect("the bootstrap answers");
        assert_eq!(answer["statusCode"], 200, "{answer}");
    }
    let t: Vec<f64> = (0..=iterations)
        .map(|_| latencies.recv_timeout(wait).expect("a metric line per answer"))
        .skip(1)
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    t
}
