//! One record per request in CloudWatch's embedded metric format (EMF), printed as its own
//! line on stdout: CloudWatch Logs turns it into metrics, with no API call from the
//! function and nothing to batch or flush. The `_aws` directive sits at the top level of
//! the line, as the format requires; every metric and dimension it names is a top-level
//! member beside it.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// The metric namespace the stack's alarms and dashboard read.
pub const NAMESPACE: &str = "Classifier";

/// What one request did, in the units CloudWatch stores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestMetrics {
    /// The route's path, or `unknown`.
    pub route: &'static str,
    pub status: i64,
    pub latency_ms: f64,
    /// Decoding and resizing the request's images (predict only).
    pub decode_ms: f64,
    /// The model's forward passes (predict only).
    pub inference_ms: f64,
    pub images: usize,
    /// Answers below `min_probability` ("none of these").
    pub abstained: usize,
    /// The request body's size: `small` (< 64 KiB), `medium` (< 1 MiB) or `large`.
    pub size_class: &'static str,
    /// The version that answered (on /predict, the candidate's in its canary share).
    pub model_version: String,
    /// `current` or `candidate`: which of the pointer's models answered (predict only).
    pub variant: &'static str,
    /// Mean top-1 probability of the answer's images (predict only).
    pub top1_probability: Option<f32>,
    /// In a shadow share: images the candidate agreed with the answer on, of those compared.
    pub shadow: Option<(usize, usize)>,
    pub request_id: String,
    /// The signed-in caller's `sub` claim (JWT authorizer), never the token; empty if none.
    pub caller: String,
    /// Capture records of a request in the capture sample (`CAPTURE_PERCENT`), printed
    /// before the metric record: the log subscription carries them to S3.
    pub captured: Vec<contract::capture::CaptureRecord>,
}

/// Size classes by body bytes: thumbnails and 32x32 images, downscaled photos, camera
/// originals.
pub fn size_class(body_bytes: usize) -> &'static str {
    match body_bytes {
        0..65_536 => "small",
        65_536..1_048_576 => "medium",
        _ => "large",
    }
}

impl RequestMetrics {
    /// The EMF line for this request at `timestamp_ms` (milliseconds since the epoch).
    pub fn emf(&self, timestamp_ms: u64) -> Value {
        let predict = self.route == "/predict";
        let mut metrics: Vec<(&str, &str, Value)> = vec![
            ("Requests", "Count", json!(1)),
            ("Latency", "Milliseconds", json!(self.latency_ms)),
            (
                "ClientErrors",
                "Count",
                json!(u8::from((400..500).contains(&self.status))),
            ),
            // Answered by the handler, so Lambda's Errors metric never sees them.
            ("ServerErrors", "Count", json!(u8::from(self.status >= 500))),
        ];
        if predict {
            metrics.extend([
                ("DecodeLatency", "Milliseconds", json!(self.decode_ms)),
                ("InferenceLatency", "Milliseconds", json!(self.inference_ms)),
                ("Images", "Count", json!(self.images)),
                ("Abstained", "Count", json!(self.abstained)),
            ]);
            if let Some(p) = self.top1_probability {
                metrics.push(("Top1Probability", "None", json!(p)));
            }
            if let Some((agree, compared)) = self.shadow {
                metrics.extend([
                    ("ShadowAgreed", "Count", json!(agree)),
                    ("ShadowCompared", "Count", json!(compared)),
                ]);
            }
        }
        // By route, over all routes (what the stack's alarms read), and on /predict by
        // variant, so a candidate's abstain and error rates stand beside the current model's.
        let dimensions = if predict {
            json!([["Route"], [], ["Variant"]])
        } else {
            json!([["Route"], []])
        };
        let mut line = Map::new();
        line.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": dimensions,
                    "Metrics": metrics.iter().map(|(name, unit, _)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
                }],
            }),
        );
        line.insert("Route".into(), json!(self.route));
        if predict {
            line.insert("Variant".into(), json!(self.variant));
        }
        for (name, _, value) in metrics {
            line.insert(name.into(), value);
        }
        line.insert("status".into(), json!(self.status));
        line.insert("size_class".into(), json!(self.size_class));
        line.insert("model_version".into(), json!(self.model_version));
        line.insert("request_id".into(), json!(self.request_id));
        if !self.caller.is_empty() {
            line.insert("caller".into(), json!(self.caller));
        }
        Value::Object(line)
    }

    /// Print any capture records and the metric record, one line each on stdout, where
    /// Lambda's log capture picks them up.
    pub fn emit(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut out = std::io::stdout().lock();
        for record in &self.captured {
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string(record).expect("capture record serialises")
            );
        }
        let _ = writeln!(out, "{}", self.emf(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_valid_emf_with_its_metrics_at_the_top_level() {
        let m = RequestMetrics {
            route: "/predict",
            status: 200,
            latency_ms: 3.5,
            decode_ms: 1.0,
            inference_ms: 2.0,
            images: 2,
            abstained: 1,
            size_class: size_class(70_000),
            model_version: "v1".into(),
            variant: "candidate",
            top1_probability: Some(0.75),
            shadow: None,
            request_id: "r-1".into(),
            caller: String::new(),
            captured: Vec::new(),
        };
        let line = m.emf(1_700_000_000_000);
        let directive = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(line["_aws"]["Timestamp"], 1_700_000_000_000u64);
        assert_eq!(directive["Namespace"], NAMESPACE);
        for dims in directive["Dimensions"].as_array().unwrap() {
            for d in dims.as_array().unwrap() {
                assert!(
                    line[d.as_str().unwrap()].is_string(),
                    "dimension {d} is a top-level string"
                );
            }
        }
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(line[name].is_number(), "metric {name} is a top-level number");
        }
        assert!(names.contains(&"DecodeLatency") && names.contains(&"Abstained"));
        assert_eq!(
            (line["Variant"].as_str(), line["Top1Probability"].as_f64()),
            (Some("candidate"), Some(0.75))
        );
        assert!(
            line.get("ShadowAgreed").is_none(),
            "shadow figures only in a shadow share"
        );
        let shadowed = RequestMetrics {
            shadow: Some((1, 2)),
            ..m.clone()
        }
        .emf(0);
        assert_eq!(
            (shadowed["ShadowAgreed"].as_u64(), shadowed["ShadowCompared"].as_u64()),
            (Some(1), Some(2))
        );
        assert_eq!(
            (line["Abstained"].as_u64(), line["size_class"].as_str()),
            (Some(1), Some("medium"))
        );
        let health = RequestMetrics {
            route: "/health",
            status: 503,
            ..m
        }
        .emf(0);
        assert_eq!(health["ServerErrors"], 1);
        assert!(
            health.get("DecodeLatency").is_none() && health.get("Variant").is_none(),
            "predict-only metrics and dimension on predict only"
        );
        assert_eq!((size_class(10), size_class(5 << 20)), ("small", "large"));
    }
}
