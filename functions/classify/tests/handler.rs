//! The handler in process, on the embedded model: routes, the three request forms,
//! CORS, and every kind of bad input answered with a 4xx JSON error.

use std::io::Cursor;
use std::sync::OnceLock;

use api::{BatchPredictResponse, ErrorBody, ErrorCode, Health, ModelInfo, PredictResponse};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use classify::App;
use classify::settings::Settings;
use image::{DynamicImage, ImageFormat, RgbImage, RgbaImage};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let settings = Settings {
            allowed_origins: vec!["https://app.example".into()],
            max_images: 4,
            max_body_bytes: 200_000,
            ..Settings::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(classify::init(settings)).expect("embedded model loads")
    })
}

/// An API Gateway v2 (HTTP API / function URL) event, as the runtime delivers it.
fn event(method: &str, path: &str, headers: Value, body: Option<&[u8]>, query: &str) -> ApiGatewayV2httpRequest {
    let (body, b64) = match body {
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => (Some(s.to_string()), false),
            Err(_) => (Some(STANDARD.encode(b)), true),
        },
        None => (None, false),
    };
    let qs: serde_json::Map<String, Value> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    serde_json::from_value(json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "queryStringParameters": qs,
        "requestContext": {
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"},
            "requestId": "req-1", "stage": "$default", "timeEpoch": 0
        },
        "body": body,
        "isBase64Encoded": b64,
    }))
    .expect("valid event")
}

/// The body as the API type it must be; a body of another shape fails the test.
fn body<T: DeserializeOwned>(r: &ApiGatewayV2httpResponse) -> T {
    match &r.body {
        Some(Body::Text(t)) => serde_json::from_str(t).unwrap_or_else(|e| panic!("{e}: {t}")),
        other => panic!("expected a text body, got {other:?}"),
    }
}

fn error_code(r: &ApiGatewayV2httpResponse) -> (i64, ErrorCode) {
    let e: ErrorBody = body(r);
    assert!(!e.error.message.is_empty());
    assert_eq!(i64::from(e.error.code.status()), r.status_code);
    (r.status_code, e.error.code)
}

fn encode(img: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

fn sample_png() -> Vec<u8> {
    encode(
        RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 8) as u8, (y * 8) as u8, 128])).into(),
        ImageFormat::Png,
    )
}

fn predict_json(body: Value) -> ApiGatewayV2httpResponse {
    app().handle(&event(
        "POST",
        "/predict",
        json!({"content-type": "application/json"}),
        Some(body.to_string().as_bytes()),
        "",
    ))
}

/// A raw-body `POST /predict`.
fn raw(content_type: &str, bytes: &[u8], query: &str) -> ApiGatewayV2httpResponse {
    app().handle(&event(
        "POST",
        "/predict",
        json!({"content-type": content_type}),
        Some(bytes),
        query,
    ))
}

