//! One dispatch from route to answer: a plain function from request to response, so
//! tests call it in process and the runtime loop stays a one-liner.

use std::sync::Arc;
use std::time::Instant;

use api::{
    BatchPredictResponse, ErrorCode, FloatRange, Health, ImageResult, InputSpec, IntRange, Limits, ModelInfo,
    PredictResponse, Prediction,
};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use contract::capture::{CAPTURE_VERSION, CaptureRecord, FeedbackRecord, feedback_key};
use contract::{IMAGE_SIDE, Split};
use http::Method;
use inference::Classifier;
use objects::Store;

use crate::error::ApiError;
use crate::metrics::{RequestMetrics, size_class};
use crate::refresh::Refresher;
use crate::request::{AnswerShape, Kind};
use crate::response;
use crate::routes::{Route, normalise_path};
use crate::served::{ModelSlot, Served};
use crate::settings::{ORIGIN_VERIFY_HEADER, Settings, SignIn};

/// State built once per cold start; only the served model changes, swapped whole.
pub struct App {
    model: ModelSlot,
    pub settings: Settings,
    refresher: Option<Refresher>,
    /// Where corrections go (`FEEDBACK_URI`); none: `POST /feedback` answers 404.
    feedback: Option<Store>,
    /// `INDEX_HTML` with this deployment's sign-in, if any.
    page: String,
}

/// What one request did, for the log line and the metric record.
#[derive(Debug, Default)]
struct Outcome {
    route: Option<Route>,
    images: usize,
    top1: Option<String>,
    error: Option<ErrorCode>,
    decode_ms: f64,
    inference_ms: f64,
    abstained: usize,
    /// The version that answered a prediction (the candidate's, in its canary share).
    answered_by: Option<String>,
    variant: Variant,
    /// Mean top-1 probability of the answer's images.
    top1_probability: Option<f32>,
    /// In the shadow share: images whose top-1 the candidate agreed on, of those compared.
    shadow: Option<(usize, usize)>,
    /// The capture records of a request in the capture sample.
    captured: Vec<CaptureRecord>,
    /// A checked correction, for [`App::serve`] to store.
    feedback: Option<FeedbackRecord>,
}

/// Which model answered: the pointer's current one, or its candidate (canary share).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    #[default]
    Current,
    Candidate,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Current => "current",
            Variant::Candidate => "candidate",
        }
    }
}

/// The page clients on phones and browsers use, served at `GET /`.
pub static INDEX_HTML: &str = include_str!("../static/index.html");

/// Where the page's settings go (sign-in, corrections): the page reads them from `<meta>`
/// tags, so one static file serves every kind of stack.
const SETTINGS_SLOT: &str = "<!--page-settings-->";

