//! The wire types against `openapi.yaml`: every answer type, fully populated and
//! serialised, validates against its schema with no field the spec lacks and none it
//! names missing; the error codes are the spec's enum; the spec's examples parse.

use std::collections::BTreeSet;

use api::*;
use serde_json::{Value, json};

fn spec() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml")).unwrap();
    serde_yaml_ng::from_str(&text).unwrap()
}

fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .trim_start_matches("#/")
                .split('/')
                .fold(spec, |node, part| &node[part]);
            assert!(!target.is_null(), "dangling $ref {r}");
            resolve(spec, target)
        }
        None => schema,
    }
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64(),
        other => panic!("schema type {other} not handled"),
    }
}

/// The JSON Schema keywords openapi.yaml uses, plus: an object may carry only the
/// properties its schema (or the allOf it is part of) names.
fn validate(spec: &Value, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut allowed = BTreeSet::new();
        for p in parts {
            let p = resolve(spec, p);
            allowed.extend(
                p["properties"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, _)| k.clone()),
            );
            let mut loose = p.clone();
            loose["x-loose"] = json!(true);
            validate(spec, &loose, v, at, errors);
        }
        for k in v.as_object().into_iter().flatten().map(|(k, _)| k) {
            if !allowed.contains(k) {
                errors.push(format!("{at}: {k} is not in the spec"));
            }
        }
        return;
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = options
            .iter()
            .filter(|o| {
                let mut e = Vec::new();
                validate(spec, o, v, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!("{at}: matches {matching} of oneOf"));
        }
        return;
    }
    match &schema["type"] {
        Value::String(t) if !type_ok(t, v) => errors.push(format!("{at}: {v} is not {t}")),
        Value::Array(ts) if !ts.iter().any(|t| type_ok(t.as_str().unwrap(), v)) => {
            errors.push(format!("{at}: {v} is none of {ts:?}"))
        }
        _ => {}
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        errors.push(format!("{at}: {v} is not {c}"));
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        errors.push(format!("{at}: {v} is not one of {e:?}"));
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64())
        && x < min
    {
        errors.push(format!("{at}: {x} < {min}"));
    }
    if let (Some(max), Some(x)) = (schema["maximum"].as_f64(), v.as_f64())
        && x > max
    {
        errors.push(format!("{at}: {x} > {max}"));
    }
    if let Some(items) = v.as_array() {
        if let Some(min) = schema["minItems"].as_u64()
            && (items.len() as u64) < min
        {
            errors.push(format!("{at}: fewer than {min} items"));
        }
        if let Some(max) = schema["maxItems"].as_u64()
            && (items.len() as u64) > max
        {
            errors.push(format!("{at}: more than {max} items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                validate(spec, item_schema, item, &format!("{at}[{i}]"), errors);
            }
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            if !obj.contains_key(r.as_str().unwrap()) {
                errors.push(format!("{at}: required {r} is missing"));
            }
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, child) in obj {
                match props.get(k) {
                    Some(s) => validate(spec, s, child, &format!("{at}.{k}"), errors),
                    None if schema.get("x-loose").is_none() => errors.push(format!("{at}: {k} is not in the spec")),
                    None => {}
                }
            }
        }
    }
}

fn check(spec: &Value, name: &str, v: &Value) {
    let mut errors = Vec::new();
    let schema = json!({"$ref": format!("#/components/schemas/{name}")});
    validate(spec, &schema, v, name, &mut errors);
    assert!(errors.is_empty(), "{name}: {errors:#?}\n{v}");
}

/// Every property the spec names for an answer is one the type writes.
fn writes_every_property(spec: &Value, name: &str, v: &Value) {
    let schema = resolve(spec, &spec["components"]["schemas"][name]);
    let parts = match schema.get("allOf").and_then(Value::as_array) {
        Some(parts) => parts.iter().map(|p| resolve(spec, p)).collect(),
        None => vec![schema],
    };
    for p in parts {
        for (k, child) in p["properties"].as_object().into_iter().flatten() {
            assert!(
                v.get(k).is_some(),
                "{name}.{k} is in the spec but the type never writes it"
            );
            let child = resolve(spec, child);
            if child.get("properties").is_some() {
                for nested in child["properties"].as_object().unwrap().keys() {
                    assert!(v[k].get(nested).is_some(), "{name}.{k}.{nested} is never written");
                }
            }
        }
    }
}

