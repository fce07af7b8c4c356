//! The whole handler from an arbitrary method, path, stage, headers, content type, query,
//! body and base64 flag: every answer is a response with a status below 500.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use classify::App;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Request {
    method: u8,
    path: String,
    stage: Option<String>,
    content_type: Option<String>,
    origin: Option<String>,
    query: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    base64: bool,
    as_text: bool,
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let settings = classify::settings::Settings {
            max_body_bytes: 200_000,
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(classify::init(settings)).expect("embedded model")
    })
}

fuzz_target!(|r: Request| {
    const METHODS: [&str; 6] = ["GET", "POST", "OPTIONS", "PUT", "DELETE", "HEAD"];
    let mut event = ApiGatewayV2httpRequest::default();
    let method = METHODS[r.method as usize % METHODS.len()];
    event.request_context.http.method = method.parse().unwrap();
    let path = format!("/{}", r.path);
    event.raw_path = Some(path.clone());
    event.request_context.http.path = Some(path);
    event.request_context.stage = r.stage;
    for (name, value) in [("content-type", r.content_type), ("origin", r.origin)] {
        if let Some(v) = value.and_then(|v| http::HeaderValue::from_str(&v).ok()) {
            event.headers.insert(name, v);
        }
    }
    let query: std::collections::HashMap<String, Vec<String>> =
        r.query.into_iter().map(|(k, v)| (k, vec![v])).collect();
    event.query_string_parameters = query.into();
    event.is_base64_encoded = r.base64;
    event.body = r.body.map(|b| {
        if r.as_text {
            String::from_utf8_lossy(&b).into_owned()
        } else {
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &b)
        }
    });
    // `respond`, not `handle`: the same answer without a metric line on stdout per run.
    let (resp, _) = app().respond(&event);
    assert!((200..500).contains(&resp.status_code), "{} for {event:?}", resp.status_code);
    if resp.status_code >= 400 {
        let Some(Body::Text(text)) = &resp.body else { panic!("error without a body") };
        serde_json::from_str::<api::ErrorBody>(text).expect("a JSON error body");
    }
});