#[test]
fn health_and_model_describe_the_model() {
    let r = app().handle(&event("GET", "/health", json!({}), None, ""));
    assert_eq!(r.status_code, 200);
    let health: Health = body(&r);
    assert_eq!(health.model_version, app().served().current.classifier.version());
    assert!(!health.refresh.enabled, "an embedded model has no pointer to follow");
    let m: ModelInfo = body(&app().handle(&event("GET", "/model", json!({}), None, "")));
    assert_eq!(m.labels.len(), 10);
    assert_eq!(m.labels[3], "cat");
    assert_eq!(m.input.width, 32);
    assert_eq!(m.limits.max_images, 4);
    assert_eq!((m.limits.top_k.default, m.limits.top_k.max), (5, 10));
    let page = app().handle(&event("GET", "/", json!({}), None, ""));
    assert_eq!(page.status_code, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
}

#[test]
fn json_raw_and_batch_agree() {
    let png = sample_png();
    let single = predict_json(json!({"image": STANDARD.encode(&png), "top_k": 3}));
    assert_eq!(single.status_code, 200, "{:?}", single.body);
    let single: PredictResponse = body(&single);
    assert_eq!(single.result.predictions.len(), 3);
    assert_eq!(single.result.label.as_ref(), Some(&single.result.predictions[0].label));
    assert_eq!(single.model_version, app().served().current.classifier.version());
    let r = predict_json(json!({"image": STANDARD.encode(&png)}));
    assert_eq!(
        r.headers[api::MODEL_VERSION_HEADER],
        app().served().current.classifier.version()
    );
    let p: Vec<f32> = single.result.predictions.iter().map(|p| p.probability).collect();
    assert!(p.windows(2).all(|w| w[0] >= w[1]), "sorted: {p:?}");

    let data_url = format!("data:image/png;base64,{}", STANDARD.encode(&png));
    let answer = raw("image/png", &png, "top_k=3");
    assert_eq!(answer.status_code, 200);
    assert_eq!(body::<PredictResponse>(&answer).result, single.result);

    let other = encode(
        RgbaImage::from_pixel(300, 200, image::Rgba([200, 30, 30, 255])).into(),
        ImageFormat::Png,
    );
    let batch: BatchPredictResponse = body(&predict_json(
        json!({"images": [data_url, STANDARD.encode(&other)], "top_k": 3}),
    ));
    assert_eq!(batch.results.len(), 2);
    assert_eq!(batch.results[0], single.result);
    // A batch of one is still a batch.
    let one: BatchPredictResponse = body(&predict_json(json!({"images": [STANDARD.encode(&png)], "top_k": 3})));
    assert_eq!(one.results, std::slice::from_ref(&single.result));
    let full: PredictResponse = body(&predict_json(json!({"image": STANDARD.encode(&png), "top_k": 10})));
    let total: f32 = full.result.predictions.iter().map(|p| p.probability).sum();
    assert!((total - 1.0).abs() < 1e-4, "probabilities sum to {total}");
}

#[test]
fn min_probability_turns_a_weak_top_class_into_no_match() {
    let png = STANDARD.encode(sample_png());
    let plain = body::<PredictResponse>(&predict_json(json!({"image": png, "top_k": 3}))).result;
    let top1 = f64::from(plain.probability);
    assert!(plain.matched);
    // Just above the top-1 probability: no class, the top-k still listed.
    let strict = body::<PredictResponse>(&predict_json(
        json!({"image": png, "top_k": 3, "min_probability": (top1 + 1e-3).min(1.0)}),
    ))
    .result;
    assert!(!strict.matched);
    assert_eq!(strict.label, None);
    assert_eq!(strict.predictions, plain.predictions);
    // Just below: the same answer as without a threshold.
    let lenient = body::<PredictResponse>(&predict_json(
        json!({"image": png, "top_k": 3, "min_probability": top1 - 1e-3}),
    ))
    .result;
    assert_eq!(lenient, plain);
    // The raw-body form takes it from the query string.
    let from_query = body::<PredictResponse>(&raw("image/png", &sample_png(), "min_probability=1")).result;
    assert!(
        from_query.label.is_none() || from_query.probability == 1.0,
        "{from_query:?}"
    );
    for bad in [json!(1.5), json!(-0.1), json!("x"), json!([0.5])] {
        let r = predict_json(json!({"image": png, "min_probability": bad}));
        assert_eq!(error_code(&r), (400, ErrorCode::InvalidMinProbability), "{bad}");
    }
}

#[test]
fn bad_input_gets_a_4xx_json_error() {
    let png = sample_png();
    let b64 = STANDARD.encode(&png);
    let big = STANDARD.encode(vec![0u8; 300_000]);
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        ("images not a list", json!({"images": b64}), 400, "invalid_json"),
        ("not an object", json!([b64]), 400, "invalid_json"),
        (
            "batch item not a string",
            json!({"images": [b64, 7]}),
            400,
            "invalid_image_field",
        ),
        (
            "batch item not an image",
            json!({"images": [b64, STANDARD.encode("text")]}),
            400,
            "invalid_image",
        ),
        ("missing field", json!({"img": b64}), 400, "missing_image"),
        (
            "both fields",
            json!({"image": b64, "images": [b64]}),
            400,
            "ambiguous_request",
        ),
        ("bad base64", json!({"image": "%%%"}), 400, "invalid_base64"),
        ("not a string", json!({"image": 5}), 400, "invalid_image_field"),
        (
            "not an image",
            json!({"image": STANDARD.encode("plain text")}),
            400,
            "invalid_image",
        ),
        (
            "truncated",
            json!({"image": STANDARD.encode(&png[..png.len() / 2])}),
            400,
            "invalid_image",
        ),
        ("top_k 0", json!({"image": b64, "top_k": 0}), 400, "invalid_top_k"),
        ("top_k 11", json!({"image": b64, "top_k": 11}), 400, "invalid_top_k"),
        (
            "top_k text",
            json!({"image": b64, "top_k": "many"}),
            400,
            "invalid_top_k",
        ),
        ("empty batch", json!({"images": []}), 400, "empty_batch"),
        (
            "batch too big",
            json!({"images": [b64, b64, b64, b64, b64]}),
            413,
            "too_many_images",
        ),
        ("body too big", json!({"image": big}), 413, "payload_too_large"),
    ];
    for (what, body, status, code) in cases {
        let r = predict_json(body);
        let code: ErrorCode = serde_json::from_value(json!(code)).unwrap();
        assert_eq!(error_code(&r), (i64::from(status), code), "{what}: {:?}", r.body);
    }
    let r = predict_json(json!({"images": [b64, STANDARD.encode("text")]}));
    assert!(
        body::<ErrorBody>(&r).error.message.starts_with("images[1]: "),
        "{:?}",
        r.body
    );
    let huge = encode(RgbImage::new(5000, 10).into(), ImageFormat::Png);
    let raw_cases: [(&str, &str, &[u8], &str, ErrorCode); 4] = [
        ("over the side limit", "image/png", &huge, "", ErrorCode::ImageTooLarge),
        (
            "not an image type",
            "text/csv",
            b"a,b",
            "",
            ErrorCode::UnsupportedMediaType,
        ),
        ("broken JSON", "application/json", b"{oops", "", ErrorCode::InvalidJson),
        (
            "top_k in the query",
            "image/png",
            &png,
            "top_k=99",
            ErrorCode::InvalidTopK,
        ),
    ];
    for (what, content_type, bytes, query, code) in raw_cases {
        let r = raw(content_type, bytes, query);
        assert_eq!(error_code(&r), (i64::from(code.status()), code), "{what}");
    }
}

