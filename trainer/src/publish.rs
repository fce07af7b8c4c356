//! Publish a run: the model under a content-addressed key, its metrics and plots beside
//! it, and `models/latest.json` written last, so a reader never follows the pointer to a
//! missing object and a failed upload leaves the old pointer in place.

use std::path::Path;

use contract::pointer::{model_key, pointer_key};
use contract::{Location, ModelPointer, sha256_hex};

use crate::error::{Result, TrainError, io};

/// Files of a run directory that travel with the model.
pub const RUN_FILES: [(&str, &str); 3] = [
    ("metrics.json", "application/json"),
    ("learning-curves.png", "image/png"),
    ("confusion-matrix.png", "image/png"),
];

/// What was published, for the CLI to print.
#[derive(Debug, Clone)]
pub struct Published {
    pub model_uri: String,
    pub pointer_uri: String,
    pub pointer: ModelPointer,
}

/// Upload `run_dir`'s model (and whichever of [`RUN_FILES`] exist) to `dest`, a
/// `s3://bucket/prefix/` or `file://dir/` location.
pub async fn publish(run_dir: &Path, dest: &str) -> Result<Published> {
    let location: Location = dest.parse().map_err(|reason| TrainError::Publish {
        dest: dest.into(),
        reason,
    })?;
    let model_path = run_dir.join("model.onnx");
    let model = std::fs::read(&model_path).map_err(io(&model_path))?;
    let classifier = contract::Classifier::from_bytes(&model)?;
    let sha = sha256_hex(&model);
    let mut objects: Vec<(String, Vec<u8>, &str)> = Vec::new();
    let prefix = match &location {
        Location::S3 { key, .. } => normalise_prefix(key),
        Location::File(_) => String::new(),
    };
    let key = model_key(&prefix, &sha);
    objects.push((key.clone(), model, "application/octet-stream"));
    let mut test_accuracy = None;
    for (name, content_type) in RUN_FILES {
        let path = run_dir.join(name);
        if let Ok(bytes) = std::fs::read(&path) {
            if name == "metrics.json" {
                test_accuracy = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["test"]["accuracy"].as_f64());
            }
            objects.push((format!("{prefix}models/{sha}/{name}"), bytes, content_type));
        }
    }
    let pointer = ModelPointer {
        key: key.clone(),
        sha256: sha,
        version: classifier.version().to_string(),
        val_accuracy: classifier.val_accuracy().unwrap_or(f64::NAN),
        test_accuracy,
        published_at: now_rfc3339(),
    };
    let pointer_bytes = serde_json::to_vec_pretty(&pointer).expect("pointer serialises");
    let pkey = pointer_key(&prefix);
    let fail = |reason: String| TrainError::Publish {
        dest: dest.into(),
        reason,
    };
    let (model_uri, pointer_uri) = match &location {
        Location::S3 { bucket, .. } => {
            let client = contract::location::s3_client().await;
            for (k, bytes, ct) in objects {
                put_s3(&client, bucket, &k, bytes, ct).await.map_err(&fail)?;
            }
            put_s3(&client, bucket, &pkey, pointer_bytes, "application/json")
                .await
                .map_err(&fail)?;
            (format!("s3://{bucket}/{key}"), format!("s3://{bucket}/{pkey}"))
        }
        Location::File(dir) => {
            for (k, bytes, _) in objects {
                put_file(&dir.join(&k), &bytes)?;
            }
            put_file(&dir.join(&pkey), &pointer_bytes)?;
            (
                format!("file://{}", dir.join(&key).display()),
                format!("file://{}", dir.join(&pkey).display()),
            )
        }
    };
    Ok(Published {
        model_uri,
        pointer_uri,
        pointer,
    })
}

fn normalise_prefix(key: &str) -> String {
    let trimmed = key.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

async fn put_s3(client: &aws_sdk_s3::Client, bucket: &str, key: &str, bytes: Vec<u8>, ct: &str) -> Result<(), String> {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .content_type(ct)
        .body(bytes.into())
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("PUT s3://{bucket}/{key}: {}", aws_sdk_s3::error::DisplayErrorContext(e)))
}

/// Write via a temporary file and rename, so readers see whole files only.
fn put_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))
}

pub use contract::pointer::now_rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalise_prefix(""), "");
        assert_eq!(normalise_prefix("/a/b/"), "a/b/");
        assert_eq!(normalise_prefix("a"), "a/");
    }

    #[test]
    fn timestamp_is_rfc3339_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
