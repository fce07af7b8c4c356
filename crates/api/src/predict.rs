//! `POST /predict`: the JSON request (one image or a batch, as a type) and the answers.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ErrorCode;

/// The images of a JSON request: `"image"` answers one result, `"images"` a list.
#[derive(Debug, Clone, PartialEq)]
pub enum Images {
    Single(String),
    Batch(Vec<String>),
}

impl Images {
    pub fn len(&self) -> usize {
        match self {
            Images::Single(_) => 1,
            Images::Batch(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Each base64 text with the name an error message gives it (`image`, `images[3]`).
    pub fn items(&self) -> Vec<(String, &str)> {
        match self {
            Images::Single(s) => vec![("image".into(), s.as_str())],
            Images::Batch(v) => v
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("images[{i}]"), s.as_str()))
                .collect(),
        }
    }
}

/// A JSON `POST /predict` body. Numbers may also arrive as strings (`"top_k": "3"`),
/// as form-minded clients send them; everything else is checked strictly by [`Self::parse`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct PredictRequest {
    pub images: Images,
    pub top_k: Option<usize>,
    pub min_probability: Option<f32>,
    /// Ask for each image's saliency map (at most [`MAX_EXPLAIN_IMAGES`] images).
    pub explain: bool,
}

/// The most images one request may ask saliency maps for: a map is small, but a batch
/// of them is not what the batch route is for.
pub const MAX_EXPLAIN_IMAGES: usize = 8;

/// Why a request body is refused, with the code the API answers.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    pub code: ErrorCode,
    pub message: String,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RequestError {}

fn refuse(code: ErrorCode, message: impl Into<String>) -> RequestError {
    RequestError {
        code,
        message: message.into(),
    }
}

impl PredictRequest {
    pub fn single(image: impl Into<String>) -> Self {
        Self {
            images: Images::Single(image.into()),
            top_k: None,
            min_probability: None,
            explain: false,
        }
    }

    pub fn batch(images: Vec<String>) -> Self {
        Self {
            images: Images::Batch(images),
            top_k: None,
            min_probability: None,
            explain: false,
        }
    }

    /// Parse a body; `max_top_k` is the served model's class count.
    pub fn parse(body: &[u8], max_top_k: usize) -> Result<Self, RequestError> {
        let value: Value = serde_json::from_slice(body).map_err(|e| invalid_json(e.to_string()))?;
        Self::from_value(value, max_top_k)
    }

    pub fn from_value(value: Value, max_top_k: usize) -> Result<Self, RequestError> {
        let Value::Object(mut fields) = value else {
            return Err(invalid_json(format!("expected an object, got {}", kind(&value))));
        };
        let top_k = fields
            .remove("top_k")
            .filter(|v| !v.is_null())
            .map(|v| parse_top_k(&v, max_top_k))
            .transpose()?;
        let min_probability = fields
            .remove("min_probability")
            .filter(|v| !v.is_null())
            .map(|v| parse_min_probability(&v))
            .transpose()?;
        let explain = fields
            .remove("explain")
            .filter(|v| !v.is_null())
            .map(|v| parse_explain(&v))
            .transpose()?
            .unwrap_or(false);
        let image = fields.remove("image").filter(|v| !v.is_null());
        let images = fields.remove("images").filter(|v| !v.is_null());
        let images = match (image, images) {
            (Some(_), Some(_)) => {
                return Err(refuse(
                    ErrorCode::AmbiguousRequest,
                    "send either \"image\" or \"images\", not both",
                ));
            }
            (None, None) => {
                return Err(refuse(
                    ErrorCode::MissingImage,
                    "JSON body needs \"image\": \"<base64>\" or \"images\": [\"<base64>\", ...]",
                ));
            }
            (Some(v), None) => Images::Single(base64_field(v, "image")?),
            (None, Some(Value::Array(items))) => {
                if items.is_empty() {
                    return Err(refuse(
                        ErrorCode::EmptyBatch,
                        "\"images\" is empty; send at least one image",
                    ));
                }
                let texts = items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| base64_field(v, &format!("images[{i}]")))
                    .collect::<Result<_, _>>()?;
                Images::Batch(texts)
            }
            (None, Some(other)) => {
                return Err(invalid_json(format!(
                    "\"images\" must be an array, got {}",
                    kind(&other)
                )));
            }
        };
        if explain && images.len() > MAX_EXPLAIN_IMAGES {
            return Err(refuse(
                ErrorCode::InvalidExplain,
                format!(
                    "explain answers at most {MAX_EXPLAIN_IMAGES} images per request, got {}; send the rest without it",
                    images.len()
                ),
            ));
        }
        Ok(Self {
            images,
            top_k,
            min_probability,
            explain,
        })
    }
}