#[test]
fn routes_methods_and_cors() {
    let r = app().handle(&event("GET", "/missing", json!({}), None, ""));
    assert_eq!(error_code(&r), (404, ErrorCode::NotFound));
    let r = app().handle(&event("GET", "/predict", json!({}), None, ""));
    assert_eq!(error_code(&r), (405, ErrorCode::MethodNotAllowed));
    assert_eq!(r.headers["allow"], "POST");
    let r = app().handle(&event("DELETE", "/health", json!({}), None, ""));
    assert_eq!(error_code(&r), (405, ErrorCode::MethodNotAllowed));
    assert_eq!(r.headers["allow"], "GET");
    // Every route answers its own method (with no body, predict refuses the body only;
    // feedback is off without FEEDBACK_URI).
    for route in classify::routes::Route::ALL {
        let r = app().handle(&event(route.method().as_str(), route.path(), json!({}), None, ""));
        match route {
            classify::routes::Route::Predict => assert_eq!(error_code(&r), (400, ErrorCode::EmptyBody)),
            classify::routes::Route::Feedback => assert_eq!(error_code(&r), (404, ErrorCode::NotFound)),
            _ => assert_eq!(r.status_code, 200, "{route:?}"),
        }
    }

    let pre = app().handle(&event(
        "OPTIONS",
        "/predict",
        json!({"origin": "https://app.example"}),
        None,
        "",
    ));
    assert_eq!(pre.status_code, 204);
    assert_eq!(pre.headers["access-control-allow-origin"], "https://app.example");
    assert!(
        pre.headers["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let other = app().handle(&event(
        "GET",
        "/health",
        json!({"origin": "https://evil.example"}),
        None,
        "",
    ));
    assert!(other.headers.get("access-control-allow-origin").is_none());
    // A named stage prefixes the path.
    let mut staged = event("GET", "/prod/health", json!({}), None, "");
    staged.request_context.stage = Some("prod".into());
    assert_eq!(app().handle(&staged).status_code, 200);
}

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

