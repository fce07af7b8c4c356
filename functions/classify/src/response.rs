//! Building answers: typed JSON bodies, errors with their headers, CORS.

use api::ErrorBody;
use aws_lambda_events::apigw::ApiGatewayV2httpResponse;
use aws_lambda_events::encodings::Body;
use http::{HeaderMap, HeaderValue};
use serde::Serialize;

use crate::error::ApiError;

pub fn plain(status: u16, body: Option<String>, content_type: &'static str) -> ApiGatewayV2httpResponse {
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = i64::from(status);
    r.headers.insert("content-type", HeaderValue::from_static(content_type));
    r.body = body.map(Body::Text);
    r
}

pub fn json<T: Serialize>(status: u16, body: &T) -> ApiGatewayV2httpResponse {
    let text = serde_json::to_string(body).expect("API types serialise");
    plain(status, Some(text), "application/json")
}

pub fn error(e: &ApiError, request_id: &str) -> ApiGatewayV2httpResponse {
    let mut r = json(
        e.status(),
        &ErrorBody::new(e.code, e.message.clone()).with_request_id(request_id),
    );
    if let Some(allow) = e.allow.as_deref().and_then(|a| HeaderValue::from_str(a).ok()) {
        r.headers.insert("allow", allow);
    }
    r
}

/// `Access-Control-*` for an allowed origin (all of them with `*`).
pub fn cors(headers: &mut HeaderMap, allowed: &[String], origin: Option<&str>, preflight: bool) {
    let value = if allowed.iter().any(|o| o == "*") {
        Some("*".to_string())
    } else {
        origin.filter(|o| allowed.iter().any(|a| a == o)).map(str::to_owned)
    };
    headers.insert("vary", HeaderValue::from_static("Origin"));
    let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) else {
        return;
    };
    headers.insert("access-control-allow-origin", value);
    if preflight {
        headers.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        headers.insert(
            "access-control-allow-headers",
            HeaderValue::from_static("content-type, authorization"),
        );
        headers.insert("access-control-max-age", HeaderValue::from_static("600"));
    } else {
        // Browser code may read these; without the list it sees only the safelisted ones.
        headers.insert(
            "access-control-expose-headers",
            HeaderValue::from_static("x-model-version, x-request-id"),
        );
    }
}
