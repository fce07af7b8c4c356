//! Where published models live: an S3 bucket and prefix, or a folder. Keys are relative
//! to the bucket (S3) or the folder, and already carry the prefix.

use std::path::{Path, PathBuf};

use contract::Location;

use crate::error::{RegistryError, Result, io};

pub enum Store {
    S3 {
        client: aws_sdk_s3::Client,
        bucket: String,
        prefix: String,
    },
    File {
        dir: PathBuf,
    },
}

/// A stored object's key and, when the store knows it, its last-modified time (RFC 3339).
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub key: String,
    pub modified: Option<String>,
}

impl Store {
    /// `s3://bucket/prefix/` or `file://dir/`.
    pub async fn open(uri: &str) -> Result<Store> {
        let location: Location = uri.parse().map_err(|reason| RegistryError::Store {
            dest: uri.into(),
            reason,
        })?;
        Ok(match location {
            Location::S3 { bucket, key } => Store::S3 {
                client: crate::s3::client().await,
                bucket,
                prefix: objects::normalise_prefix(&key),
            },
            Location::File(dir) => Store::File { dir },
        })
    }

    /// `""` or `prefix/`: what model and pointer keys start with.
    pub fn prefix(&self) -> &str {
        match self {
            Store::S3 { prefix, .. } => prefix,
            Store::File { .. } => "",
        }
    }

    pub fn uri(&self, key: &str) -> String {
        match self {
            Store::S3 { bucket, .. } => format!("s3://{bucket}/{key}"),
            Store::File { dir } => format!("file://{}", dir.join(key).display()),
        }
    }

    fn fail(&self, key: &str, reason: impl std::fmt::Display) -> RegistryError {
        RegistryError::Store {
            dest: self.uri(key),
            reason: reason.to_string(),
        }
    }

    pub async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        match self {
            Store::S3 { client, bucket, .. } => client
                .put_object()
                .bucket(bucket)
                .key(key)
                .content_type(content_type)
                .body(bytes.into())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.fail(key, format!("PUT: {}", aws_sdk_s3::error::DisplayErrorContext(e)))),
            Store::File { dir } => put_file(&dir.join(key), &bytes),
        }
    }

    /// The object's bytes, or `None` when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self {
            Store::S3 { client, bucket, .. } => match client.get_object().bucket(bucket).key(key).send().await {
                Ok(out) => {
                    let body = out.body.collect().await.map_err(|e| self.fail(key, e))?;
                    Ok(Some(body.into_bytes().to_vec()))
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
                Err(e) => Err(self.fail(key, format!("GET: {}", aws_sdk_s3::error::DisplayErrorContext(e)))),
            },
            Store::File { dir } => match std::fs::read(dir.join(key)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io(dir.join(key))(e)),
            },
        }
    }

    /// Copy one object to a local file, streamed (a dataset may not fit in memory), via a
    /// temporary file so a broken download never looks like a whole one.
    pub async fn download(&self, key: &str, to: &Path) -> Result<()> {
        match self {
            Store::S3 { client, bucket, .. } => {
                use std::io::Write;
                let out = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| self.fail(key, format!("GET: {}", aws_sdk_s3::error::DisplayErrorContext(e))))?;
                let tmp = to.with_extension("partial");
                // Blocking writes: the callers are command-line tools with nothing else to run.
                let mut file = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io(&tmp))?);
                let mut body = out.body;
                while let Some(chunk) = body.try_next().await.map_err(|e| self.fail(key, e))? {
                    file.write_all(&chunk).map_err(io(&tmp))?;
                }
                file.into_inner()
                    .map_err(|e| io(&tmp)(e.into_error()))?
                    .sync_all()
                    .map_err(io(&tmp))?;
                std::fs::rename(&tmp, to).map_err(io(to))
            }
            Store::File { dir } => std::fs::copy(dir.join(key), to).map(|_| ()).map_err(io(dir.join(key))),
        }
    }

    /// Every object whose key starts with `under` (a folder-like prefix ending in `/`).
    pub async fn list(&self, under: &str) -> Result<Vec<Listed>> {
        match self {
            Store::S3 { client, bucket, .. } => {
                let mut pages = client
                    .list_objects_v2()
                    .bucket(bucket)
                    .prefix(under)
                    .into_paginator()
                    .send();
                let mut out = Vec::new();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| {
                        self.fail(under, format!("LIST: {}", aws_sdk_s3::error::DisplayErrorContext(e)))
                    })?;
                    for o in page.contents() {
                        if let Some(key) = o.key() {
                            out.push(Listed {
                                key: key.to_string(),
                                modified: o
                                    .last_modified()
                                    .and_then(|t| t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok()),
                            });
                        }
                    }
                }
                Ok(out)
            }
            Store::File { dir } => {
                // Recursive, as an S3 prefix listing is.
                let mut out = Vec::new();
                let mut pending = vec![under.to_string()];
                while let Some(sub) = pending.pop() {
                    let folder = dir.join(&sub);
                    let entries = match std::fs::read_dir(&folder) {
                        Ok(e) => e,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io(&folder)(e)),
                    };
                    for entry in entries {
                        let entry = entry.map_err(io(&folder))?;
                        let name = format!("{sub}{}", entry.file_name().to_string_lossy());
                        if entry.path().is_dir() {
                            pending.push(format!("{name}/"));
                        } else if !name.ends_with(".partial") {
                            out.push(Listed {
                                key: name,
                                modified: None,
                            });
                        }
                    }
                }
                out.sort_by(|a, b| a.key.cmp(&b.key));
                Ok(out)
            }
        }
    }
}

/// Write via a temporary file and rename, so readers see whole files only.
fn put_file(path: &Path, bytes: &[u8]) -> Result<()> {
    objects::folder::put(path, bytes).map_err(|e| match e {
        objects::ObjectError::Io { path, source } => RegistryError::Io { path, source },
        other => RegistryError::Store {
            dest: path.display().to_string(),
            reason: other.to_string(),
        },
    })
}