fn invalid_json(reason: String) -> RequestError {
    refuse(
        ErrorCode::InvalidJson,
        format!("body is not valid JSON of the expected shape: {reason}"),
    )
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn base64_field(v: Value, at: &str) -> Result<String, RequestError> {
    match v {
        Value::String(s) => Ok(s),
        _ => Err(refuse(
            ErrorCode::InvalidImageField,
            format!("{at} must be a base64 string"),
        )),
    }
}

/// `top_k` from a JSON number or a query-string text: an integer in `1..=max`.
pub fn parse_top_k(v: &Value, max: usize) -> Result<usize, RequestError> {
    let k = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match k {
        Some(k) if (1..=max as u64).contains(&k) => Ok(k as usize),
        _ => Err(refuse(
            ErrorCode::InvalidTopK,
            format!("top_k must be an integer from 1 to {max}, got {v}"),
        )),
    }
}

/// `min_probability` from a JSON number or a query-string text: a number in `0..=1`.
pub fn parse_min_probability(v: &Value) -> Result<f32, RequestError> {
    let p = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match p {
        Some(p) if (0.0..=1.0).contains(&p) => Ok(p as f32),
        _ => Err(refuse(
            ErrorCode::InvalidMinProbability,
            format!("min_probability must be a number from 0 to 1, got {v}"),
        )),
    }
}

/// `explain` from a JSON boolean or a query-string text (`true`/`false`, `1`/`0`).
pub fn parse_explain(v: &Value) -> Result<bool, RequestError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if matches!(s.trim(), "true" | "1") => Ok(true),
        Value::String(s) if matches!(s.trim(), "false" | "0") => Ok(false),
        _ => Err(refuse(
            ErrorCode::InvalidExplain,
            format!("explain must be true or false, got {v}"),
        )),
    }
}

impl TryFrom<Value> for PredictRequest {
    type Error = RequestError;
    fn try_from(v: Value) -> Result<Self, RequestError> {
        Self::from_value(v, usize::MAX)
    }
}

impl From<PredictRequest> for Value {
    fn from(r: PredictRequest) -> Value {
        let mut m = serde_json::Map::new();
        match r.images {
            Images::Single(s) => m.insert("image".into(), Value::String(s)),
            Images::Batch(v) => m.insert("images".into(), v.into()),
        };
        if let Some(k) = r.top_k {
            m.insert("top_k".into(), k.into());
        }
        if let Some(p) = r.min_probability {
            m.insert("min_probability".into(), f64::from(p).into());
        }
        if r.explain {
            m.insert("explain".into(), true.into());
        }
        Value::Object(m)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub label: String,
    pub probability: f32,
}

/// One image's answer, most probable class first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageResult {
    /// The top class, or `None` when its probability is under the request's
    /// `min_probability`: the image matches none of the classes.
    pub label: Option<String>,
    pub probability: f32,
    /// False when `label` is null for being under `min_probability`.
    pub matched: bool,
    pub predictions: Vec<Prediction>,
    /// The smallest set of labels that holds the true one with the model's stated
    /// coverage (`GET /model`), most probable first; absent for models without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_set: Option<Vec<String>>,
    /// How far the image lies from the training data (higher is further).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ood_score: Option<f32>,
    /// Whether `ood_score` is over the model's threshold: probably none of the classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_distribution: Option<bool>,
    /// Where the model looked for the top class, when the request asked (`explain`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saliency: Option<Saliency>,
}

/// A class activation map: how much each cell of the image counted for `label`, from 0
/// (not at all) to 1 (most), on a `width` x `height` grid over the whole image (as the
/// model saw it, resized without cropping).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Saliency {
    pub label: String,
    pub width: usize,
    pub height: usize,
    /// Rows first.
    pub values: Vec<f32>,
    /// The same map as a 32x32 PNG heat overlay (transparent where it did not count),
    /// base64: stretch it over the photo.
    pub png: String,
}