/// The page with `sign_in`'s server and client in its head (HTML-escaped), and whether
/// it may offer corrections.
pub fn page(sign_in: Option<&SignIn>, feedback: bool) -> String {
    let escape = |v: &str| {
        v.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut head = String::new();
    if let Some(s) = sign_in {
        head += &format!(
            "<meta name=\"sign-in-url\" content=\"{}\">\n<meta name=\"sign-in-client\" content=\"{}\">\n",
            escape(&s.url),
            escape(&s.client_id)
        );
    }
    if feedback {
        head += "<meta name=\"feedback\" content=\"on\">\n";
    }
    INDEX_HTML.replacen(SETTINGS_SLOT, head.trim_end(), 1)
}

/// Equal without saying where they differ: the shared origin value is a secret.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl App {
    pub fn new(served: Served, settings: Settings, refresher: Option<Refresher>) -> Self {
        Self {
            model: ModelSlot::new(served),
            page: page(settings.sign_in.as_ref(), false),
            settings,
            refresher,
            feedback: None,
        }
    }

    /// Store corrections in `store` (`POST /feedback`).
    pub fn with_feedback(mut self, store: Store) -> Self {
        self.feedback = Some(store);
        self.page = page(self.settings.sign_in.as_ref(), true);
        self
    }

    /// The model now; a request keeps the one it started with.
    pub fn served(&self) -> Arc<Served> {
        self.model.current()
    }

    /// Between requests: follow the pointer when a check is due (see `refresh`).
    pub async fn refresh_if_due(&self) {
        if let Some(r) = &self.refresher {
            r.refresh_if_due(&self.model).await;
        }
    }

    pub fn refresh_status(&self) -> api::RefreshStatus {
        match &self.refresher {
            Some(r) => r.status(),
            None => api::RefreshStatus {
                enabled: false,
                interval_seconds: self.settings.model_refresh_seconds,
                last_check: None,
                last_outcome: None,
                last_error: None,
            },
        }
    }

    /// Answer one event, log it, and print its metric record. A correction is checked and
    /// answered but not stored: that needs [`App::serve`].
    pub fn handle(&self, req: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let (resp, metrics) = self.respond(req);
        metrics.emit();
        resp
    }

    /// What the runtime loop calls: [`App::handle`], and a correction stored before it is
    /// answered (one S3 PUT; a failure answers 503 `feedback_unavailable`, nothing kept).
    pub async fn serve(&self, req: &ApiGatewayV2httpRequest) -> ApiGatewayV2httpResponse {
        let (mut resp, mut metrics, feedback) = self.answer(req);
        if let (Some(record), Some(store)) = (feedback, &self.feedback) {
            let key = format!("{}{}", store.prefix(), feedback_key(&record.time, &record.id));
            let body = serde_json::to_vec(&record).expect("feedback record serialises");
            if let Err(e) = store.put(&key, body, "application/json").await {
                tracing::error!(request_id = %record.id, error = %e, "feedback not stored");
                let origin = req.headers.get("origin").and_then(|v| v.to_str().ok());
                resp = response::error(
                    &ApiError::new(
                        ErrorCode::FeedbackUnavailable,
                        "the correction could not be stored; retry later",
                    ),
                    &record.id,
                );
                if let Ok(v) = http::HeaderValue::from_str(&record.id) {
                    resp.headers.insert(api::REQUEST_ID_HEADER, v);
                }
                response::cors(&mut resp.headers, &self.settings.allowed_origins, origin, false);
                metrics.status = resp.status_code;
            }
        }
        metrics.emit();
        resp
    }

    /// The answer and what the request did, for [`RequestMetrics::emit`].
    pub fn respond(&self, req: &ApiGatewayV2httpRequest) -> (ApiGatewayV2httpResponse, RequestMetrics) {
        let (resp, metrics, _) = self.answer(req);
        (resp, metrics)
    }

    /// [`App::respond`], with the correction to store, if the request brought one.
    fn answer(
        &self,
        req: &ApiGatewayV2httpRequest,
    ) -> (ApiGatewayV2httpResponse, RequestMetrics, Option<FeedbackRecord>) {
        let start = Instant::now();
        let request_id = req.request_context.request_id.as_deref().unwrap_or("-");
        let served = self.served();
        let method = req.request_context.http.method.clone();
        let path = normalise_path(req);
        let mut outcome = Outcome::default();
        let origin = req.headers.get("origin").and_then(|v| v.to_str().ok());
        // Who asked, when a JWT authorizer signed them in: the `sub` claim, never the token.
        let caller = req
            .request_context
            .authorizer
            .as_ref()
            .and_then(|a| a.jwt.as_ref())
            .and_then(|jwt| jwt.claims.get("sub"))
            .map_or("", String::as_str);
        let mut resp = match self.dispatch(&served, &method, &path, req, caller, &mut outcome) {
            Ok(r) => r,
            Err(e) => {
                outcome.error = Some(e.code);
                response::error(&e, request_id)
            }
        };
        if let Ok(v) = http::HeaderValue::from_str(request_id) {
            resp.headers.insert(api::REQUEST_ID_HEADER, v);
        }
        let model_version = outcome
            .answered_by
            .clone()
            .unwrap_or_else(|| served.current.classifier.version().to_string());
        if outcome.route == Some(Route::Predict)
            && let Ok(v) = http::HeaderValue::from_str(&model_version)
        {
            resp.headers.insert(api::MODEL_VERSION_HEADER, v);
        }
        response::cors(
            &mut resp.headers,
            &self.settings.allowed_origins,
            origin,
            method == Method::OPTIONS,
        );
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        let route = outcome.route.map_or("unknown", Route::path);
        tracing::info!(
            request_id,
            caller,
            model_version,
            variant = outcome.variant.as_str(),
            method = %method,
            route,
            path = %path,
            status = resp.status_code,
            latency_ms,
            images = outcome.images,
            top1 = outcome.top1.as_deref().unwrap_or(""),
            error_code = outcome.error.map_or("", ErrorCode::as_str),
            "request"
        );
        let metrics = RequestMetrics {
            route,
            status: resp.status_code,
            latency_ms,
            decode_ms: outcome.decode_ms,
            inference_ms: outcome.inference_ms,
            images: outcome.images,
            abstained: outcome.abstained,
            size_class: size_class(req.body.as_ref().map_or(0, |b| b.len())),
            model_version,
            variant: outcome.variant.as_str(),
            top1_probability: outcome.top1_probability,
            shadow: outcome.shadow,
            captured: std::mem::take(&mut outcome.captured),
            request_id: request_id.to_string(),
            caller: caller.to_string(),
        };
        (resp, metrics, outcome.feedback.take())
    }

    fn dispatch(
        &self,
        served: &Served,
        method: &Method,
        path: &str,
        req: &ApiGatewayV2httpRequest,
        caller: &str,
        outcome: &mut Outcome,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        if let Some(expected) = &self.settings.origin_verify {
            let given = req.headers.get(ORIGIN_VERIFY_HEADER).map_or(&[][..], |v| v.as_bytes());
            if !same_secret(given, expected.as_bytes()) {
                return Err(ApiError::new(
                    ErrorCode::Forbidden,
                    "this API is served through its CloudFront distribution; call that URL instead",
                ));
            }
        }
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
            Route::Index => response::plain(200, Some(self.page.clone()), "text/html; charset=utf-8"),
            Route::Health => response::json(200, &self.health(served)),
            Route::Model => response::json(200, &self.model_info(served)),
            Route::Predict => self.predict(served, req, caller, outcome)?,
            Route::Feedback => {
                if self.feedback.is_none() {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        "feedback is not enabled on this deployment (FEEDBACK_URI)",
                    ));
                }
                let classifier = &served.current.classifier;
                let record =
                    crate::request::feedback_record(req, &self.settings, classifier.labels(), classifier.version())?;
                let answer = api::FeedbackResponse {
                    feedback_id: record.id.clone(),
                    model_version: record.model_version.clone(),
                };
                outcome.feedback = Some(record);
                response::json(201, &answer)
            }
        })
    }

    pub fn health(&self, served: &Served) -> Health {
        Health {
            status: "ok".into(),
            model_version: served.current.classifier.version().into(),
            source: served.current.source.clone(),
            refresh: self.refresh_status(),
            candidate: candidate_status(served),
        }
    }

    pub fn model_info(&self, served: &Served) -> ModelInfo {
        let classifier = &served.current.classifier;
        let meta = classifier.metadata();
        let number = |key: &str| meta.get(key).and_then(|t| t.parse::<f64>().ok());
        let s = &self.settings;
        ModelInfo {
            labels: classifier.labels().to_vec(),
            model_version: classifier.version().into(),
            val_accuracy: classifier.val_accuracy(),
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
                    default: api::DEFAULT_TOP_K.min(classifier.labels().len()),
                    min: 1,
                    max: classifier.labels().len(),
                },
                min_probability: FloatRange {
                    default: s.min_probability,
                    min: 0.0,
                    max: 1.0,
                },
            },
            source: served.current.source.clone(),
            refresh: self.refresh_status(),
            candidate: candidate_status(served),
            uncertainty: uncertainty_info(classifier, s.abstain_out_of_distribution),
        }
    }

    /// Answer with the current model, or the candidate in its canary share; in a shadow
    /// share the candidate also runs and its agreement is recorded, but never answers.
    fn predict(
        &self,
        served: &Served,
        req: &ApiGatewayV2httpRequest,
        caller: &str,
        outcome: &mut Outcome,
    ) -> Result<ApiGatewayV2httpResponse, ApiError> {
        let labels = served.current.classifier.labels().len();
        let decode = Instant::now();
        let input = crate::request::predict_input(req, &self.settings, labels)?;
        outcome.decode_ms = decode.elapsed().as_secs_f64() * 1e3;
        outcome.images = input.images.len();
        // Sticky: the signed-in caller, else the first image, picks the side.
        let key = if caller.is_empty() {
            input.images.first().map_or(&[][..], |i| &i[..])
        } else {
            caller.as_bytes()
        };
        let in_share = served.candidate.as_ref().filter(|c| c.terms.takes(key));
        let (answering, shadow) = match in_share {
            Some(c) if c.terms.mode == Split::Canary => (&c.model, None),
            Some(c) => (&served.current, Some(&c.model)),
            None => (&served.current, None),
        };
        outcome.variant = if shadow.is_none() && in_share.is_some() {
            Variant::Candidate
        } else {
            Variant::Current
        };
        let classifier = &answering.classifier;
        let inference = Instant::now();
        let answers = classifier
            .answers(&input.images)
            .map_err(|e| ApiError::new(ErrorCode::InferenceFailed, e.to_string()))?;
        outcome.inference_ms = inference.elapsed().as_secs_f64() * 1e3;
        if let Some(shadow) = shadow {
            outcome.shadow = shadow_agreement(&shadow.classifier, &input.images, &answers);
        }
        let abstain_ood = self.settings.abstain_out_of_distribution;
        let mut results: Vec<ImageResult> = answers
            .iter()
            .zip(&input.images)
            .map(|(answer, pixels)| result(classifier, answer, pixels, input.shape, abstain_ood))
            .collect::<Result<_, _>>()?;
        outcome.top1 = results.first().and_then(|r| r.label.clone());
        outcome.abstained = results.iter().filter(|r| !r.matched).count();
        outcome.top1_probability =
            Some(results.iter().map(|r| r.predictions[0].probability).sum::<f32>() / results.len().max(1) as f32);
        let model_version = classifier.version().to_string();
        let request_id = req.request_context.request_id.as_deref().unwrap_or("-");
        if contract::pointer::split_bucket(request_id.as_bytes()) < self.settings.capture_percent {
            let time = contract::pointer::now_rfc3339();
            outcome.captured = input
                .images
                .iter()
                .zip(&results)
                .enumerate()
                .map(|(index, (pixels, r))| CaptureRecord {
                    capture: CAPTURE_VERSION,
                    request_id: request_id.to_string(),
                    index,
                    time: time.clone(),
                    model_version: model_version.clone(),
                    variant: outcome.variant.as_str().into(),
                    label: r.label.clone(),
                    top1: r.predictions[0].label.clone(),
                    probability: r.predictions[0].probability,
                    image: contract::capture::encode_image(pixels),
                })
                .collect();
        }
        outcome.answered_by = Some(model_version.clone());
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
}

