//! The published models of a store and the pointer's releases: list them, try one beside
//! the current model (canary or shadow), promote one, and roll back to the previous one.

use contract::pointer::{manifest_key, now_rfc3339, pointer_key, sha_of_model_key};
use contract::{Candidate, ModelPointer, Split, sha256_hex};
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
    /// The pointer's candidate: `canary 10%` or `shadow 50%`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<String>,
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
            candidate: None,
            previous: None,
        }
    }
}

/// The store's pointer, if anything is published. A pointer that does not parse is an
/// error: rewriting it blind could drop a candidate or the previous model.
pub async fn read_pointer(store: &Store) -> Result<Option<ModelPointer>> {
    let key = pointer_key(store.prefix());
    match store.get(&key).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RegistryError::Store {
                dest: store.uri(&key),
                reason: format!("the pointer does not parse ({e}); fix or delete it first"),
            }),
    }
}

async fn write_pointer(store: &Store, pointer: &ModelPointer) -> Result<()> {
    if let Err(reason) = pointer.check() {
        return Err(RegistryError::Store {
            dest: store.uri(&pointer_key(store.prefix())),
            reason,
        });
    }
    store
        .put(
            &pointer_key(store.prefix()),
            serde_json::to_vec_pretty(pointer).expect("pointer serialises"),
            "application/json",
        )
        .await
}

/// The pointer that makes `next` current after `old`: no candidate, and `old`'s model as
/// the previous one (unless it is `next` itself, when its previous stays).
pub fn succeed(old: Option<ModelPointer>, next: ModelPointer) -> ModelPointer {
    let previous = match old {
        Some(old) if old.sha256 != next.sha256 => Some(Box::new(old.model_only())),
        Some(old) => old.previous,
        None => None,
    };
    ModelPointer {
        candidate: None,
        previous,
        ..next.model_only()
    }
}

