//! S3 GET and PUT, signed with SigV4 and sent over HTTPS (rustls on ring) with a few
//! retries for what S3 documents as transient.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::{ObjectError, Result};
use crate::sigv4::{self, Credentials, EMPTY_SHA256};

/// What a GET found.
#[derive(Debug, PartialEq)]
pub enum Got {
    Object {
        bytes: Vec<u8>,
        etag: Option<String>,
    },
    /// 304: the object still has the ETag given as `If-None-Match`.
    NotModified,
    /// 404: no such key (a caller allowed to list the bucket sees 404, not 403).
    Missing,
}

/// An S3 client for one role's credentials and region.
pub struct Client {
    http: hyper_util::client::legacy::Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    creds: Credentials,
    region: String,
    /// A custom endpoint (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`): path-style requests,
    /// as S3-compatible servers rarely serve virtual hosts.
    endpoint: Option<Uri>,
    max_attempts: u32,
}

/// The SDK's defaults: 3 attempts, a 3.1 s connect timeout.
const DEFAULT_ATTEMPTS: u32 = 3;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);
/// One attempt, connection to last byte: a model is a few MB from the same region.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(60);

impl Client {
    /// Credentials, region and endpoint from the variables Lambda (or the user) sets:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`) and
    /// `AWS_MAX_ATTEMPTS`.
    pub fn from_env() -> Result<Client> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let (Some(access_key), Some(secret_key)) = (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) else {
            return Err(ObjectError::Setting(
                "no AWS credentials in the environment: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
                 (Lambda sets them from the function's role; export them to run it elsewhere)"
                    .into(),
            ));
        };
        let creds = Credentials {
            access_key,
            secret_key,
            session_token: var("AWS_SESSION_TOKEN"),
        };
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let endpoint = match var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")) {
            Some(url) => Some(parse_endpoint(&url)?),
            None => None,
        };
        let max_attempts = match var("AWS_MAX_ATTEMPTS") {
            Some(v) => v
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| ObjectError::Setting(format!("AWS_MAX_ATTEMPTS={v} is not a whole number >= 1")))?,
            None => DEFAULT_ATTEMPTS,
        };
        Client::new(creds, region, endpoint, max_attempts)
    }

    pub fn new(creds: Credentials, region: String, endpoint: Option<Uri>, max_attempts: u32) -> Result<Client> {
        let mut tcp = HttpConnector::new();
        tcp.enforce_http(false);
        tcp.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .map_err(|e| ObjectError::Setting(format!("no CA certificates in the system store: {e}")))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        Ok(Client {
            http: hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(tls),
            creds,
            region,
            endpoint,
            max_attempts: max_attempts.max(1),
        })
    }

    pub async fn get(&self, bucket: &str, key: &str, if_none_match: Option<&str>) -> Result<Got> {
        let extra: Vec<(&str, &str)> = if_none_match.map(|e| ("if-none-match", e)).into_iter().collect();
        let (status, headers, body) = self
            .send(Method::GET, bucket, key, &extra, Bytes::new(), EMPTY_SHA256)
            .await?;
        match status {
            StatusCode::OK => Ok(Got::Object {
                bytes: body.to_vec(),
                etag: headers
                    .get(http::header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned),
            }),
            StatusCode::NOT_MODIFIED => Ok(Got::NotModified),
            StatusCode::NOT_FOUND => Ok(Got::Missing),
            s => Err(self.status_error(bucket, key, s, &body)),
        }
    }

    pub async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        let hash = contract::sha256_hex(&bytes);
        let extra = [("content-type", content_type)];
        let (status, _, body) = self.send(Method::PUT, bucket, key, &extra, bytes.into(), &hash).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(bucket, key, status, &body))
        }
    }

    /// Where a request for this object goes: the custom endpoint path-style, else the
    /// bucket's virtual host (path-style for names with dots, which TLS cannot match).
    fn address(&self, bucket: &str, key: &str) -> (String, String, String) {
        match &self.endpoint {
            Some(uri) => (
                uri.scheme_str().unwrap_or("https").to_string(),
                uri.authority().map(|a| a.to_string()).unwrap_or_default(),
                format!("{}/{bucket}/{key}", uri.path().trim_end_matches('/')),
            ),
            None if bucket.contains('.') => (
                "https".into(),
                format!("s3.{}.amazonaws.com", self.region),
                format!("/{bucket}/{key}"),
            ),
            None => (
                "https".into(),
                format!("{bucket}.s3.{}.amazonaws.com", self.region),
                format!("/{key}"),
            ),
        }
    }

    async fn send(
        &self,
        method: Method,
        bucket: &str,
        key: &str,
        extra: &[(&str, &str)],
        body: Bytes,
        payload_sha256: &str,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes)> {
        let (scheme, host, path) = self.address(bucket, key);
        let url = format!("{scheme}://{host}{}", sigv4::encode_path(&path));
        let uri = format!("s3://{bucket}/{key}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let signed = sigv4::sign(
                &self.creds,
                &self.region,
                &sigv4::Request {
                    method: method.as_str(),
                    host: &host,
                    path: &path,
                    headers: &[],
                    payload_sha256,
                },
                SystemTime::now(),
            );
            let mut req = http::Request::builder()
                .method(method.clone())
                .uri(&url)
                .header("host", &host);
            for (name, value) in extra
                .iter()
                .copied()
                .chain(signed.iter().map(|(k, v)| (*k, v.as_str())))
            {
                req = req.header(name, value);
            }
            let req = req.body(Full::new(body.clone())).map_err(|e| ObjectError::Request {
                uri: uri.clone(),
                reason: e.to_string(),
            })?;
            let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, async {
                let resp = self.http.request(req).await.map_err(|e| describe(&e))?;
                let (parts, body) = resp.into_parts();
                let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok::<_, String>((parts.status, parts.headers, bytes))
            })
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())));
            let transient = match &outcome {
                Ok((status, ..)) => is_transient(*status),
                Err(_) => true,
            };
            if !transient || attempt >= self.max_attempts {
                return outcome.map_err(|reason| ObjectError::Request {
                    uri,
                    reason: format!("{method} failed after {attempt} attempt(s): {reason}"),
                });
            }
            tracing::warn!(%uri, attempt, "S3 {method} failed, retrying");
            tokio::time::sleep(Duration::from_millis(100 << (attempt - 1))).await;
        }
    }

    fn status_error(&self, bucket: &str, key: &str, status: StatusCode, body: &[u8]) -> ObjectError {
        ObjectError::Status {
            uri: format!("s3://{bucket}/{key}"),
            status: status.as_u16(),
            body: summary(body),
        }
    }
}