/// The shadow candidate's top-1 against the answer's, image by image: (agreeing, compared).
/// A shadow that fails is logged and leaves no figure; the answer never depends on it.
fn shadow_agreement(
    shadow: &Classifier,
    images: &[contract::Rgb32],
    answered: &[inference::Answer],
) -> Option<(usize, usize)> {
    match shadow.probabilities(images) {
        Ok(rows) => {
            let agree = rows
                .iter()
                .zip(answered)
                .filter(|(s, a)| contract::top_k(s, 1) == contract::top_k(&a.probabilities, 1))
                .count();
            Some((agree, rows.len()))
        }
        Err(e) => {
            tracing::warn!(candidate = shadow.version(), error = %e, "shadow inference failed");
            None
        }
    }
}

/// The terms behind a model's prediction sets and out-of-distribution flags; none for
/// files that carry neither.
fn uncertainty_info(classifier: &Classifier, abstain_out_of_distribution: bool) -> Option<api::UncertaintyInfo> {
    let coverage = classifier.conformal().map(|c| c.coverage);
    let ood_threshold = classifier.ood_threshold();
    (coverage.is_some() || ood_threshold.is_some()).then_some(api::UncertaintyInfo {
        coverage,
        ood_threshold,
        abstain_out_of_distribution,
    })
}

