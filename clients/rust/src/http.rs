//! One endpoint, posted to with retries; every answer read into the API's types.

use std::path::Path;
use std::time::{Duration, Instant};

use api::{ErrorBody, FeedbackRequest, FeedbackResponse, ModelInfo, PredictResponse};
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// Request behaviour shared by every command.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub timeout: Duration,
    pub retries: u32,
    pub top_k: usize,
    /// Sent as `min_probability` when set.
    pub min_probability: Option<f32>,
    /// Sent as `Authorization: Bearer <token>` when set (stacks deployed with sign-in).
    pub token: Option<String>,
    /// Ask for saliency maps (`explain=true`).
    pub explain: bool,
}

/// What came back for one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Prediction(PredictResponse),
    Error(ErrorBody),
    /// Not an API answer: a transport error, or a body of another shape (a proxy's page).
    Other(String),
}

/// One answered request.
#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    pub file: String,
    /// HTTP status; 0 when no answer arrived.
    pub status: u16,
    pub reply: Reply,
    pub latency_ms: f64,
    pub attempts: u32,
}

impl Answer {
    pub fn prediction(&self) -> Option<&PredictResponse> {
        match &self.reply {
            Reply::Prediction(p) if self.status == 200 => Some(p),
            _ => None,
        }
    }
}

/// A deployed API: its base URL and an HTTP agent.
pub struct Client {
    base: String,
    agent: ureq::Agent,
    options: ClientOptions,
}

impl Client {
    /// `url`: the API's base URL, or its predict URL.
    pub fn new(url: &str, options: ClientOptions) -> Self {
        let url = url.trim_end_matches('/');
        let base = url.strip_suffix("/predict").unwrap_or(url).to_string();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(options.timeout))
            .build()
            .into();
        Self { base, agent, options }
    }

    pub fn predict_url(&self) -> String {
        format!("{}/predict", self.base)
    }

    /// `GET /model`: the served model's labels, version and limits.
    pub fn model_info(&self) -> Result<ModelInfo, String> {
        let mut r = self
            .agent
            .get(format!("{}/model", self.base))
            .call()
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        if status != 200 {
            return Err(format!("GET /model answered {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("GET /model: {e}: {text}"))
    }

    /// `POST /feedback`: a correction (the label an answer should have had, for its
    /// request id or its image). An API error comes back as its code and message.
    pub fn feedback(&self, correction: &FeedbackRequest) -> Result<FeedbackResponse, String> {
        let mut request = self
            .agent
            .post(format!("{}/feedback", self.base))
            .header("content-type", api::media::JSON);
        if let Some(token) = &self.options.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let body = serde_json::to_vec(correction).map_err(|e| e.to_string())?;
        let mut r = request.send(&body[..]).map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
        if status != 201 {
            return Err(match serde_json::from_str::<ErrorBody>(&text) {
                Ok(e) => format!("{status} {}: {}", e.error.code, e.error.message),
                Err(_) => format!("POST /feedback answered {status}: {text}"),
            });
        }
        serde_json::from_str(&text).map_err(|e| format!("POST /feedback: {e}: {text}"))
    }

    /// POST one image's bytes as a raw body, retrying 429, 5xx and transport errors with
    /// exponential backoff (0.25 s, 0.5 s, 1 s, ...).
    pub fn post_image(&self, file: &Path, bytes: &[u8]) -> Answer {
        let mut url = format!("{}?top_k={}", self.predict_url(), self.options.top_k);
        if let Some(p) = self.options.min_probability {
            url += &format!("&min_probability={p}");
        }
        if self.options.explain {
            url += "&explain=true";
        }
        let content_type = file
            .extension()
            .and_then(|e| e.to_str())
            .map_or(api::media::RAW_ALIASES[1], api::media::for_extension);
        let start = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut request = self.agent.post(&url).header("content-type", content_type);
            if let Some(token) = &self.options.token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let (status, reply) = match request.send(bytes) {
                Ok(mut r) => {
                    let status = r.status().as_u16();
                    let text = r.body_mut().read_to_string().unwrap_or_default();
                    (status, serde_json::from_str(&text).unwrap_or(Reply::Other(text)))
                }
                Err(e) => (0, Reply::Other(e.to_string())),
            };
            let retryable = status == 0 || status == 429 || status >= 500;
            if !retryable || attempts > self.options.retries {
                return Answer {
                    file: file.display().to_string(),
                    status,
                    reply,
                    latency_ms: start.elapsed().as_secs_f64() * 1e3,
                    attempts,
                };
            }
            std::thread::sleep(Duration::from_millis(250 << (attempts - 1).min(5)));
        }
    }

    /// Classify `files` one by one.
    pub fn classify(&self, files: &[impl AsRef<Path>]) -> Result<Vec<Answer>, ClientError> {
        files
            .iter()
            .map(|f| {
                let f = f.as_ref();
                let bytes = std::fs::read(f).map_err(|source| ClientError::Io { path: f.into(), source })?;
                Ok(self.post_image(f, &bytes))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Client {
        Client::new(
            url,
            ClientOptions {
                timeout: Duration::from_secs(1),
                retries: 0,
                top_k: 1,
                min_probability: None,
                token: None,
                explain: false,
            },
        )
    }

    /// A bearer token travels in the Authorization header of every image request.
    #[test]
    fn a_token_is_sent_as_a_bearer() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            stream
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let c = Client::new(
            &url,
            ClientOptions {
                token: Some("t0ken".into()),
                ..client(&url).options
            },
        );
        assert_eq!(c.post_image(Path::new("x.png"), b"png").status, 503);
        let head = server.join().unwrap().to_ascii_lowercase();
        assert!(head.contains("authorization: bearer t0ken"), "{head}");
    }

    #[test]
    fn base_and_predict_urls() {
        assert_eq!(client("https://x/").predict_url(), "https://x/predict");
        assert_eq!(client("https://x/predict").predict_url(), "https://x/predict");
        assert_eq!(
            client("https://x/prod/predict/").predict_url(),
            "https://x/prod/predict"
        );
    }

    #[test]
    fn replies_are_read_into_their_type() {
        let ok = r#"{"label":"cat","probability":0.9,"matched":true,"predictions":[{"label":"cat","probability":0.9}],"model_version":"v"}"#;
        assert!(matches!(serde_json::from_str(ok).unwrap(), Reply::Prediction(_)));
        let err = r#"{"error":{"code":"invalid_top_k","message":"m"}}"#;
        assert!(matches!(serde_json::from_str(err).unwrap(), Reply::Error(_)));
        assert!(serde_json::from_str::<Reply>(r#"{"message":"Internal Server Error"}"#).is_err());
    }

    #[test]
    fn an_unreachable_endpoint_is_an_answer_with_status_0() {
        let a = client("http://127.0.0.1:9").post_image(Path::new("a.png"), b"x");
        assert_eq!((a.status, a.attempts), (0, 1));
        assert!(matches!(a.reply, Reply::Other(_)));
        assert!(a.prediction().is_none());
    }
}
