use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `models/latest.json`: written last by `trainer publish`, read by the function at cold
/// start. Readers verify `sha256` against the object at `key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelPointer {
    /// Object key of the model, relative to the bucket (e.g. `prefix/models/<sha256>.onnx`).
    pub key: String,
    pub sha256: String,
    /// The model's `model_version` metadata.
    pub version: String,
    pub val_accuracy: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    pub published_at: String,
}

/// Hex sha256, the content address of published objects.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Content-addressed key of a model under `prefix` (which is empty or ends with `/`).
pub fn model_key(prefix: &str, sha256: &str) -> String {
    format!("{prefix}models/{sha256}.onnx")
}

/// Key of a published model's manifest (the pointer that names it), beside its files.
pub fn manifest_key(prefix: &str, sha256: &str) -> String {
    format!("{prefix}models/{sha256}/model.json")
}

/// The sha256 in a model key (`<prefix>models/<sha256>.onnx`), if it is one.
pub fn sha_of_model_key<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let sha = key
        .strip_prefix(prefix)?
        .strip_prefix("models/")?
        .strip_suffix(".onnx")?;
    (sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some(sha)
}

/// Key of the pointer under `prefix`.
pub fn pointer_key(prefix: &str) -> String {
    format!("{prefix}models/latest.json")
}

/// UTC now as RFC 3339, without pulling in a date crate.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn pointer_round_trips_json() {
        let p = ModelPointer {
            key: model_key("p/", "ab"),
            sha256: "ab".into(),
            version: "v".into(),
            val_accuracy: 0.5,
            test_accuracy: None,
            published_at: "t".into(),
        };
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("test_accuracy"));
        assert_eq!(serde_json::from_str::<ModelPointer>(&text).unwrap(), p);
        assert_eq!(p.key, "p/models/ab.onnx");
        assert_eq!(pointer_key(""), "models/latest.json");
    }
}
