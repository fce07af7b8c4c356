//! The published models of a store: list them, and promote one (rewrite the pointer),
//! which is also how a rollback is done.

use contract::pointer::{manifest_key, pointer_key, sha_of_model_key};
use contract::{ModelPointer, sha256_hex};
use serde::Serialize;

use crate::error::{RegistryError, Result};
use crate::store::Store;

/// One published model, as `models list` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublishedModel {
    pub version: String,
    pub sha256: String,
    pub key: String,
    pub val_accuracy: f64,
    pub test_accuracy: Option<f64>,
    pub published_at: String,
    /// The pointer names this one.
    pub live: bool,
}

impl PublishedModel {
    fn pointer(&self) -> ModelPointer {
        ModelPointer {
            key: self.key.clone(),
            sha256: self.sha256.clone(),
            version: self.version.clone(),
            val_accuracy: self.val_accuracy,
            test_accuracy: self.test_accuracy,
            published_at: self.published_at.clone(),
        }
    }
}

/// Every model under the store's `models/`, newest first. Models published before
/// manifests existed are described from their own metadata (one download each).
pub async fn list(store: &Store) -> Result<Vec<PublishedModel>> {
    let prefix = store.prefix().to_string();
    let live = match store.get(&pointer_key(&prefix)).await? {
        Some(bytes) => serde_json::from_slice::<ModelPointer>(&bytes).ok().map(|p| p.sha256),
        None => None,
    };
    let mut out = Vec::new();
    for listed in store.list(&format!("{prefix}models/")).await? {
        let Some(sha) = sha_of_model_key(&prefix, &listed.key) else {
            continue;
        };
        let manifest = store
            .get(&manifest_key(&prefix, sha))
            .await?
            .and_then(|b| serde_json::from_slice::<ModelPointer>(&b).ok());
        let pointer = match manifest {
            Some(p) => p,
            None => {
                let Some(bytes) = store.get(&listed.key).await? else {
                    continue;
                };
                let c = inference::Classifier::from_bytes(&bytes)?;
                ModelPointer {
                    key: listed.key.clone(),
                    sha256: sha.to_string(),
                    version: c.version().to_string(),
                    val_accuracy: c.val_accuracy().unwrap_or(f64::NAN),
                    test_accuracy: None,
                    published_at: listed.modified.clone().unwrap_or_default(),
                }
            }
        };
        out.push(PublishedModel {
            live: live.as_deref() == Some(sha),
            version: pointer.version,
            sha256: sha.to_string(),
            key: listed.key,
            val_accuracy: pointer.val_accuracy,
            test_accuracy: pointer.test_accuracy,
            published_at: pointer.published_at,
        });
    }
    out.sort_by(|a, b| b.published_at.cmp(&a.published_at).then(a.sha256.cmp(&b.sha256)));
    Ok(out)
}

/// The one model whose version is `query` or whose sha256 starts with it.
pub fn select<'a>(models: &'a [PublishedModel], query: &str, at: &str) -> Result<&'a PublishedModel> {
    let query = query.trim();
    let matches: Vec<&PublishedModel> = models
        .iter()
        .filter(|m| !query.is_empty() && (m.version == query || m.sha256.starts_with(&query.to_ascii_lowercase())))
        .collect();
    let names = |ms: &[&PublishedModel]| {
        ms.iter()
            .map(|m| format!("{} ({})", m.version, &m.sha256[..12]))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(RegistryError::UnknownModel {
            at: at.into(),
            query: query.into(),
            available: names(&models.iter().collect::<Vec<_>>()),
        }),
        many => Err(RegistryError::AmbiguousModel {
            at: at.into(),
            query: query.into(),
            matches: names(many),
        }),
    }
}