/// Every request example in openapi.yaml is a real request the function answers with 200.
#[test]
fn the_specs_request_examples_are_accepted() {
    let spec = spec();
    let examples = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap();
    let mut tried = 0;
    for (name, example) in examples {
        let r = predict_json(example["value"].clone());
        assert_eq!(r.status_code, 200, "{name}: {:?}", r.body);
        tried += 1;
    }
    assert_eq!(tried, 3, "single, data URL and batch examples");
}

/// Events in the exact shape API Gateway's HTTP API sends (payload 2.0: forwarded headers,
/// request context with account, domain, stage and time, cookies, base64 flag on and off),
/// one per route and body kind, with the answer each must get.
#[test]
fn recorded_http_api_events_get_their_documented_answers() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/apigw-v2");
    let expected: std::collections::BTreeMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/expected.json")).unwrap()).unwrap();
    assert!(expected.len() >= 9);
    for (name, want) in &expected {
        let text = std::fs::read_to_string(format!("{dir}/{name}.json")).unwrap();
        let event: ApiGatewayV2httpRequest = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let r = app().handle(&event);
        assert_eq!(r.status_code, want["status"].as_i64().unwrap(), "{name}: {:?}", r.body);
        if let Some(code) = want.get("code") {
            let code: ErrorCode = serde_json::from_value(code.clone()).unwrap();
            assert_eq!(error_code(&r).1, code, "{name}");
        }
        if let Some(k) = want.get("predictions") {
            let p: PredictResponse = body(&r);
            assert_eq!(p.result.predictions.len() as u64, k.as_u64().unwrap(), "{name}");
        }
        if let Some(n) = want.get("results") {
            let b: BatchPredictResponse = body(&r);
            assert_eq!(b.results.len() as u64, n.as_u64().unwrap(), "{name}");
        }
        if event.request_context.http.method == http::Method::OPTIONS {
            assert_eq!(
                r.headers["access-control-allow-origin"], "https://app.example",
                "{name}"
            );
        }
    }
}

/// The limits the spec states are the function's own defaults, and every documented
/// example answers as documented.
#[test]
fn the_spec_states_what_the_function_enforces() {
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let defaults = Settings::default();
    assert_eq!(
        schemas["BatchRequest"]["properties"]["images"]["maxItems"].as_u64(),
        Some(defaults.max_images as u64)
    );
    let labels = app().served().current.classifier.labels().len() as u64;
    assert_eq!(schemas["TopK"]["maximum"].as_u64(), Some(labels));
    assert_eq!(schemas["TopK"]["default"].as_u64(), Some(api::DEFAULT_TOP_K as u64));
    assert_eq!(schemas["Base64Image"]["contentEncoding"], "base64");
    let query_top_k = &spec["paths"]["/predict"]["post"]["parameters"][0]["schema"];
    assert_eq!(query_top_k["maximum"].as_u64(), Some(labels));
    // The documented error example is the function's own message for top_k 11.
    let example =
        &spec["components"]["responses"]["Error"]["content"]["application/json"]["examples"]["badTopK"]["value"];
    let want: ErrorBody = serde_json::from_value(example.clone()).unwrap();
    let png = STANDARD.encode(sample_png());
    let r = predict_json(json!({"image": png, "top_k": 11}));
    let mut got = body::<ErrorBody>(&r);
    assert!(got.error.request_id.take().is_some(), "the answer names its request");
    assert_eq!(got, want);
}