fn result(label: Option<&str>) -> ImageResult {
    ImageResult {
        label: label.map(Into::into),
        probability: 0.7,
        matched: label.is_some(),
        predictions: vec![
            Prediction {
                label: "ship".into(),
                probability: 0.7,
            },
            Prediction {
                label: "cat".into(),
                probability: 0.2,
            },
        ],
        prediction_set: Some(vec!["ship".into(), "cat".into()]),
        ood_score: Some(-7.5),
        out_of_distribution: Some(false),
        saliency: Some(Saliency {
            label: "ship".into(),
            width: 2,
            height: 2,
            values: vec![1.0, 0.5, 0.0, 0.25],
            png: "iVBORw0KGgo=".into(),
        }),
    }
}

fn refresh() -> RefreshStatus {
    RefreshStatus {
        enabled: true,
        interval_seconds: 60,
        last_check: Some("2026-11-27T00:00:00Z".into()),
        last_outcome: Some(RefreshOutcome::Failed),
        last_error: Some("sha256 mismatch".into()),
    }
}

fn candidate() -> Option<CandidateStatus> {
    Some(CandidateStatus {
        model_version: "fedcba9876543210".into(),
        sha256: "ab".repeat(32),
        percent: 10,
        mode: "shadow".into(),
        since: "2026-12-04T00:00:00Z".into(),
        serving: false,
        error: Some("labels differ".into()),
    })
}

fn model_info() -> ModelInfo {
    ModelInfo {
        labels: vec!["cat".into(), "ship".into()],
        model_version: "0123456789abcdef".into(),
        val_accuracy: Some(0.87),
        dataset: Some("cifar10".into()),
        trained_at: Some("2026-11-27T00:00:00Z".into()),
        temperature: 0.52,
        val_ece: Some(0.017),
        tta: "mirror".into(),
        input: InputSpec {
            width: 32,
            height: 32,
            channels: 3,
            resize_filter: "triangle".into(),
            alpha: "flattened onto white".into(),
        },
        limits: Limits {
            max_body_bytes: 6_000_000,
            max_images: 64,
            max_image_side: 4096,
            max_image_pixels: 16_777_216,
            top_k: IntRange {
                default: 5,
                min: 1,
                max: 10,
            },
            min_probability: FloatRange {
                default: 0.0,
                min: 0.0,
                max: 1.0,
            },
        },
        source: "s3://bucket/models/latest.json".into(),
        refresh: refresh(),
        candidate: candidate(),
        uncertainty: Some(UncertaintyInfo {
            coverage: Some(0.9),
            ood_threshold: Some(-6.2),
            abstain_out_of_distribution: false,
        }),
    }
}

