//! Routing and the predict path: a plain function from request to response, so tests
//! call it in process and the runtime loop stays a one-liner.

use std::time::Instant;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use contract::{Classifier, IMAGE_SIDE, Rgb32};
use http::{HeaderMap, HeaderValue, Method};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::settings::Settings;

/// Default and largest `top_k`.
pub const DEFAULT_TOP_K: usize = 5;

/// State built once per cold start.
pub struct App {
    pub classifier: Classifier,
    pub settings: Settings,
    pub source: String,
}

#[derive(Debug, Deserialize)]
struct PredictRequest {
    image: Option<Value>,
    images: Option<Vec<Value>>,
    top_k: Option<Value>,
    min_probability: Option<Value>,
}

/// How many classes to list and the top-1 probability below which an image matches none.
#[derive(Debug, Clone, Copy)]
struct AnswerShape {
    top_k: usize,
    min_probability: f32,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Prediction {
    pub label: String,
    pub probability: f32,
}

#[derive(Debug, Serialize)]
pub struct ImageResult {
    /// The top class, or `None` when its probability is under the request's
    /// `min_probability`: the image matches none of the classes.
    pub label: Option<String>,
    pub probability: f32,
    /// False when `label` is null for being under `min_probability`.
    pub matched: bool,
    pub predictions: Vec<Prediction>,
}

/// What one request did, for the log line.
#[derive(Debug, Default)]
struct Outcome {
    route: &'static str,
    images: usize,
    top1: Option<String>,
    error: Option<&'static str>,
}

const ROUTES: [(&str, &[Method]); 4] = [
    ("/", &[Method::GET]),
    ("/health", &[Method::GET]),
    ("/model", &[Method::GET]),
    ("/predict", &[Method::POST]),
];

/// The page clients on phones and browsers use, served at `GET /`.
pub static INDEX_HTML: &str = include_str!("../static/index.html");

impl App {
    pub fn handle(&self, req: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let start = Instant::now();
        let method = req.request_context.http.method.clone();
        let path = normalise_path(req);
        let mut outcome = Outcome::default();
        let origin = req
            .headers
            .get("origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut resp = match self.route(&method, &path, req, &mut outcome) {
            Ok(r) => r,
            Err(e) => {
                outcome.error = Some(e.code);
                error_response(&e)
            }
        };
        self.cors(&mut resp.headers, origin.as_deref(), method == Method::OPTIONS);
        tracing::info!(
            request_id = req.request_context.request_id.as_deref().unwrap_or("-"),
            method = %method,
            route = outcome.route,
            path = %path,
            status = resp.status_code,
            latency_ms = start.elapsed().as_secs_f64() * 1e3,
            images = outcome.images,
            top1 = outcome.top1.as_deref().unwrap_or(""),
            error_code = outcome.error.unwrap_or(""),
            "request"
        );
        resp
    }

    fn route(
        &self,
        method: &Method,
        path: &str,
        req: &ApiGatewayV2httpRequest,
        outcome: &mut Outcome,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let Some((route, allowed)) = ROUTES.iter().find(|(p, _)| *p == path) else {
            outcome.route = "unknown";
            return Err(ApiError::new(
                404,
                "not_found",
                format!("no route {path}; use POST /predict, GET /health, GET /model or GET /"),
            ));
        };
        outcome.route = route;
        if *method == Method::OPTIONS {
            return Ok(response(204, None, "text/plain"));
        }
        if !allowed.contains(method) {
            let names: Vec<&str> = allowed.iter().map(Method::as_str).collect();
            let mut r = error_response(&ApiError::new(
                405,
                "method_not_allowed",
                format!("{method} {path} is not supported; use {} {path}", names.join(", ")),
            ));
            outcome.error = Some("method_not_allowed");
            r.headers
                .insert("allow", HeaderValue::from_str(&names.join(", ")).expect("ascii"));
            return Ok(r);
        }
        match *route {
            "/" => Ok(response(200, Some(INDEX_HTML.to_string()), "text/html; charset=utf-8")),
            "/health" => Ok(json_response(
                200,
                &json!({"status": "ok", "model_version": self.classifier.version()}),
            )),
            "/model" => Ok(json_response(200, &self.model_info())),
            _ => self.predict(req, outcome),
        }
    }

