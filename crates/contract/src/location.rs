//! Where models live: `s3://bucket/key` or `file://path`.

use std::path::PathBuf;

/// A parsed model location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    S3 { bucket: String, key: String },
    File(PathBuf),
}

impl std::str::FromStr for Location {
    type Err = String;

    fn from_str(uri: &str) -> Result<Self, String> {
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("`{uri}` has no bucket; expected s3://bucket/key"));
            }
            Ok(Location::S3 {
                bucket: bucket.into(),
                key: key.into(),
            })
        } else if let Some(path) = uri.strip_prefix("file://") {
            if path.is_empty() {
                return Err(format!(
                    "`{uri}` has no path; expected file:///abs/path or file://rel/path"
                ));
            }
            Ok(Location::File(PathBuf::from(path)))
        } else {
            Err(format!("`{uri}` is neither s3://bucket/key nor file://path"))
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Location::File(p) => write!(f, "file://{}", p.display()),
        }
    }
}
