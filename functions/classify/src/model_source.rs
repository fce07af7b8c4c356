//! Fetch the model bytes named by `MODEL_URI` (or the embedded default) at cold start,
//! and, for a `latest.json` pointer on S3, watch the pointer for a newly promoted model.

use contract::{Location, ModelPointer, sha256_hex};

use crate::error::LoadError;

/// The model compiled into the binary: what `make run` and the arm64 smoke test serve.
pub static EMBEDDED_MODEL: &[u8] = include_bytes!("../../../models/cifar10.onnx");

/// Model bytes, where they came from, and the pointer to watch when there is one.
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub source: String,
    pub pointer: Option<PointerWatch>,
}

/// A model pointer on S3 and the ETag of the version last read.
pub struct PointerWatch {
    client: aws_sdk_s3::Client,
    pub bucket: String,
    pub key: String,
    pub etag: Option<String>,
}

impl PointerWatch {
    pub fn uri(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// Conditional GET of the pointer (If-None-Match on the last ETag): `None` when it is
    /// unchanged, else the pointer with its ETag; the model itself is not fetched yet.
    pub async fn poll(&self) -> Result<Option<(ModelPointer, Option<String>)>, LoadError> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(&self.key);
        if let Some(etag) = &self.etag {
            req = req.if_none_match(etag);
        }
        let out = match req.send().await {
            Ok(out) => out,
            Err(e) if e.raw_response().map(|r| r.status().as_u16()) == Some(304) => return Ok(None),
            Err(e) => {
                return Err(LoadError::Fetch {
                    uri: self.uri(),
                    reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
                });
            }
        };
        let etag = out.e_tag().map(str::to_owned);
        let body = out.body.collect().await.map_err(|e| LoadError::Fetch {
            uri: self.uri(),
            reason: e.to_string(),
        })?;
        let pointer = parse_pointer(&self.uri(), &body.into_bytes())?;
        Ok(Some((pointer, etag)))
    }

    /// The model a pointer names, its sha256 checked.
    pub async fn model(&self, pointer: &ModelPointer) -> Result<(Vec<u8>, String), LoadError> {
        let model_uri = format!("s3://{}/{}", self.bucket, pointer.key);
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
    serde_json::from_slice(bytes).map_err(|e| LoadError::Pointer {
        uri: uri.into(),
        reason: e.to_string(),
    })
}

pub async fn fetch(uri: Option<&str>) -> Result<Fetched, LoadError> {
    let Some(uri) = uri else {
        return Ok(Fetched {
            bytes: EMBEDDED_MODEL.to_vec(),
            source: "embedded:models/cifar10.onnx".into(),
            pointer: None,
        });
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
            })
        }
        Location::S3 { bucket, key } => {
            let client = registry::s3::client().await;
            if !key.ends_with(".json") {
                let bytes = get(&client, &bucket, &key).await?;
                return Ok(Fetched {
                    bytes,
                    source: uri.into(),
                    pointer: None,
                });
            }
            let mut watch = PointerWatch {
                client,
                bucket,
                key,
                etag: None,
            };
            let (pointer, etag) = watch.poll().await?.expect("an unconditional GET answers");
            let (bytes, source) = watch.model(&pointer).await?;
            watch.etag = etag;
            Ok(Fetched {
                bytes,
                source,
                pointer: Some(watch),
            })
        }
    }
}

async fn get(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, LoadError> {
    let uri = format!("s3://{bucket}/{key}");
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| LoadError::Fetch {
            uri: uri.clone(),
            reason: aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        })?;
    let body = out.body.collect().await.map_err(|e| LoadError::Fetch {
        uri,
        reason: e.to_string(),
    })?;
    Ok(body.into_bytes().to_vec())
}
