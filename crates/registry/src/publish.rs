//! Publish a run: the model under a content-addressed key, its metrics, plots and
//! manifest beside it, and `models/latest.json` written last, so a reader never follows
//! the pointer to a missing object and a failed upload leaves the old pointer in place.

use std::path::Path;

pub use contract::pointer::now_rfc3339;
use contract::pointer::{manifest_key, model_key, pointer_key};
use contract::{ModelPointer, sha256_hex};

use crate::error::{Result, io};
use crate::store::Store;

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
    /// The pointer as written; with [`Pointer::Leave`], the model's manifest (the pointer
    /// was not touched).
    pub pointer: ModelPointer,
}

/// Whether publishing moves `latest.json` to the new model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pointer {
    /// Point at it (publishing is promoting).
    Move,
    /// Upload only: it serves once promoted, or as a canary, by `models`.
    Leave,
}

/// Upload `run_dir`'s `model.onnx` (and whichever of [`RUN_FILES`] exist) to `dest`, a
/// `s3://bucket/prefix/` or `file://dir/` location, and point `latest.json` at it.
pub async fn publish(run_dir: &Path, dest: &str) -> Result<Published> {
    publish_model(&run_dir.join("model.onnx"), dest, Pointer::Move).await
}

/// Upload a model file, with whichever of [`RUN_FILES`] lie beside it (the shipped
/// `models/cifar10.onnx` has its own), and point `latest.json` at it unless told to leave it.
pub async fn publish_model(model_path: &Path, dest: &str, move_pointer: Pointer) -> Result<Published> {
    let store = Store::open(dest).await?;
    let run_dir = model_path.parent().unwrap_or(Path::new("."));
    let model = std::fs::read(model_path).map_err(io(model_path))?;
    let classifier = inference::Classifier::from_bytes(&model)?;
    let sha = sha256_hex(&model);
    let prefix = store.prefix().to_string();
    let key = model_key(&prefix, &sha);
    let mut objects: Vec<(String, Vec<u8>, &str)> = vec![(key.clone(), model, "application/octet-stream")];
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
        sha256: sha.clone(),
        version: classifier.version().to_string(),
        val_accuracy: classifier.val_accuracy().unwrap_or(f64::NAN),
        test_accuracy,
        published_at: now_rfc3339(),
        candidate: None,
        previous: None,
    };
    // The manifest lets `models list` describe a model without downloading it.
    objects.push((
        manifest_key(&prefix, &sha),
        serde_json::to_vec_pretty(&pointer).expect("pointer serialises"),
        "application/json",
    ));
    for (k, bytes, content_type) in objects {
        store.put(&k, bytes, content_type).await?;
    }
    let pkey = pointer_key(&prefix);
    if move_pointer == Pointer::Leave {
        return Ok(Published {
            model_uri: store.uri(&key),
            pointer_uri: store.uri(&pkey),
            pointer,
        });
    }
    // Publishing is promoting: it ends any candidate and remembers what served before. A
    // pointer that does not parse is replaced (publishing is how it gets fixed).
    let old = crate::releases::read_pointer(&store).await.ok().flatten();
    let pointer = crate::releases::succeed(old, pointer);
    store
        .put(
            &pkey,
            serde_json::to_vec_pretty(&pointer).expect("pointer serialises"),
            "application/json",
        )
        .await?;
    Ok(Published {
        model_uri: store.uri(&key),
        pointer_uri: store.uri(&pkey),
        pointer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_is_rfc3339_utc() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