/// Point `latest.json` at the model `query` names, after checking that the object is
/// there, hashes to its sha256 and is a valid model. Anything wrong leaves the pointer.
pub async fn promote(store: &Store, query: &str, at: &str) -> Result<ModelPointer> {
    let models = list(store).await?;
    let model = select(&models, query, at)?;
    let uri = store.uri(&model.key);
    let bytes = store.get(&model.key).await?.ok_or_else(|| RegistryError::Store {
        dest: uri.clone(),
        reason: "the model object is gone".into(),
    })?;
    let actual = sha256_hex(&bytes);
    if actual != model.sha256 {
        return Err(RegistryError::PublishedChecksum {
            uri,
            expected: model.sha256.clone(),
            actual,
        });
    }
    inference::Classifier::from_bytes(&bytes)?;
    let pointer = model.pointer();
    let pkey = pointer_key(store.prefix());
    store
        .put(
            &pkey,
            serde_json::to_vec_pretty(&pointer).expect("pointer serialises"),
            "application/json",
        )
        .await?;
    Ok(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(version: &str, sha: &str, at: &str) -> PublishedModel {
        PublishedModel {
            version: version.into(),
            sha256: sha.repeat(64 / sha.len()),
            key: String::new(),
            val_accuracy: 0.5,
            test_accuracy: None,
            published_at: at.into(),
            live: false,
        }
    }

    #[test]
    fn versions_and_sha_prefixes_select_one_model() {
        let ms = [model("v1", "ab", "1"), model("v2", "ac", "2")];
        assert_eq!(select(&ms, "v2", "x").unwrap().version, "v2");
        assert_eq!(select(&ms, "ABA", "x").unwrap().version, "v1");
        assert!(matches!(
            select(&ms, "a", "x"),
            Err(RegistryError::AmbiguousModel { .. })
        ));
        assert!(matches!(
            select(&ms, "zz", "x"),
            Err(RegistryError::UnknownModel { .. })
        ));
        assert!(matches!(select(&ms, " ", "x"), Err(RegistryError::UnknownModel { .. })));
        let e = select(&ms, "a", "x").unwrap_err().to_string();
        assert!(e.contains("v1") && e.contains("v2"), "{e}");
    }

    /// Publish two models to a folder, list them, roll back, refuse a tampered object.
    #[test]
    fn publish_list_promote_in_a_folder() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = format!("file://{}/", dir.path().join("store").display());
        let shipped = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/cifar10.onnx")).unwrap();
        let mut other = shipped.clone();
        let at = other.windows(10).position(|w| w == b"trained_at").unwrap() + 12;
        other[at] = if other[at] == b'1' { b'2' } else { b'1' };
        for (name, bytes) in [("a", &shipped), ("b", &other)] {
            let run = dir.path().join(name);
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("model.onnx"), bytes).unwrap();
            rt.block_on(crate::publish::publish(&run, &dest)).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1100)); // distinct publish times
        }
        let store = rt.block_on(Store::open(&dest)).unwrap();
        let ms = rt.block_on(list(&store)).unwrap();
        assert_eq!(ms.len(), 2);
        let (sha_a, sha_b) = (sha256_hex(&shipped), sha256_hex(&other));
        assert_eq!(
            (ms[0].sha256.as_str(), ms[0].live),
            (sha_b.as_str(), true),
            "newest first, live"
        );
        assert_eq!((ms[1].sha256.as_str(), ms[1].live), (sha_a.as_str(), false));
        // Roll back to A by sha256 prefix.
        let p = rt.block_on(promote(&store, &sha_a[..10], &dest)).unwrap();
        assert_eq!(p.sha256, sha_a);
        assert!(
            rt.block_on(list(&store))
                .unwrap()
                .iter()
                .any(|m| m.sha256 == sha_a && m.live)
        );
        // A tampered object is refused and the pointer stays on A.
        let b_path = dir.path().join("store").join(&ms[0].key);
        std::fs::write(&b_path, b"tampered").unwrap();
        let e = rt.block_on(promote(&store, &sha_b[..10], &dest)).unwrap_err();
        assert!(matches!(e, RegistryError::PublishedChecksum { .. }), "{e}");
        let ms = rt.block_on(list(&store)).unwrap();
        assert!(ms.iter().any(|m| m.sha256 == sha_a && m.live));
    }
}