/// The answer to a request with `"image"` or a raw image body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictResponse {
    #[serde(flatten)]
    pub result: ImageResult,
    pub model_version: String,
}

/// The answer to a request with `"images"`, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchPredictResponse {
    pub results: Vec<ImageResult>,
    pub model_version: String,
}

/// Either answer, for clients that send both kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PredictAnswer {
    Batch(BatchPredictResponse),
    Single(PredictResponse),
}

impl PredictAnswer {
    pub fn results(&self) -> &[ImageResult] {
        match self {
            PredictAnswer::Batch(b) => &b.results,
            PredictAnswer::Single(s) => std::slice::from_ref(&s.result),
        }
    }

    pub fn model_version(&self) -> &str {
        match self {
            PredictAnswer::Batch(b) => &b.model_version,
            PredictAnswer::Single(s) => &s.model_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn code(body: Value) -> ErrorCode {
        PredictRequest::from_value(body, 10).unwrap_err().code
    }

    #[test]
    fn requests_parse_and_round_trip() {
        let r = PredictRequest::parse(br#"{"image":"aGk=","top_k":"3","min_probability":0.5}"#, 10).unwrap();
        assert_eq!(r.images, Images::Single("aGk=".into()));
        assert_eq!((r.top_k, r.min_probability), (Some(3), Some(0.5)));
        let back: PredictRequest = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let b = PredictRequest::batch(vec!["a".into(), "b".into()]);
        assert_eq!(serde_json::to_value(&b).unwrap(), json!({"images": ["a", "b"]}));
        assert_eq!(b.images.items()[1].0, "images[1]");
    }

    #[test]
    fn each_malformed_shape_has_its_code() {
        use ErrorCode::*;
        assert_eq!(code(json!([1])), InvalidJson);
        assert_eq!(code(json!({"images": "x"})), InvalidJson);
        assert_eq!(code(json!({})), MissingImage);
        assert_eq!(code(json!({"image": "a", "images": ["b"]})), AmbiguousRequest);
        assert_eq!(code(json!({"images": []})), EmptyBatch);
        assert_eq!(code(json!({"image": 5})), InvalidImageField);
        assert_eq!(code(json!({"images": ["a", {}]})), InvalidImageField);
        assert_eq!(code(json!({"image": "a", "top_k": 11})), InvalidTopK);
        assert_eq!(code(json!({"image": "a", "top_k": 0})), InvalidTopK);
        assert_eq!(code(json!({"image": "a", "top_k": 2.5})), InvalidTopK);
        assert_eq!(
            code(json!({"image": "a", "min_probability": 1.5})),
            InvalidMinProbability
        );
        assert_eq!(
            code(json!({"image": "a", "min_probability": "x"})),
            InvalidMinProbability
        );
        assert!(PredictRequest::parse(b"{", 10).unwrap_err().message.contains("EOF"));
        assert_eq!(code(json!({"image": "a", "explain": "yes"})), InvalidExplain);
        let many: Vec<String> = vec!["a".into(); MAX_EXPLAIN_IMAGES + 1];
        assert_eq!(code(json!({"images": many, "explain": true})), InvalidExplain);
        let r = PredictRequest::from_value(json!({"image": "a", "explain": "true"}), 10).unwrap();
        assert!(r.explain);
        assert_eq!(serde_json::to_value(&r).unwrap()["explain"], json!(true));
    }

    #[test]
    fn single_and_batch_answers_are_told_apart() {
        let result = ImageResult {
            label: None,
            probability: 0.4,
            matched: false,
            predictions: vec![Prediction {
                label: "cat".into(),
                probability: 0.4,
            }],
            prediction_set: None,
            ood_score: None,
            out_of_distribution: None,
            saliency: None,
        };
        let single = PredictResponse {
            result: result.clone(),
            model_version: "v".into(),
        };
        let text = serde_json::to_string(&single).unwrap();
        assert!(text.contains("\"label\":null"), "{text}");
        let parsed: PredictAnswer = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, PredictAnswer::Single(single));
        let batch = serde_json::json!({"results": [result], "model_version": "v"});
        let parsed: PredictAnswer = serde_json::from_value(batch).unwrap();
        assert!(matches!(parsed, PredictAnswer::Batch(ref b) if b.results.len() == 1));
        assert_eq!(parsed.model_version(), "v");
    }
}