#[test]
fn every_answer_type_matches_its_schema_both_ways() {
    let spec = spec();
    let single = serde_json::to_value(PredictResponse {
        result: result(Some("ship")),
        model_version: "v1".into(),
    })
    .unwrap();
    let unmatched = serde_json::to_value(PredictResponse {
        result: result(None),
        model_version: "v1".into(),
    })
    .unwrap();
    let batch = serde_json::to_value(BatchPredictResponse {
        results: vec![result(Some("ship")), result(None)],
        model_version: "v1".into(),
    })
    .unwrap();
    let health = serde_json::to_value(Health {
        status: "ok".into(),
        model_version: "v1".into(),
        source: "embedded:models/cifar10.onnx".into(),
        refresh: refresh(),
        candidate: candidate(),
    })
    .unwrap();
    let info = serde_json::to_value(model_info()).unwrap();
    let stored = serde_json::to_value(FeedbackResponse {
        feedback_id: "fb-1".into(),
        model_version: "v1".into(),
    })
    .unwrap();
    let cases = [
        ("FeedbackResponse", &stored),
        ("SingleResponse", &single),
        ("SingleResponse", &unmatched),
        ("BatchResponse", &batch),
        ("Health", &health),
        ("ModelInfo", &info),
    ];
    for (name, v) in cases {
        check(&spec, name, v);
        writes_every_property(&spec, name, v);
    }
    for code in ErrorCode::ALL {
        let e = serde_json::to_value(ErrorBody::new(code, "what to fix")).unwrap();
        check(&spec, "Error", &e);
    }
    // Requests, as a client writes them.
    let mut one = PredictRequest::single("aGk=");
    one.top_k = Some(3);
    one.min_probability = Some(0.5);
    check(&spec, "SingleRequest", &serde_json::to_value(&one).unwrap());
    let many = PredictRequest::batch(vec!["aGk=".into(); 2]);
    check(&spec, "BatchRequest", &serde_json::to_value(&many).unwrap());
    for feedback in [
        FeedbackRequest {
            label: "cat".into(),
            request_id: Some("r-1".into()),
            image: None,
        },
        FeedbackRequest {
            label: "cat".into(),
            request_id: None,
            image: Some("aGk=".into()),
        },
    ] {
        check(&spec, "FeedbackRequest", &serde_json::to_value(&feedback).unwrap());
    }
}

#[test]
fn a_field_the_spec_lacks_is_caught() {
    let spec = spec();
    let mut v = serde_json::to_value(PredictResponse {
        result: result(Some("ship")),
        model_version: "v1".into(),
    })
    .unwrap();
    let errors = |v: &Value| {
        let mut errors = Vec::new();
        let schema = json!({"$ref": "#/components/schemas/SingleResponse"});
        validate(&spec, &schema, v, "r", &mut errors);
        errors
    };
    v["extra"] = json!(1);
    assert_eq!(errors(&v), ["r: extra is not in the spec"]);
    v.as_object_mut().unwrap().remove("extra");
    v.as_object_mut().unwrap().remove("matched");
    assert_eq!(errors(&v), ["r: required \"matched\" is missing"]);
}

#[test]
fn error_codes_are_the_specs_enum() {
    let spec = spec();
    let listed: Vec<&str> = spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let ours: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, ours);
}

#[test]
fn the_specs_examples_parse_into_the_types() {
    let spec = spec();
    let predict = &spec["paths"]["/predict"]["post"];
    let examples = predict["requestBody"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap();
    assert_eq!(examples.len(), 3);
    for (name, e) in examples {
        let r: PredictRequest =
            serde_json::from_value(e["value"].clone()).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(!r.images.is_empty());
    }
    for (name, e) in predict["responses"]["200"]["content"]["application/json"]["examples"]
        .as_object()
        .unwrap()
    {
        let a: PredictAnswer = serde_json::from_value(e["value"].clone()).unwrap_or_else(|err| panic!("{name}: {err}"));
        check(&spec, "SingleResponse", &serde_json::to_value(a).unwrap());
    }
    let errors = &spec["components"]["responses"]["Error"]["content"]["application/json"]["examples"];
    for (name, e) in errors.as_object().unwrap() {
        let b: ErrorBody = serde_json::from_value(e["value"].clone()).unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_eq!(b.error.code.status(), 400);
    }
}

/// What code generators need: a unique `operationId` on every operation, its refusals
/// (4xx) listed, and a license.
#[test]
fn spec_is_fit_for_client_generators() {
    let spec = spec();
    assert!(spec["info"]["license"]["name"].is_string(), "info.license is missing");
    let mut ids = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
            assert!(ids.insert(id.to_string()), "operationId {id} is used twice");
            let codes: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            assert!(
                codes.iter().any(|c| c.starts_with('4')),
                "{method} {path} lists no 4xx answer: {codes:?}"
            );
        }
    }
    assert_eq!(
        ids,
        ["classify", "feedback", "health", "model", "page"]
            .map(String::from)
            .into()
    );
}