    pub fn model_info(&self) -> Value {
        let meta = self.classifier.metadata();
        json!({
            "labels": self.classifier.labels(),
            "model_version": self.classifier.version(),
            "val_accuracy": self.classifier.val_accuracy(),
            "dataset": meta.get(contract::meta::DATASET),
            "trained_at": meta.get(contract::meta::TRAINED_AT),
            "temperature": meta.get(contract::meta::TEMPERATURE).and_then(|t| t.parse::<f64>().ok()).unwrap_or(1.0),
            "val_ece": meta.get(contract::meta::VAL_ECE).and_then(|t| t.parse::<f64>().ok()),
            "tta": meta.get(contract::meta::TTA).map(String::as_str).unwrap_or("none"),
            "input": {"width": IMAGE_SIDE, "height": IMAGE_SIDE, "channels": 3, "resize_filter": "triangle (bilinear, area-widened when downscaling)", "alpha": "flattened onto white"},
            "limits": {
                "max_body_bytes": self.settings.max_body_bytes,
                "max_images": self.settings.max_images,
                "max_image_side": self.settings.limits.max_side,
                "max_image_pixels": self.settings.limits.max_pixels,
                "top_k": {"default": DEFAULT_TOP_K, "min": 1, "max": self.classifier.labels().len()},
                "min_probability": {"default": self.settings.min_probability, "min": 0.0, "max": 1.0},
            },
            "source": self.source,
        })
    }

    fn predict(
        &self,
        req: &ApiGatewayV2httpRequest,
        outcome: &mut Outcome,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let body = self.body_bytes(req)?;
        let content_type = req
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
            .unwrap_or_default();
        let max_k = self.classifier.labels().len();
        let (images, shape, batch) = match content_type.as_str() {
            "application/json" => self.parse_json(&body, max_k)?,
            "image/png"
            | "image/jpeg"
            | "image/jpg"
            | "image/webp"
            | "image/gif"
            | "image/bmp"
            | "application/octet-stream" => {
                let query = |name: &str| {
                    req.query_string_parameters
                        .first(name)
                        .map(|v| Value::String(v.to_string()))
                };
                let shape = self.answer_shape(query("top_k").as_ref(), query("min_probability").as_ref(), max_k)?;
                let image =
                    contract::decode_rgb32(&body, &self.settings.limits).map_err(|e| ApiError::from_image(e, None))?;
                (vec![image], shape, false)
            }
            "" => {
                return Err(ApiError::new(
                    415,
                    "missing_content_type",
                    "set Content-Type: application/json, or an image type (image/png, image/jpeg, ...) for a raw body",
                ));
            }
            other => {
                return Err(ApiError::new(
                    415,
                    "unsupported_media_type",
                    format!(
                        "Content-Type {other} is not accepted; use application/json, image/png, image/jpeg, image/webp, image/gif, image/bmp or application/octet-stream"
                    ),
                ));
            }
        };
        outcome.images = images.len();
        let rows = self
            .classifier
            .probabilities(&images)
            .map_err(|e| ApiError::new(500, "inference_failed", e.to_string()))?;
        let results: Vec<ImageResult> = rows.iter().map(|row| self.result(row, shape)).collect();
        outcome.top1 = results.first().and_then(|r| r.label.clone());
        let version = self.classifier.version();
        let body = if batch {
            json!({"results": results, "model_version": version})
        } else {
            let mut v = serde_json::to_value(&results[0]).expect("result serialises");
            v["model_version"] = json!(version);
            v
        };
        Ok(json_response(200, &body))
    }

    fn result(&self, row: &[f32], shape: AnswerShape) -> ImageResult {
        let labels = self.classifier.labels();
        let predictions: Vec<Prediction> = contract::runtime::top_k(row, shape.top_k)
            .into_iter()
            .map(|i| Prediction {
                label: labels[i].clone(),
                probability: row[i],
            })
            .collect();
        let matched = predictions[0].probability >= shape.min_probability;
        ImageResult {
            label: matched.then(|| predictions[0].label.clone()),
            probability: predictions[0].probability,
            matched,
            predictions,
        }
    }

    /// `top_k` and `min_probability` from the request, or their defaults.
    fn answer_shape(
        &self,
        top_k: Option<&Value>,
        min_probability: Option<&Value>,
        max_k: usize,
    ) -> Result<AnswerShape, ApiError> {
        Ok(AnswerShape {
            top_k: match top_k {
                Some(v) => parse_top_k(v, max_k)?,
                None => DEFAULT_TOP_K.min(max_k),
            },
            min_probability: match min_probability {
                Some(v) => parse_min_probability(v)?,
                None => self.settings.min_probability,
            },
        })
    }

