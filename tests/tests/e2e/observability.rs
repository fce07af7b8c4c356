//! What operations see of a request, read from the running function's own output: one
//! CloudWatch embedded-metric-format record per request on stdout (checked against the
//! EMF specification: `_aws` at the top level of its own JSON line, every metric and
//! dimension it names a top-level member), and the request id in the `x-request-id`
//! header, the error body and the log lines.

use serde_json::Value;

use e2e::*;

/// The EMF specification's rules for one line; the problems found.
fn emf_problems(line: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let aws = &line["_aws"];
    if !aws["Timestamp"].is_u64() {
        problems.push("_aws.Timestamp is not milliseconds since the epoch".into());
    }
    let Some(directives) = aws["CloudWatchMetrics"].as_array().filter(|d| !d.is_empty()) else {
        return vec!["_aws.CloudWatchMetrics is not a non-empty array".into()];
    };
    for d in directives {
        if !d["Namespace"].as_str().is_some_and(|n| !n.is_empty() && n.len() <= 255) {
            problems.push(format!("bad Namespace in {d}"));
        }
        for set in d["Dimensions"].as_array().into_iter().flatten() {
            let names = set.as_array().cloned().unwrap_or_default();
            // An empty set is allowed: the metrics with no dimension at all.
            if names.len() > 30 {
                problems.push(format!("a dimension set holds {} names", names.len()));
            }
            for n in names {
                let n = n.as_str().unwrap_or_default();
                if !line[n].is_string() {
                    problems.push(format!("dimension {n} is not a top-level string"));
                }
            }
        }
        let metrics = d["Metrics"].as_array().cloned().unwrap_or_default();
        if metrics.is_empty() || metrics.len() > 100 {
            problems.push(format!("{} metrics in a directive", metrics.len()));
        }
        for m in metrics {
            let name = m["Name"].as_str().unwrap_or_default();
            if !line[name].is_number() {
                problems.push(format!("metric {name} is not a top-level number"));
            }
        }
    }
    problems
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn every_request_leaves_a_metric_record_and_a_request_id() {
    let work = tempfile::tempdir().unwrap();
    let watch = start_function(&[], work.path());
    let agent = http();
    let cat = std::fs::read(root().join("tests/fixtures/cat.jpg")).unwrap();
    let mut ids = Vec::new();
    let mut call = |method: &str, path: &str, content_type: &str, body: &[u8]| {
        let url = format!("{}{path}", watch.base);
        let mut r = match method {
            "GET" => agent.get(&url).call(),
            _ => agent.post(&url).header("content-type", content_type).send(body),
        }
        .expect("answered");
        let id = r
            .headers()
            .get(api::REQUEST_ID_HEADER)
            .map(|v| v.to_str().unwrap().to_string());
        let id = id.unwrap_or_else(|| panic!("{method} {path}: no {} header", api::REQUEST_ID_HEADER));
        assert!(!id.is_empty() && id != "-", "{method} {path}: request id {id:?}");
        let text = r.body_mut().read_to_string().unwrap();
        if r.status().as_u16() >= 400 {
            let e: api::ErrorBody = serde_json::from_str(&text).unwrap();
            assert_eq!(e.error.request_id.as_deref(), Some(id.as_str()), "{text}");
        }
        ids.push(id);
    };
    call("POST", "/predict", "image/jpeg", &cat);
    call("POST", "/predict?min_probability=1", "image/jpeg", &cat);
    call("POST", "/predict", "image/jpeg", b"not an image");
    call("GET", "/health", "", b"");
    call("GET", "/nowhere", "", b"");
    let log = watch.function.log_text();
    let records: Vec<Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v.get("_aws").is_some())
        .collect();
    // Records of the health probes start_function sent come first.
    assert!(
        records.len() >= ids.len(),
        "{} records for {} requests:\n{log}",
        records.len(),
        ids.len()
    );
    let ours = &records[records.len() - ids.len()..];
    for (record, id) in ours.iter().zip(&ids) {
        let problems = emf_problems(record);
        assert!(problems.is_empty(), "{record}: {problems:?}");
        assert_eq!(record["request_id"], id.as_str());
        assert_eq!(record["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Classifier");
        for field in ["model_version", "size_class", "status"] {
            assert!(!record[field].is_null(), "{field} missing in {record}");
        }
    }
    let routes: Vec<&str> = ours.iter().map(|r| r["Route"].as_str().unwrap()).collect();
    assert_eq!(routes, ["/predict", "/predict", "/predict", "/health", "unknown"]);
    assert!(ours[0]["DecodeLatency"].as_f64().unwrap() > 0.0 && ours[0]["InferenceLatency"].as_f64().unwrap() > 0.0);
    assert_eq!(
        (ours[0]["Abstained"].as_u64(), ours[1]["Abstained"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(
        (ours[2]["ClientErrors"].as_u64(), ours[2]["ServerErrors"].as_u64()),
        (Some(1), Some(0))
    );
    // The request's log line carries the same id, in the event's span and its own field.
    for id in &ids {
        assert!(
            log.lines()
                .any(|l| l.contains("\"message\":\"request\"") && l.contains(id.as_str())),
            "no log line for {id}"
        );
    }
    // No metric directive hides inside a logger line, where CloudWatch would not see it.
    for l in log.lines().filter(|l| l.contains("CloudWatchMetrics")) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}"));
        assert!(v.get("_aws").is_some(), "nested directive: {l}");
    }
}

#[test]
fn the_checker_finds_what_the_specification_forbids() {
    let good = serde_json::json!({
        "_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Namespace": "N", "Dimensions": [["Route"]], "Metrics": [{"Name": "Latency"}]}]},
        "Route": "/predict", "Latency": 1.5,
    });
    assert!(emf_problems(&good).is_empty());
    let nested = serde_json::json!({"fields": good});
    assert!(!emf_problems(&nested).is_empty());
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("Latency");
    assert_eq!(emf_problems(&missing), ["metric Latency is not a top-level number"]);
}
