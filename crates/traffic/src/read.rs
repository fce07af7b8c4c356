//! Reading captured predictions and corrections from S3 or a folder.
//!
//! What lands under `capture/`: the stack's log subscription hands each batch of matching
//! log lines to Firehose as one record, a gzip stream of a CloudWatch Logs envelope
//! (`{"messageType": "DATA_MESSAGE", ..., "logEvents": [{"message": "<the line>"}, ...]}`;
//! `CONTROL_MESSAGE` envelopes test the subscription and carry none). Firehose, with no
//! transform and no compression of its own, writes the records one after another into
//! `capture/YYYY/MM/DD/HH/<stream>-...` objects: a multi-member gzip file whose members are
//! JSON envelopes with no delimiter between them. That is what [`parse_capture_object`]
//! reads; a plain text file of the function's stdout (JSON lines) is read too.

use std::io::Read;

use contract::capture::{CaptureRecord, FeedbackRecord};
use registry::store::Store;
use serde::Deserialize;
use serde_json::Value;

use crate::error::Result;

/// What a capture location held.
#[derive(Debug, Default)]
pub struct Captured {
    pub records: Vec<CaptureRecord>,
    /// Objects read.
    pub files: usize,
    /// Records, envelopes or files that did not parse: skipped and counted, never fatal.
    pub skipped: usize,
}

/// A CloudWatch Logs subscription envelope, as Firehose receives it (after gunzip).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    message_type: String,
    #[serde(default)]
    log_events: Vec<LogEvent>,
}

#[derive(Deserialize)]
struct LogEvent {
    message: String,
}

/// Open `uri` as a store: `s3://bucket/prefix/`, `file://dir/`, or a plain folder path.
pub async fn open(uri: &str) -> Result<Store> {
    let uri = if uri.contains("://") {
        uri.to_string()
    } else {
        let path = std::path::absolute(uri).unwrap_or_else(|_| uri.into());
        format!("file://{}/", path.display().to_string().trim_end_matches('/'))
    };
    Ok(Store::open(&uri).await?)
}

/// Every capture record under `uri` whose time is at or after `since` (RFC 3339).
pub async fn captures(uri: &str, since: Option<&str>) -> Result<Captured> {
    let store = open(uri).await?;
    let mut out = Captured::default();
    for listed in store.list(store.prefix()).await? {
        // Firehose's failed deliveries, not data.
        if listed.key[store.prefix().len()..].starts_with("errors/") {
            continue;
        }
        let Some(bytes) = store.get(&listed.key).await? else {
            continue;
        };
        out.files += 1;
        let (records, skipped) = parse_capture_object(&bytes);
        out.skipped += skipped;
        out.records.extend(
            records
                .into_iter()
                .filter(|r| since.is_none_or(|s| r.time.as_str() >= s)),
        );
    }
    Ok(out)
}

/// The capture records of one object, and how many things in it did not parse.
pub fn parse_capture_object(bytes: &[u8]) -> (Vec<CaptureRecord>, usize) {
    let mut records = Vec::new();
    let mut skipped = 0;
    let line = |text: &str, records: &mut Vec<CaptureRecord>, skipped: &mut usize| {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if value.get("capture").is_none() {
            return; // another log line (a metric record, a log message)
        }
        match serde_json::from_value::<CaptureRecord>(value) {
            Ok(r) => records.push(r),
            Err(_) => *skipped += 1,
        }
    };
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut data = Vec::new();
        if flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut data).is_err() {
            // A truncated object: keep what decoded before the damage.
            skipped += 1;
        }
        for envelope in serde_json::Deserializer::from_slice(&data).into_iter::<Envelope>() {
            match envelope {
                Ok(e) if e.message_type == "DATA_MESSAGE" => {
                    for event in e.log_events {
                        line(&event.message, &mut records, &mut skipped);
                    }
                }
                Ok(_) => {}
                Err(_) => {
                    skipped += 1;
                    break;
                }
            }
        }
    } else {
        for text in String::from_utf8_lossy(bytes).lines() {
            line(text, &mut records, &mut skipped);
        }
    }
    (records, skipped)
}

/// Every correction under `uri` (one JSON object each), and how many did not parse.
pub async fn feedback(uri: &str) -> Result<(Vec<FeedbackRecord>, usize)> {
    let store = open(uri).await?;
    let mut records = Vec::new();
    let mut skipped = 0;
    for listed in store.list(store.prefix()).await? {
        if !listed.key.ends_with(".json") {
            continue;
        }
        let Some(bytes) = store.get(&listed.key).await? else {
            continue;
        };
        match serde_json::from_slice::<FeedbackRecord>(&bytes) {
            Ok(r) => records.push(r),
            Err(_) => skipped += 1,
        }
    }
    Ok((records, skipped))
}