/// 5xx and throttling, which S3 asks callers to retry.
fn is_transient(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// The error and its causes on one line (hyper's own message is only "client error").
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

/// S3's XML error as `Code: Message`, else the start of the body.
fn summary(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => code,
        _ => text.chars().take(200).collect(),
    }
}

fn parse_endpoint(url: &str) -> Result<Uri> {
    let uri: Uri = url
        .parse()
        .map_err(|e| ObjectError::Setting(format!("endpoint `{url}` is not a URL: {e}")))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(uri),
        _ => Err(ObjectError::Setting(format!(
            "endpoint `{url}` is not an http:// or https:// URL with a host"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(endpoint: Option<&str>) -> Client {
        let creds = Credentials {
            access_key: "a".into(),
            secret_key: "b".into(),
            session_token: None,
        };
        Client::new(
            creds,
            "eu-west-1".into(),
            endpoint.map(|e| parse_endpoint(e).unwrap()),
            1,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn requests_go_to_the_virtual_host_or_path_style() {
        let aws = client(None);
        assert_eq!(
            aws.address("models", "a/b.json"),
            (
                "https".into(),
                "models.s3.eu-west-1.amazonaws.com".into(),
                "/a/b.json".into()
            )
        );
        assert_eq!(
            aws.address("my.models", "k"),
            (
                "https".into(),
                "s3.eu-west-1.amazonaws.com".into(),
                "/my.models/k".into()
            )
        );
        let local = client(Some("http://127.0.0.1:5000/"));
        assert_eq!(
            local.address("b", "k"),
            ("http".into(), "127.0.0.1:5000".into(), "/b/k".into())
        );
    }

    #[test]
    fn s3_error_bodies_are_summarised() {
        let xml = b"<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        assert_eq!(summary(xml), "AccessDenied: Access Denied");
        assert_eq!(summary(b"plain"), "plain");
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        assert!(parse_endpoint("http://127.0.0.1:9").is_ok());
        assert!(parse_endpoint("127.0.0.1:9").is_err());
        assert!(parse_endpoint("ftp://x").is_err());
    }

    /// A loopback server that answers each connection with the next canned response and
    /// counts what it was asked.
    fn canned(responses: Vec<&'static str>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for (stream, response) in listener.incoming().flatten().zip(responses) {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                while reader.read_line(&mut head).unwrap_or(0) > 2 && !head.ends_with("\r\n\r\n") {}
                log.lock().unwrap().push(head);
                let mut out = stream;
                let _ = out.write_all(response.as_bytes());
            }
        });
        (endpoint, seen)
    }

    fn with_attempts(endpoint: &str, attempts: u32) -> Client {
        let creds = Credentials {
            access_key: "a".into(),
            secret_key: "b".into(),
            session_token: Some("t".into()),
        };
        Client::new(
            creds,
            "us-east-1".into(),
            Some(parse_endpoint(endpoint).unwrap()),
            attempts,
        )
        .unwrap()
    }

    const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    #[tokio::test]
    async fn transient_answers_are_retried_and_the_object_and_etag_come_back() {
        let ok = "HTTP/1.1 200 OK\r\nETag: \"e1\"\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
        let (endpoint, seen) = canned(vec![UNAVAILABLE, UNAVAILABLE, ok]);
        let got = with_attempts(&endpoint, 3)
            .get("b", "k/x.json", Some("\"e0\""))
            .await
            .unwrap();
        assert_eq!(
            got,
            Got::Object {
                bytes: b"hello".to_vec(),
                etag: Some("\"e1\"".into())
            }
        );
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        let last = seen[2].to_ascii_lowercase();
        assert!(last.starts_with("get /b/k/x.json http/1.1"), "{last}");
        for header in [
            "if-none-match: \"e0\"",
            "x-amz-security-token: t",
            "authorization: aws4-hmac-sha256 credential=a/",
        ] {
            assert!(last.contains(header), "{header} missing from {last}");
        }
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_statuses_are_told_apart() {
        let (endpoint, seen) = canned(vec![UNAVAILABLE, UNAVAILABLE, UNAVAILABLE]);
        let e = with_attempts(&endpoint, 2)
            .get("b", "k", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("503"), "{e}");
        assert_eq!(seen.lock().unwrap().len(), 2, "two attempts, not three");

        let denied = "HTTP/1.1 403 Forbidden\r\nContent-Length: 72\r\nConnection: close\r\n\r\n\
                      <Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        let missing = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let same = "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n";
        let (endpoint, seen) = canned(vec![denied, missing, same]);
        let client = with_attempts(&endpoint, 3);
        let e = client.get("b", "k", None).await.unwrap_err().to_string();
        assert_eq!(e, "s3://b/k: S3 answered 403: AccessDenied: Access Denied");
        assert_eq!(client.get("b", "k", None).await.unwrap(), Got::Missing);
        assert_eq!(client.get("b", "k", Some("\"e\"")).await.unwrap(), Got::NotModified);
        assert_eq!(seen.lock().unwrap().len(), 3, "4xx and 304 are not retried");
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_an_error_naming_the_object() {
        let e = client(Some("http://127.0.0.1:9"))
            .get("b", "k", None)
            .await
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s3://b/k: GET failed after 1 attempt(s)"), "{e}");
    }
}