/// The pointer's candidate as `/health` and `/model` show it: serving, or why not.
fn candidate_status(served: &Served) -> Option<api::CandidateStatus> {
    let terms = served.pointer.as_ref()?.candidate.as_ref()?;
    Some(api::CandidateStatus {
        model_version: terms.model.version.clone(),
        sha256: terms.model.sha256.clone(),
        percent: terms.percent,
        mode: terms.mode.as_str().into(),
        since: terms.since.clone(),
        serving: served.candidate.is_some(),
        error: served.candidate_error.clone(),
    })
}

/// One image's answer as the API gives it: the top classes, the prediction set and the
/// out-of-distribution flag where the model carries their terms, the saliency map when
/// asked (49 more forward passes: about 50 times the cost of the answer itself).
fn result(
    classifier: &Classifier,
    answer: &inference::Answer,
    pixels: &contract::Rgb32,
    shape: AnswerShape,
    abstain_ood: bool,
) -> Result<ImageResult, ApiError> {
    let (labels, row) = (classifier.labels(), &answer.probabilities);
    let predictions: Vec<Prediction> = contract::top_k(row, shape.top_k)
        .into_iter()
        .map(|i| Prediction {
            label: labels[i].clone(),
            probability: row[i],
        })
        .collect();
    let prediction_set = classifier.conformal().map(|c| {
        contract::conformal::prediction_set(row, contract::conformal::tie_break(pixels), c.threshold)
            .into_iter()
            .map(|i| labels[i].clone())
            .collect()
    });
    let out_of_distribution = answer.ood_score.zip(classifier.ood_threshold()).map(|(s, t)| s > t);
    let matched =
        predictions[0].probability >= shape.min_probability && !(abstain_ood && out_of_distribution == Some(true));
    let top = contract::argmax(row).0;
    let saliency = if shape.explain {
        let map = inference::saliency::occlusion(classifier, pixels, top, row[top])
            .map_err(|e| ApiError::new(ErrorCode::InferenceFailed, e.to_string()))?;
        Some(crate::saliency::saliency(&map, inference::saliency::SIDE, &labels[top]))
    } else {
        None
    };
    Ok(ImageResult {
        label: matched.then(|| predictions[0].label.clone()),
        probability: predictions[0].probability,
        matched,
        prediction_set,
        ood_score: answer.ood_score,
        out_of_distribution,
        saliency,
        predictions,
    })
}
