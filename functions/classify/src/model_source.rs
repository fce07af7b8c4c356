//! Fetch the model bytes named by `MODEL_URI` (or the embedded default) at cold start,
//! and, for a `latest.json` pointer on S3, watch the pointer for a newly promoted model.

use contract::{Location, ModelPointer, sha256_hex};

use crate::error::LoadError;

/// The model compiled into the binary: what `make run` and the arm64 smoke test serve.
pub static EMBEDDED_MODEL: &[u8] = include_bytes!("../../../models/cifar10.onnx");

/// Model bytes, where they came from, and the pointer to watch (with what it said) when
/// there is one.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub source: String,
    pub pointer: Option<PointerWatch>,
    pub named: Option<ModelPointer>,
}

/// What a look at the pointer found.
pub enum Poll {
    /// The version last read (a 304 to the conditional GET).
    Unchanged,
    /// No pointer object: nothing published yet (a new stack's empty bucket).
    Missing,
    /// A pointer, with its ETag.
    Found(ModelPointer, Option<String>),
}

/// A model pointer on S3 and the ETag of the version last read.
pub struct PointerWatch {
    client: objects::Client,
    pub bucket: String,
    pub key: String,
    pub etag: Option<String>,
}

impl PointerWatch {
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Where the model a pointer names lies.
    pub fn object_uri(&self, pointer: &ModelPointer) -> String {
        format!("s3://{}/{}", self.bucket, pointer.key)
    }

    /// Conditional GET of the pointer (If-None-Match on the last ETag); the model itself is
    /// not fetched yet.
    pub async fn poll(&self) -> Result<Poll, LoadError> {
        let got = self
            .client
            .get(&self.bucket, &self.key, self.etag.as_deref())
            .await
            .map_err(LoadError::Object)?;
        Ok(match got {
            objects::Got::NotModified => Poll::Unchanged,
            objects::Got::Missing => Poll::Missing,
            objects::Got::Object { bytes, etag } => Poll::Found(parse_pointer(&self.uri(), &bytes)?, etag),
        })
    }

    /// The model a pointer names, its sha256 checked.
    pub async fn model(&self, pointer: &ModelPointer) -> Result<(Vec<u8>, String), LoadError> {
        let model_uri = self.object_uri(pointer);
        let model = get(&self.client, &self.bucket, &pointer.key).await?;
        let actual = sha256_hex(&model);
        if actual != pointer.sha256 {
            return Err(LoadError::Checksum {
                uri: model_uri,
                expected: pointer.sha256.clone(),
                actual,
            });
        }
        Ok((model, format!("{} -> {model_uri}", self.uri())))
    }
}

fn parse_pointer(uri: &str, bytes: &[u8]) -> Result<ModelPointer, LoadError> {
    let pointer: ModelPointer = serde_json::from_slice(bytes).map_err(|e| LoadError::Pointer {
        uri: uri.into(),
        reason: e.to_string(),
    })?;
    pointer.check().map_err(|reason| LoadError::Pointer {
        uri: uri.into(),
        reason,
    })?;
    Ok(pointer)
}

/// Where the embedded model says it came from.
pub const EMBEDDED_SOURCE: &str = "embedded:models/cifar10.onnx";

/// The model at `uri` (unset: the embedded one). A `latest.json` pointer that does not
/// exist yet serves the embedded model and is watched, so a new stack answers at once and
/// switches to the first model published.
pub async fn fetch(uri: Option<&str>) -> Result<Fetched, LoadError> {
    let embedded = |pointer| Fetched {
        bytes: EMBEDDED_MODEL.to_vec(),
        source: EMBEDDED_SOURCE.into(),
        pointer,
        named: None,
    };
    let Some(uri) = uri else {
        return Ok(embedded(None));
    };
    let location: Location = uri.parse().map_err(LoadError::Uri)?;
    match location {
        Location::File(path) => {
            let bytes = tokio::fs::read(&path).await.map_err(|e| LoadError::Fetch {
                uri: uri.into(),
                reason: e.to_string(),
            })?;
            Ok(Fetched {
                bytes,
                source: uri.into(),
                pointer: None,
                named: None,
            })
        }
        Location::S3 { bucket, key } => {
            let client = objects::Client::from_env().map_err(LoadError::Object)?;
            if !key.ends_with(".json") {
                let bytes = get(&client, &bucket, &key).await?;
                return Ok(Fetched {
                    bytes,
                    source: uri.into(),
                    pointer: None,
                    named: None,
                });
            }
            let mut watch = PointerWatch {
                client,
                bucket,
                key,
                etag: None,
            };
            match watch.poll().await? {
                Poll::Found(pointer, etag) => {
                    let (bytes, source) = watch.model(&pointer).await?;
                    watch.etag = etag;
                    Ok(Fetched {
                        bytes,
                        source,
                        pointer: Some(watch),
                        named: Some(pointer),
                    })
                }
                Poll::Missing | Poll::Unchanged => {
                    tracing::warn!(
                        pointer = %watch.uri(),
                        "no model published yet; serving the embedded model until one is"
                    );
                    Ok(embedded(Some(watch)))
                }
            }
        }
    }
}

async fn get(client: &objects::Client, bucket: &str, key: &str) -> Result<Vec<u8>, LoadError> {
    let uri = format!("s3://{bucket}/{key}");
    match client.get(bucket, key, None).await.map_err(LoadError::Object)? {
        objects::Got::Object { bytes, .. } => Ok(bytes),
        objects::Got::Missing => Err(LoadError::Fetch {
            uri,
            reason: "no such object".into(),
        }),
        objects::Got::NotModified => Err(LoadError::Fetch {
            uri,
            reason: "answered 304 Not Modified to an unconditional GET".into(),
        }),
    }
}
