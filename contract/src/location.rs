//! Where models live: `s3://bucket/key` or `file://path`, and the one S3 client setup
//! (standard credential chain, `AWS_ENDPOINT_URL_S3` honoured, path-style for
//! S3-compatible servers) that the trainer and the function share.

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

/// An S3 client from the environment. Path-style addressing is forced whenever a custom
/// endpoint is configured, since S3-compatible servers rarely serve virtual hosts.
pub async fn s3_client() -> aws_sdk_s3::Client {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let custom_endpoint =
        std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(custom_endpoint)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_locations() {
        let s3: Location = "s3://b/p/models/latest.json".parse().unwrap();
        assert_eq!(
            s3,
            Location::S3 {
                bucket: "b".into(),
                key: "p/models/latest.json".into()
            }
        );
        assert_eq!(s3.to_string(), "s3://b/p/models/latest.json");
        assert_eq!(
            "file:///tmp/m.onnx".parse::<Location>().unwrap(),
            Location::File("/tmp/m.onnx".into())
        );
        assert!("http://x".parse::<Location>().is_err());
        assert!("s3:///key".parse::<Location>().is_err());
        assert!("file://".parse::<Location>().is_err());
    }
}