#[test]
fn every_answer_names_its_request_and_the_record_names_the_caller_not_the_token() {
    let mut req = event(
        "POST",
        "/predict",
        json!({"content-type": "image/png", "authorization": "Bearer secret-token", "origin": "https://app.example"}),
        Some(&sample_png()),
        "",
    );
    req.request_context.request_id = Some("req-42".into());
    req.request_context.authorizer =
        Some(serde_json::from_value(json!({"jwt": {"claims": {"sub": "user-123"}, "scopes": null}})).unwrap());
    let (r, metrics) = app().respond(&req);
    assert_eq!(r.status_code, 200);
    assert_eq!(r.headers[api::REQUEST_ID_HEADER], "req-42");
    assert_eq!(
        r.headers["access-control-expose-headers"], "x-model-version, x-request-id",
        "browser code may read both"
    );
    assert_eq!(
        (metrics.route, metrics.caller.as_str(), metrics.images),
        ("/predict", "user-123", 1)
    );
    assert!(metrics.decode_ms > 0.0 && metrics.inference_ms > 0.0);
    let line = metrics.emf(0).to_string();
    assert!(line.contains("user-123") && !line.contains("secret-token"), "{line}");

    let mut bad = event(
        "POST",
        "/predict",
        json!({"content-type": "image/png"}),
        Some(b"nope"),
        "",
    );
    bad.request_context.request_id = Some("req-43".into());
    let (r, metrics) = app().respond(&bad);
    let e: ErrorBody = body(&r);
    assert_eq!(
        (e.error.code, e.error.request_id.as_deref()),
        (ErrorCode::InvalidImage, Some("req-43"))
    );
    assert_eq!(r.headers[api::REQUEST_ID_HEADER], "req-43");
    assert_eq!((metrics.status, metrics.caller.as_str()), (400, ""));
}

fn app_with(settings: Settings) -> App {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(classify::init(settings)).expect("embedded model loads")
}

#[test]
fn an_edge_stack_refuses_requests_that_bypass_cloudfront() {
    let app = app_with(Settings {
        origin_verify: Some("s3cret-value".into()),
        ..Settings::default()
    });
    for headers in [
        json!({}),
        json!({"x-origin-verify": "s3cret-valuf"}),
        json!({"x-origin-verify": "s3cret"}),
    ] {
        for (method, path) in [
            ("GET", "/health"),
            ("GET", "/"),
            ("POST", "/predict"),
            ("GET", "/nowhere"),
        ] {
            let r = app.handle(&event(method, path, headers.clone(), None, ""));
            assert_eq!(error_code(&r), (403, ErrorCode::Forbidden), "{method} {path} {headers}");
        }
    }
    let through = json!({"x-origin-verify": "s3cret-value", "content-type": "image/png"});
    let r = app.handle(&event("GET", "/health", through.clone(), None, ""));
    assert_eq!(r.status_code, 200);
    let r = app.handle(&event("POST", "/predict", through, Some(&sample_png()), ""));
    assert_eq!(r.status_code, 200);
}

