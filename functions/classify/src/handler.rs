//! One dispatch from route to answer: a plain function from request to response, so
//! tests call it in process and the runtime loop stays a one-liner.

use std::time::Instant;

use api::{
    BatchPredictResponse, ErrorCode, FloatRange, Health, ImageResult, InputSpec, IntRange, Limits, ModelInfo,
    PredictResponse, Prediction,
};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use contract::{Classifier, IMAGE_SIDE};
use http::Method;

use crate::error::ApiError;
use crate::request::{AnswerShape, Kind};
use crate::response;
use crate::routes::{Route, normalise_path};
use crate::settings::Settings;

/// State built once per cold start.
pub struct App {
    pub classifier: Classifier,
    pub settings: Settings,
    pub source: String,
}

/// What one request did, for the log line.
#[derive(Debug, Default)]
struct Outcome {
    route: Option<Route>,
    images: usize,
    top1: Option<String>,
    error: Option<ErrorCode>,
}

/// The page clients on phones and browsers use, served at `GET /`.
pub static INDEX_HTML: &str = include_str!("../static/index.html");

impl App {
    pub fn handle(&self, req: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let start = Instant::now();
        let method = req.request_context.http.method.clone();
        let path = normalise_path(req);
        let mut outcome = Outcome::default();
        let origin = req.headers.get("origin").and_then(|v| v.to_str().ok());
        let mut resp = match self.dispatch(&method, &path, req, &mut outcome) {
            Ok(r) => r,
            Err(e) => {
                outcome.error = Some(e.code);
                response::error(&e)
            }
        };
        response::cors(
            &mut resp.headers,
            &self.settings.allowed_origins,
            origin,
            method == Method::OPTIONS,
        );
        tracing::info!(
            request_id = req.request_context.request_id.as_deref().unwrap_or("-"),
            method = %method,
            route = outcome.route.map_or("unknown", Route::path),
            path = %path,
            status = resp.status_code,
            latency_ms = start.elapsed().as_secs_f64() * 1e3,
            images = outcome.images,
            top1 = outcome.top1.as_deref().unwrap_or(""),
            error_code = outcome.error.map_or("", ErrorCode::as_str),
            "request"
        );
        resp
    }

    fn dispatch(
        &self,
        method: &Method,
        path: &str,
        req: &ApiGatewayV2httpRequest,
        outcome: &mut Outcome,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let route = Route::from_path(path).ok_or_else(|| {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no route {path}; use {}", Route::listing()),
            )
        })?;
        outcome.route = Some(route);
        if *method == Method::OPTIONS {
            return Ok(response::plain(204, None, "text/plain"));
        }
        if *method != route.method() {
            let allowed = route.method();
            return Err(ApiError {
                allow: Some(allowed.to_string()),
                ..ApiError::new(
                    ErrorCode::MethodNotAllowed,
                    format!("{method} {path} is not supported; use {allowed} {path}"),
                )
            });
        }
        Ok(match route {
            Route::Index => response::plain(200, Some(INDEX_HTML.to_string()), "text/html; charset=utf-8"),
            Route::Health => response::json(200, &self.health()),
            Route::Model => response::json(200, &self.model_info()),
            Route::Predict => self.predict(req, outcome)?,
        })
    }

    pub fn health(&self) -> Health {
        Health {
            status: "ok".into(),
            model_version: self.classifier.version().into(),
        }
    }

    pub fn model_info(&self) -> ModelInfo {
        let meta = self.classifier.metadata();
        let number = |key: &str| meta.get(key).and_then(|t| t.parse::<f64>().ok());
        let s = &self.settings;
        ModelInfo {
            labels: self.classifier.labels().to_vec(),
            model_version: self.classifier.version().into(),
            val_accuracy: self.classifier.val_accuracy(),
            dataset: meta.get(contract::meta::DATASET).cloned(),
            trained_at: meta.get(contract::meta::TRAINED_AT).cloned(),
            temperature: number(contract::meta::TEMPERATURE).unwrap_or(1.0),
            val_ece: number(contract::meta::VAL_ECE),
            tta: meta.get(contract::meta::TTA).cloned().unwrap_or_else(|| "none".into()),
            input: InputSpec {
                width: IMAGE_SIDE,
                height: IMAGE_SIDE,
                channels: contract::CHANNELS,
                resize_filter: "triangle (bilinear, area-widened when downscaling)".into(),
                alpha: "flattened onto white".into(),
            },
            limits: Limits {
                max_body_bytes: s.max_body_bytes,
                max_images: s.max_images,
                max_image_side: s.limits.max_side,
                max_image_pixels: s.limits.max_pixels,
                top_k: IntRange {
                    default: api::DEFAULT_TOP_K.min(self.classifier.labels().len()),
                    min: 1,
                    max: self.classifier.labels().len(),
                },
                min_probability: FloatRange {
                    default: s.min_probability,
                    min: 0.0,
                    max: 1.0,
                },
            },
            source: self.source.clone(),
        }
    }

    fn predict(
        &self,
        req: &ApiGatewayV2httpRequest,
        outcome: &mut Outcome,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let input = crate::request::predict_input(req, &self.settings, self.classifier.labels().len())?;
        outcome.images = input.images.len();
        let rows = self
            .classifier
            .probabilities(&input.images)
            .map_err(|e| ApiError::new(ErrorCode::InferenceFailed, e.to_string()))?;
        let mut results: Vec<ImageResult> = rows.iter().map(|row| self.result(row, input.shape)).collect();
        outcome.top1 = results.first().and_then(|r| r.label.clone());
        let model_version = self.classifier.version().to_string();
        Ok(match input.kind {
            Kind::Batch => response::json(200, &BatchPredictResponse { results, model_version }),
            Kind::Single => response::json(
                200,
                &PredictResponse {
                    result: results.swap_remove(0),
                    model_version,
                },
            ),
        })
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
}
