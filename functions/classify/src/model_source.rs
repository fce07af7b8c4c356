//! Fetch the model bytes named by `MODEL_URI` (or the embedded default) at cold start.

use contract::{Location, ModelPointer, sha256_hex};

use crate::error::LoadError;

/// The model compiled into the binary: what `make run` and the arm64 smoke test serve.
pub static EMBEDDED_MODEL: &[u8] = include_bytes!("../../../models/cifar10.onnx");

/// Bytes of the model and a description of where they came from.
pub async fn fetch(uri: Option<&str>) -> Result<(Vec<u8>, String), LoadError> {
    let Some(uri) = uri else {
        return Ok((EMBEDDED_MODEL.to_vec(), "embedded:models/cifar10.onnx".into()));
    };
    let location: Location = uri.parse().map_err(LoadError::Uri)?;
    match location {
        Location::File(path) => {
            let bytes = tokio::fs::read(&path).await.map_err(|e| LoadError::Fetch {
                uri: uri.into(),
                reason: e.to_string(),
            })?;
            Ok((bytes, uri.into()))
        }
        Location::S3 { bucket, key } => {
            let client = contract::location::s3_client().await;
            let bytes = get(&client, &bucket, &key).await?;
            if !key.ends_with(".json") {
                return Ok((bytes, uri.into()));
            }
            let pointer: ModelPointer = serde_json::from_slice(&bytes).map_err(|e| LoadError::Pointer {
                uri: uri.into(),
                reason: e.to_string(),
            })?;
            let model_uri = format!("s3://{bucket}/{}", pointer.key);
            let model = get(&client, &bucket, &pointer.key).await?;
            let actual = sha256_hex(&model);
            if actual != pointer.sha256 {
                return Err(LoadError::Checksum {
                    uri: model_uri,
                    expected: pointer.sha256,
                    actual,
                });
            }
            Ok((model, format!("{uri} -> {model_uri}")))
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