/// Test and tooling helper: `lines` as Firehose would write them, one gzip member per
/// envelope of `per_envelope` lines, concatenated.
pub fn firehose_object(lines: &[String], per_envelope: usize) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::new();
    for chunk in lines.chunks(per_envelope.max(1)) {
        let envelope = serde_json::json!({
            "messageType": "DATA_MESSAGE",
            "owner": "123456789012",
            "logGroup": "/aws/lambda/classify",
            "logStream": "2026/12/04/[$LATEST]0123",
            "subscriptionFilters": ["CaptureSubscription"],
            "logEvents": chunk.iter().enumerate().map(|(i, m)| serde_json::json!({"id": i.to_string(), "timestamp": 0, "message": m})).collect::<Vec<_>>(),
        });
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(envelope.to_string().as_bytes()).expect("gzip in memory");
        out.extend(gz.finish().expect("gzip in memory"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, time: &str) -> String {
        serde_json::to_string(&CaptureRecord {
            capture: 1,
            request_id: id.into(),
            index: 0,
            time: time.into(),
            model_version: "v".into(),
            variant: "current".into(),
            label: Some("cat".into()),
            top1: "cat".into(),
            probability: 0.9,
            image: contract::capture::encode_image(&[7u8; contract::IMAGE_BYTES]),
        })
        .unwrap()
    }

    #[test]
    fn firehose_objects_and_plain_logs_read_alike_and_junk_is_counted() {
        let lines: Vec<String> = (0..5)
            .map(|i| record(&format!("r{i}"), "2026-12-04T00:00:00Z"))
            .collect();
        let mut object = firehose_object(&lines, 2);
        // A control message between data, as CloudWatch sends when the subscription is made.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(
            &mut gz,
            br#"{"messageType":"CONTROL_MESSAGE","logEvents":[{"message":"CWL CONTROL MESSAGE"}]}"#,
        )
        .unwrap();
        object.extend(gz.finish().unwrap());
        let (records, skipped) = parse_capture_object(&object);
        assert_eq!((records.len(), skipped), (5, 0));
        assert_eq!(records[4].request_id, "r4");

        let mut plain = lines.join("\n");
        plain.push_str("\n{\"_aws\": {}, \"Requests\": 1}\nnot json\n{\"capture\": 1, \"request_id\": 5}\n");
        let (records, skipped) = parse_capture_object(plain.as_bytes());
        assert_eq!(
            (records.len(), skipped),
            (5, 1),
            "a malformed capture line is counted, other lines ignored"
        );

        let bad = firehose_object(&["{\"capture\": \"x\"}".to_string()], 1);
        assert_eq!(parse_capture_object(&bad), (vec![], 1));
        let truncated = &object[..object.len() - 20];
        let (records, skipped) = parse_capture_object(truncated);
        assert!(
            records.len() >= 4 && skipped >= 1,
            "{} records, {skipped} skipped",
            records.len()
        );
    }

    #[test]
    fn captures_and_feedback_from_a_folder_with_a_time_filter() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let hour = dir.path().join("capture/2026/12/04/10");
        std::fs::create_dir_all(&hour).unwrap();
        std::fs::write(
            hour.join("stream-1"),
            firehose_object(
                &[
                    record("old", "2026-11-01T00:00:00Z"),
                    record("new", "2026-12-04T10:00:00Z"),
                ],
                1,
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("capture/errors/processing-failed")).unwrap();
        std::fs::write(dir.path().join("capture/errors/processing-failed/x"), b"junk").unwrap();
        let uri = dir.path().join("capture").display().to_string();
        let all = rt.block_on(captures(&uri, None)).unwrap();
        assert_eq!((all.records.len(), all.files, all.skipped), (2, 1, 0));
        let recent = rt.block_on(captures(&uri, Some("2026-12-01T00:00:00Z"))).unwrap();
        assert_eq!(
            recent.records.iter().map(|r| r.request_id.as_str()).collect::<Vec<_>>(),
            ["new"]
        );

        let fb = dir.path().join("feedback/2026-12-04");
        std::fs::create_dir_all(&fb).unwrap();
        std::fs::write(
            fb.join("a.json"),
            br#"{"feedback":1,"id":"a","time":"t","label":"cat","request_id":"new","model_version":"v"}"#,
        )
        .unwrap();
        std::fs::write(fb.join("b.json"), b"{broken").unwrap();
        let (records, skipped) = rt
            .block_on(feedback(&dir.path().join("feedback").display().to_string()))
            .unwrap();
        assert_eq!((records.len(), skipped), (1, 1));
    }
}