    fn body_bytes(&self, req: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, ApiError> {
        let raw = req.body.as_deref().unwrap_or("");
        if raw.is_empty() {
            return Err(ApiError::bad_request(
                "empty_body",
                "the request has no body; send JSON or an image",
            ));
        }
        // Base64 transport inflates by 4/3; check before decoding so a huge body costs nothing.
        let approx = if req.is_base64_encoded {
            raw.len() / 4 * 3
        } else {
            raw.len()
        };
        let too_large = || {
            ApiError::new(
                413,
                "payload_too_large",
                format!("body exceeds {} bytes", self.settings.max_body_bytes),
            )
        };
        if approx > self.settings.max_body_bytes + 3 {
            return Err(too_large());
        }
        let bytes = if req.is_base64_encoded {
            STANDARD.decode(raw).map_err(|e| {
                ApiError::bad_request(
                    "invalid_body_encoding",
                    format!("body is flagged base64 but does not decode: {e}"),
                )
            })?
        } else {
            raw.as_bytes().to_vec()
        };
        if bytes.len() > self.settings.max_body_bytes {
            return Err(too_large());
        }
        Ok(bytes)
    }

    fn parse_json(&self, body: &[u8], max_k: usize) -> Result<(Vec<Rgb32>, AnswerShape, bool), ApiError> {
        let req: PredictRequest = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(
                "invalid_json",
                format!("body is not valid JSON of the expected shape: {e}"),
            )
        })?;
        let shape = self.answer_shape(req.top_k.as_ref(), req.min_probability.as_ref(), max_k)?;
        match (req.image, req.images) {
            (Some(_), Some(_)) => Err(ApiError::bad_request(
                "ambiguous_request",
                "send either \"image\" or \"images\", not both",
            )),
            (None, None) => Err(ApiError::bad_request(
                "missing_image",
                "JSON body needs \"image\": \"<base64>\" or \"images\": [\"<base64>\", ...]",
            )),
            (Some(v), None) => Ok((vec![self.decode_item(&v, None)?], shape, false)),
            (None, Some(items)) => {
                if items.is_empty() {
                    return Err(ApiError::bad_request(
                        "empty_batch",
                        "\"images\" is empty; send at least one image",
                    ));
                }
                if items.len() > self.settings.max_images {
                    return Err(ApiError::new(
                        413,
                        "too_many_images",
                        format!(
                            "{} images in one request; the limit is {}",
                            items.len(),
                            self.settings.max_images
                        ),
                    ));
                }
                let images = items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.decode_item(v, Some(i)))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((images, shape, true))
            }
        }
    }

    fn decode_item(&self, value: &Value, index: Option<usize>) -> Result<Rgb32, ApiError> {
        let at = index.map(|i| format!("images[{i}]")).unwrap_or_else(|| "image".into());
        let text = value
            .as_str()
            .ok_or_else(|| ApiError::bad_request("invalid_image_field", format!("{at} must be a base64 string")))?;
        let bytes = decode_base64(text)
            .map_err(|e| ApiError::bad_request("invalid_base64", format!("{at} is not valid base64: {e}")))?;
        contract::decode_rgb32(&bytes, &self.settings.limits).map_err(|e| ApiError::from_image(e, index))
    }

    fn cors(&self, headers: &mut HeaderMap, origin: Option<&str>, preflight: bool) {
        let allowed = &self.settings.allowed_origins;
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
        }
    }
}

/// Strip a data URL prefix and whitespace, then decode standard or URL-safe base64.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim();
    let payload = match text.strip_prefix("data:") {
        Some(rest) => {
            let (meta, data) = rest.split_once(',').ok_or("data URL has no comma")?;
            if !meta.ends_with(";base64") {
                return Err("data URL must be base64 (data:image/png;base64,...)".into());
            }
            data
        }
        None => text,
    };
    let compact: String = payload.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err("empty string".into());
    }
    STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&compact))
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&compact))
        .map_err(|e| e.to_string())
}

fn parse_top_k(v: &Value, max_k: usize) -> Result<usize, ApiError> {
    let k = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match k {
        Some(k) if (1..=max_k as u64).contains(&k) => Ok(k as usize),
        _ => Err(ApiError::bad_request(
            "invalid_top_k",
            format!("top_k must be an integer from 1 to {max_k}, got {v}"),
        )),
    }
}

fn parse_min_probability(v: &Value) -> Result<f32, ApiError> {
    let p = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match p {
        Some(p) if (0.0..=1.0).contains(&p) => Ok(p as f32),
        _ => Err(ApiError::bad_request(
            "invalid_min_probability",
            format!("min_probability must be a number from 0 to 1, got {v}"),
        )),
    }
}

/// Path relative to the API: a function URL or `$default` stage gives `/predict`; a named
/// stage prefixes it (`/prod/predict`), which is stripped.
fn normalise_path(req: &ApiGatewayV2httpRequest) -> String {
    let raw = req
        .raw_path
        .as_deref()
        .or(req.request_context.http.path.as_deref())
        .unwrap_or("/");
    let mut path = raw.to_string();
    if let Some(stage) = req.request_context.stage.as_deref().filter(|s| *s != "$default") {
        let prefix = format!("/{stage}");
        if let Some(rest) = path.strip_prefix(&prefix)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            path = rest.to_string();
        }
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.to_string()
    }
}

fn response(status: u16, body: Option<String>, content_type: &'static str) -> ApiGatewayV2httpResponse {
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = i64::from(status);
    r.headers.insert("content-type", HeaderValue::from_static(content_type));
    r.body = body.map(Body::Text);
    r
}

fn json_response(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    response(status, Some(body.to_string()), "application/json")
}

pub fn error_response(e: &ApiError) -> ApiGatewayV2httpResponse {
    json_response(e.status, &json!({"error": {"code": e.code, "message": e.message}}))
}