#[test]
fn the_page_names_its_sign_in_only_when_configured() {
    let page = |app: &App| match app.handle(&event("GET", "/", json!({}), None, "")).body {
        Some(Body::Text(t)) => t,
        other => panic!("{other:?}"),
    };
    let plain = page(app());
    assert!(
        !plain.contains("<meta name=\"sign-in"),
        "no sign-in meta without SIGN_IN_URL"
    );
    assert!(
        !plain.contains("<meta name=\"feedback\""),
        "no corrections without FEEDBACK_URI"
    );
    let signed = page(&app_with(Settings {
        sign_in: Some(classify::settings::SignIn {
            url: "https://demo.auth.eu-west-1.amazoncognito.com".into(),
            client_id: "abc\"><script>".into(),
        }),
        ..Settings::default()
    }));
    assert!(
        signed.contains(r#"<meta name="sign-in-url" content="https://demo.auth.eu-west-1.amazoncognito.com">"#),
        "{signed}"
    );
    assert!(
        signed.contains(r#"<meta name="sign-in-client" content="abc&quot;&gt;&lt;script&gt;">"#),
        "escaped: {signed}"
    );
}

/// A signed-in caller sticks to one side of a canary, whatever the image: the JWT `sub`
/// picks it, by the same buckets the pointer's share is cut in.
#[test]
fn a_signed_in_caller_picks_the_side_of_a_canary() {
    use classify::model_source::EMBEDDED_MODEL;
    use classify::served::{CandidateModel, Loaded, Served};
    use contract::pointer::split_bucket;
    use std::sync::Arc;
    let loaded = |bytes: &[u8]| Loaded {
        classifier: inference::Classifier::from_bytes(bytes).unwrap(),
        source: "test".into(),
        sha256: contract::sha256_hex(bytes),
    };
    let mut b = EMBEDDED_MODEL.to_vec();
    let at = b.windows(13).position(|w| w == b"model_version").unwrap() + 15;
    b[at..at + 16].copy_from_slice(b"bbbbbbbbbbbbbbbb");
    let current = loaded(EMBEDDED_MODEL);
    let candidate = loaded(&b);
    let terms = contract::Candidate {
        model: contract::ModelPointer {
            key: "models/b.onnx".into(),
            sha256: candidate.sha256.clone(),
            version: "bbbbbbbbbbbbbbbb".into(),
            val_accuracy: 0.9,
            test_accuracy: None,
            published_at: "t".into(),
            candidate: None,
            previous: None,
        },
        percent: 50,
        mode: contract::Split::Canary,
        since: "t".into(),
    };
    let a_version = current.classifier.version().to_string();
    let app = App::new(
        Served {
            current: Arc::new(current),
            candidate: Some(CandidateModel {
                model: Arc::new(candidate),
                terms,
            }),
            candidate_error: None,
            pointer: None,
        },
        Settings::default(),
        None,
    );
    let subs: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let inside = subs.iter().find(|s| split_bucket(s.as_bytes()) < 50).unwrap();
    let outside = subs.iter().find(|s| split_bucket(s.as_bytes()) >= 50).unwrap();
    for (sub, expected) in [(inside, "bbbbbbbbbbbbbbbb"), (outside, a_version.as_str())] {
        for shade in [0u8, 90, 200] {
            let png = encode(
                RgbImage::from_pixel(32, 32, image::Rgb([shade, 40, 90])).into(),
                ImageFormat::Png,
            );
            let mut req = event("POST", "/predict", json!({"content-type": "image/png"}), Some(&png), "");
            req.request_context.authorizer =
                Some(serde_json::from_value(json!({"jwt": {"claims": {"sub": sub}, "scopes": null}})).unwrap());
            let (r, metrics) = app.respond(&req);
            assert_eq!(r.headers[api::MODEL_VERSION_HEADER], expected, "{sub}, shade {shade}");
            let variant = if expected == a_version { "current" } else { "candidate" };
            assert_eq!((metrics.model_version.as_str(), metrics.variant), (expected, variant));
        }
    }
}

/// `POST /feedback`: checked like `/predict`, answered 201 with its id, and stored by
/// `serve`; every refusal names its problem and stores nothing.
#[test]
fn feedback_is_checked_answered_and_stored() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = objects::Store::open(&format!("file://{}/", dir.path().display())).unwrap();
    let with_store = app_with(Settings {
        max_feedback_bytes: 50_000,
        ..Settings::default()
    })
    .with_feedback(store);
    let send = |body: Value, id: &str| {
        let mut req = event(
            "POST",
            "/feedback",
            json!({"content-type": "application/json"}),
            Some(body.to_string().as_bytes()),
            "",
        );
        req.request_context.request_id = Some(id.into());
        rt.block_on(with_store.serve(&req))
    };
    let png = STANDARD.encode(sample_png());
    let refusals = [
        (json!({"label": "unicorn", "request_id": "r1"}), ErrorCode::InvalidLabel),
        (json!({"label": "cat"}), ErrorCode::InvalidFeedback),
        (
            json!({"label": "cat", "request_id": "r1", "image": png}),
            ErrorCode::InvalidFeedback,
        ),
        (
            json!({"label": "cat", "request_id": "has space"}),
            ErrorCode::InvalidFeedback,
        ),
        (
            json!({"label": "cat", "image": "bm90IGFuIGltYWdl"}),
            ErrorCode::InvalidImage,
        ),
        (json!({"label": "cat", "image": "***"}), ErrorCode::InvalidBase64),
        (
            json!({"label": "cat", "request_id": "r1", "extra": 1}),
            ErrorCode::InvalidJson,
        ),
        (
            json!({"label": "cat", "image": "A".repeat(80_000)}),
            ErrorCode::PayloadTooLarge,
        ),
    ];
    for (body, code) in refusals {
        let r = send(body.clone(), "refused");
        assert_eq!(error_code(&r).1, code, "{body}");
    }
    let r = with_store.handle(&event(
        "POST",
        "/feedback",
        json!({"content-type": "image/png"}),
        Some(b"x"),
        "",
    ));
    assert_eq!(error_code(&r).1, ErrorCode::UnsupportedMediaType);
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing stored"
    );

    let r = send(json!({"label": "cat", "request_id": "Jq3xLhC0oAMEbNw="}), "fb-1");
    assert_eq!(r.status_code, 201);
    let answer: api::FeedbackResponse = body(&r);
    assert_eq!(answer.feedback_id, "fb-1");
    let r = send(json!({"label": "ship", "image": png}), "fb-2");
    assert_eq!(r.status_code, 201);
    let stored: Vec<contract::capture::FeedbackRecord> = std::fs::read_dir(dir.path())
        .unwrap()
        .flat_map(|day| std::fs::read_dir(day.unwrap().path()).unwrap())
        .map(|f| serde_json::from_slice(&std::fs::read(f.unwrap().path()).unwrap()).unwrap())
        .collect();
    assert_eq!(stored.len(), 2);
    let by_id = stored.iter().find(|r| r.id == "fb-1").unwrap();
    assert_eq!(
        (by_id.label.as_str(), by_id.request_id.as_deref(), by_id.image.is_none()),
        ("cat", Some("Jq3xLhC0oAMEbNw="), true)
    );
    let by_image = stored.iter().find(|r| r.id == "fb-2").unwrap();
    let pixels = contract::capture::decode_image(by_image.image.as_deref().unwrap()).unwrap();
    assert_eq!(pixels.len(), 32 * 32 * 3, "stored as the 32x32 image the model sees");
    assert_eq!(by_image.model_version, with_store.served().current.classifier.version());

    // The page offers corrections on such a stack.
    let r = with_store.handle(&event("GET", "/", json!({}), None, ""));
    let Some(Body::Text(html)) = r.body else { panic!("page") };
    assert!(html.contains(r#"<meta name="feedback" content="on">"#));

    // Without FEEDBACK_URI the route answers 404.
    let r = app().handle(&event(
        "POST",
        "/feedback",
        json!({"content-type": "application/json"}),
        Some(br#"{"label":"cat","request_id":"r"}"#),
        "",
    ));
    assert_eq!(error_code(&r), (404, ErrorCode::NotFound));
}

/// The shipped model answers with a prediction set and an out-of-distribution score, and
/// with where it looked when asked; the model before it (no such output or metadata)
/// still serves and simply leaves them out.
#[test]
fn answers_say_what_the_model_does_not_know_and_older_models_omit_it() {
    let ship = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/ship.jpg")).unwrap();
    let single = |app: &App, query: &str| -> Value {
        let r = app.handle(&event(
            "POST",
            "/predict",
            json!({"content-type": "image/jpeg"}),
            Some(&ship),
            query,
        ));
        assert_eq!(r.status_code, 200);
        body(&r)
    };
    let plain = single(app(), "");
    let set = plain["prediction_set"].as_array().expect("a prediction set");
    assert_eq!(set[0], plain["label"], "the top label leads the set");
    assert!(plain["ood_score"].is_number());
    assert_eq!(
        plain["out_of_distribution"],
        json!(false),
        "a photo of a ship is in distribution"
    );
    assert!(plain.get("saliency").is_none(), "maps only when asked");
    let explained = single(app(), "explain=true");
    let map: api::Saliency = serde_json::from_value(explained["saliency"].clone()).unwrap();
    assert_eq!(map.label, explained["label"].as_str().unwrap());
    assert_eq!(map.values.len(), map.width * map.height);
    assert_eq!((map.width, map.height), (7, 7));
    assert!(map.values.iter().all(|v| (0.0..=1.0).contains(v)) && map.values.contains(&1.0));
    let png = image::load_from_memory(&STANDARD.decode(&map.png).unwrap()).unwrap();
    assert_eq!((png.width(), png.height()), (32, 32));
    let r = predict_json(json!({"image": STANDARD.encode(&ship), "explain": "maybe"}));
    assert_eq!(error_code(&r), (400, ErrorCode::InvalidExplain));
    let m: ModelInfo = body(&app().handle(&event("GET", "/model", json!({}), None, "")));
    let u = m.uncertainty.expect("the shipped model states its terms");
    assert_eq!((u.coverage, u.abstain_out_of_distribution), (Some(0.9), false));

    // The model file before these outputs existed.
    let previous = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/models/cifar10-f5958a9e.onnx"
    );
    let settings = Settings {
        model_uri: Some(format!("file://{previous}")),
        ..Settings::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let old = rt
        .block_on(classify::init(settings))
        .expect("the previous model still loads");
    let answer = single(&old, "explain=true");
    for key in ["prediction_set", "ood_score", "out_of_distribution"] {
        assert!(answer.get(key).is_none(), "{key} from a model without it: {answer}");
    }
    assert!(answer["saliency"].is_object(), "occlusion needs nothing from the file");
    assert_eq!(answer["label"], plain["label"], "same weights, same answer");
    let m: ModelInfo = body(&old.handle(&event("GET", "/model", json!({}), None, "")));
    assert!(m.uncertainty.is_none());

    // Abstaining on out-of-distribution images, when the deployment asks for it.
    let settings = Settings {
        abstain_out_of_distribution: true,
        ..Settings::default()
    };
    let strict = rt.block_on(classify::init(settings)).unwrap();
    let flat = encode(
        RgbImage::from_pixel(32, 32, image::Rgb([40, 200, 90])).into(),
        ImageFormat::Png,
    );
    let r = strict.handle(&event(
        "POST",
        "/predict",
        json!({"content-type": "image/png"}),
        Some(&flat),
        "",
    ));
    let answer: Value = body(&r);
    assert_eq!(
        answer["out_of_distribution"],
        json!(true),
        "a flat colour is none of the classes: {answer}"
    );
    assert_eq!(
        (answer["label"].clone(), answer["matched"].clone()),
        (Value::Null, json!(false))
    );
}
