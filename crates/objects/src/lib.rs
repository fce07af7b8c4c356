//! What the function reads and writes outside itself: the model pointer and model on S3
//! (a conditional GET that sees 304 and 404), and corrections under a prefix (a PUT), or
//! the same in a folder. The AWS SDK's S3 client was most of the function's package and
//! its cold start's code for two calls; Lambda puts the role's credentials in the
//! environment, which is all the signer here reads. The trainer keeps the SDK (`registry`)
//! for the full credential chain, listing and streaming.

pub mod error;
pub mod folder;
pub mod s3;
pub mod sigv4;

pub use error::{ObjectError, Result};
pub use s3::{Client, Got};

use std::path::PathBuf;

use contract::Location;

/// An S3 bucket and prefix, or a folder: where corrections go.
pub enum Store {
    S3 {
        client: Box<Client>,
        bucket: String,
        prefix: String,
    },
    Folder {
        dir: PathBuf,
    },
}

impl Store {
    /// `s3://bucket/prefix/` or `file://dir/`.
    pub fn open(uri: &str) -> Result<Store> {
        let location: Location = uri.parse().map_err(ObjectError::Setting)?;
        Ok(match location {
            Location::S3 { bucket, key } => Store::S3 {
                client: Box::new(Client::from_env()?),
                bucket,
                prefix: normalise_prefix(&key),
            },
            Location::File(dir) => Store::Folder { dir },
        })
    }

    /// `""` or `prefix/`: what keys written here start with.
    pub fn prefix(&self) -> &str {
        match self {
            Store::S3 { prefix, .. } => prefix,
            Store::Folder { .. } => "",
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        match self {
            Store::S3 { client, bucket, .. } => client.put(bucket, key, bytes, content_type).await,
            Store::Folder { dir } => folder::put(&dir.join(key), &bytes),
        }
    }
}

/// `""` or `a/b/`, whatever slashes the user wrote around the prefix.
pub fn normalise_prefix(key: &str) -> String {
    let trimmed = key.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("{trimmed}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(normalise_prefix(""), "");
        assert_eq!(normalise_prefix("/"), "");
        assert_eq!(normalise_prefix("prod"), "prod/");
        assert_eq!(normalise_prefix("/a/b/"), "a/b/");
    }

    #[tokio::test]
    async fn a_folder_store_writes_whole_files_under_new_folders() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&format!("file://{}", dir.path().display())).unwrap();
        assert_eq!(store.prefix(), "");
        store
            .put("feedback/2026/x.json", b"{}".to_vec(), "application/json")
            .await
            .unwrap();
        assert_eq!(std::fs::read(dir.path().join("feedback/2026/x.json")).unwrap(), b"{}");
        assert!(!dir.path().join("feedback/2026/x.partial").exists());
    }

    #[test]
    fn a_bad_uri_is_named() {
        let e = Store::open("ftp://x").err().unwrap().to_string();
        assert!(e.contains("ftp://x"), "{e}");
    }
}