/// Every model under the store's `models/`, newest first. Models published before
/// manifests existed are described from their own metadata (one download each).
pub async fn list(store: &Store) -> Result<Vec<PublishedModel>> {
    let prefix = store.prefix().to_string();
    let live = match store.get(&pointer_key(&prefix)).await? {
        Some(bytes) => serde_json::from_slice::<ModelPointer>(&bytes).ok(),
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
                    candidate: None,
                    previous: None,
                }
            }
        };
        out.push(PublishedModel {
            live: live.as_ref().map(|p| p.sha256.as_str()) == Some(sha),
            candidate: live
                .as_ref()
                .and_then(|p| p.candidate.as_ref())
                .filter(|c| c.model.sha256 == sha)
                .map(|c| format!("{} {}%", c.mode.as_str(), c.percent)),
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

/// The model `query` names, its object checked: there, hashing to its sha256, a valid
/// model. Returns its pointer and the loaded classifier.
async fn verified(store: &Store, query: &str, at: &str) -> Result<(ModelPointer, inference::Classifier)> {
    let models = list(store).await?;
    let model = select(&models, query, at)?;
    let pointer = model.pointer();
    let classifier = load(store, &pointer).await?;
    Ok((pointer, classifier))
}

/// The model `pointer` names, after checking its object's checksum.
async fn load(store: &Store, pointer: &ModelPointer) -> Result<inference::Classifier> {
    let uri = store.uri(&pointer.key);
    let bytes = store.get(&pointer.key).await?.ok_or_else(|| RegistryError::Store {
        dest: uri.clone(),
        reason: "the model object is gone".into(),
    })?;
    let actual = sha256_hex(&bytes);
    if actual != pointer.sha256 {
        return Err(RegistryError::PublishedChecksum {
            uri,
            expected: pointer.sha256.clone(),
            actual,
        });
    }
    Ok(inference::Classifier::from_bytes(&bytes)?)
}

/// Point `latest.json` at the model `query` names, after checking that the object is
/// there, hashes to its sha256 and is a valid model. Any candidate ends; the model that
/// served becomes the previous one. Anything wrong leaves the pointer.
pub async fn promote(store: &Store, query: &str, at: &str) -> Result<ModelPointer> {
    let (next, _) = verified(store, query, at).await?;
    let pointer = succeed(read_pointer(store).await?, next);
    write_pointer(store, &pointer).await?;
    Ok(pointer)
}

/// Back to the model the pointer named before the last promote (checked like a promote).
/// The previous model is then forgotten: a second rollback has nowhere to go.
pub async fn rollback(store: &Store, at: &str) -> Result<ModelPointer> {
    let now = read_pointer(store).await?.ok_or_else(|| RegistryError::Release {
        at: at.into(),
        reason: "nothing is published".into(),
    })?;
    let Some(previous) = now.previous.as_deref() else {
        return Err(RegistryError::Release {
            at: at.into(),
            reason: format!(
                "the pointer names {} with no previous model to return to; promote one by version (models list)",
                now.version
            ),
        });
    };
    load(store, previous).await?;
    let pointer = previous.model_only();
    write_pointer(store, &pointer).await?;
    Ok(pointer)
}

/// Let the model `query` names answer (`Split::Canary`) or run beside the current one
/// (`Split::Shadow`) on `percent` of requests; 0 ends a candidate without promoting it. The
/// candidate must have the current model's labels, in order: answers from either side mean
/// the same classes.
pub async fn canary(store: &Store, query: &str, percent: u8, mode: Split, at: &str) -> Result<ModelPointer> {
    let refuse = |reason: String| RegistryError::Release { at: at.into(), reason };
    if percent > 100 {
        return Err(refuse(format!("percent {percent} is over 100")));
    }
    let mut pointer = read_pointer(store)
        .await?
        .ok_or_else(|| refuse("nothing is published to try a candidate beside; publish first".into()))?;
    if percent == 0 {
        pointer.candidate = None;
        write_pointer(store, &pointer).await?;
        return Ok(pointer);
    }
    let (model, classifier) = verified(store, query, at).await?;
    if model.sha256 == pointer.sha256 {
        return Err(refuse(format!("{} is the current model already", model.version)));
    }
    let current = load(store, &pointer).await?;
    if classifier.labels() != current.labels() {
        return Err(refuse(format!(
            "{} has labels {:?}, the current model {:?}: a candidate must answer with the same classes",
            model.version,
            classifier.labels(),
            current.labels()
        )));
    }
    pointer.candidate = Some(Box::new(Candidate {
        model,
        percent,
        mode,
        since: now_rfc3339(),
    }));
    write_pointer(store, &pointer).await?;
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
            candidate: None,
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

    /// Canary, shadow, promote and rollback write the pointer they say; a candidate with
    /// other labels, or a rollback with nowhere to go, leaves it alone.
    #[test]
    fn candidates_promotes_and_rollbacks() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let dest = format!("file://{}/", dir.path().join("store").display());
        let shipped = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/cifar10.onnx")).unwrap();
        let edit = |bytes: &[u8], key: &str, value: &str| {
            let mut out = bytes.to_vec();
            let at = out.windows(key.len()).position(|w| w == key.as_bytes()).unwrap() + key.len() + 2;
            out[at..at + value.len()].copy_from_slice(value.as_bytes());
            out
        };
        let b = edit(&shipped, "model_version", "bbbbbbbb");
        let other_labels = edit(&shipped, "labels", r#"["aeroplan""#);
        for (name, bytes) in [("b", &b), ("c", &other_labels), ("a", &shipped)] {
            let run = dir.path().join(name);
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("model.onnx"), bytes).unwrap();
            rt.block_on(crate::publish::publish(&run, &dest)).unwrap();
        }
        let store = rt.block_on(Store::open(&dest)).unwrap();
        let (sha_a, sha_b, sha_c) = (sha256_hex(&shipped), sha256_hex(&b), sha256_hex(&other_labels));
        let pointer = || rt.block_on(read_pointer(&store)).unwrap().unwrap();
        assert_eq!(pointer().sha256, sha_a);
        assert_eq!(
            pointer().previous.unwrap().sha256,
            sha_c,
            "publishing remembers what served"
        );

        let p = rt
            .block_on(canary(&store, &sha_b[..12], 20, Split::Shadow, &dest))
            .unwrap();
        let c = p.candidate.as_ref().unwrap();
        assert_eq!(
            (c.model.sha256.as_str(), c.percent, c.mode),
            (sha_b.as_str(), 20, Split::Shadow)
        );
        assert_eq!(pointer(), p);
        let listed = rt.block_on(list(&store)).unwrap();
        let row = listed.iter().find(|m| m.sha256 == sha_b).unwrap();
        assert_eq!(row.candidate.as_deref(), Some("shadow 20%"));

        let e = rt
            .block_on(canary(&store, &sha_c[..12], 50, Split::Canary, &dest))
            .unwrap_err();
        assert!(e.to_string().contains("same classes"), "{e}");
        let e = rt
            .block_on(canary(&store, &sha_a[..12], 50, Split::Canary, &dest))
            .unwrap_err();
        assert!(e.to_string().contains("current model already"), "{e}");
        assert_eq!(pointer(), p, "refusals leave the pointer");

        let p = rt
            .block_on(canary(&store, &sha_b[..12], 50, Split::Canary, &dest))
            .unwrap();
        assert_eq!(
            p.candidate.as_ref().map(|c| (c.percent, c.mode)),
            Some((50, Split::Canary))
        );
        let p = rt.block_on(promote(&store, &sha_b[..12], &dest)).unwrap();
        assert_eq!((p.sha256.as_str(), p.candidate.is_none()), (sha_b.as_str(), true));
        assert_eq!(p.previous.as_ref().unwrap().sha256, sha_a);

        let p = rt.block_on(rollback(&store, &dest)).unwrap();
        assert_eq!((p.sha256.as_str(), p.previous.is_none()), (sha_a.as_str(), true));
        let e = rt.block_on(rollback(&store, &dest)).unwrap_err();
        assert!(e.to_string().contains("no previous model"), "{e}");

        rt.block_on(canary(&store, &sha_b[..12], 10, Split::Canary, &dest))
            .unwrap();
        let p = rt.block_on(canary(&store, "", 0, Split::Canary, &dest)).unwrap();
        assert!(p.candidate.is_none(), "0 % ends the candidate");
        assert_eq!(p.sha256, sha_a);
    }
}
