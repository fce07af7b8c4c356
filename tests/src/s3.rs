//! A real S3 API on loopback (moto_server), a proxy that fails chosen requests, and
//! publishing to it with the trainer's CLI.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Service, bin, free_port, http, venv_tool};

/// moto_server on an ephemeral port: a real S3 API on loopback.
pub struct S3Server {
    pub service: Service,
    pub endpoint: String,
}

impl S3Server {
    /// A server with `bucket` already created, logging into `work`: the set-up every
    /// publish and refresh test starts from.
    pub fn with_bucket(work: &Path, bucket: &str) -> S3Server {
        let s3 = S3Server::start(work);
        s3.create_bucket(bucket);
        s3
    }

    pub fn start(log_dir: &Path) -> S3Server {
        let port = free_port();
        let mut cmd = Command::new(venv_tool("moto_server"));
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        let mut service = Service::spawn("moto_server", cmd, log_dir);
        let endpoint = format!("http://127.0.0.1:{port}");
        let agent = http();
        let probe = format!("{endpoint}/");
        service.wait_until(Duration::from_secs(60), || agent.get(&probe).call().is_ok());
        S3Server { service, endpoint }
    }

    pub fn create_bucket(&self, bucket: &str) {
        let r = http()
            .put(&format!("{}/{bucket}", self.endpoint))
            .send_empty()
            .expect("create bucket");
        assert_eq!(r.status().as_u16(), 200, "create bucket {bucket}");
    }

    /// A signed S3 client for this server, and a runtime to drive it from a plain test.
    fn client(&self) -> (aws_sdk_s3::Client, tokio::runtime::Runtime) {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "e2e"))
            .force_path_style(true)
            .http_client(registry::s3::http_client())
            .build();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        (aws_sdk_s3::Client::from_conf(config), rt)
    }

    /// Read an object with real (signed) S3 requests: `(status, body)`, 404 when missing.
    pub fn get_object(&self, bucket: &str, key: &str) -> (u16, Vec<u8>) {
        let (client, rt) = self.client();
        rt.block_on(async {
            match client.get_object().bucket(bucket).key(key).send().await {
                Ok(out) => (200, out.body.collect().await.expect("body").into_bytes().to_vec()),
                Err(e) => (e.raw_response().map(|r| r.status().as_u16()).unwrap_or(0), Vec::new()),
            }
        })
    }

    /// Write an object with a real (signed) S3 request.
    pub fn put_object(&self, bucket: &str, key: &str, body: Vec<u8>) {
        let (client, rt) = self.client();
        rt.block_on(client.put_object().bucket(bucket).key(key).body(body.into()).send())
            .expect("put object");
    }

    /// Environment that points the AWS SDK at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL_S3", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }
}

/// A loopback HTTP proxy in front of a real S3 server that answers 503 to every request
/// whose request line contains `fail_on` and forwards the rest, one request per
/// connection: a failure injected at a chosen step of an otherwise real upload.
pub struct FaultyProxy {
    pub endpoint: String,
    /// Request lines seen, in order.
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl FaultyProxy {
    pub fn start(upstream: &str, fail_on: &str) -> FaultyProxy {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (fail_on, log) = (fail_on.to_string(), seen.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (upstream, fail_on, log) = (upstream.clone(), fail_on.clone(), log.clone());
                std::thread::spawn(move || -> std::io::Result<()> {
                    let mut reader = BufReader::new(client.try_clone()?);
                    let mut head = Vec::new();
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line)? == 0 {
                            return Ok(());
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if !lower.starts_with("connection:") {
                            head.push(line);
                        }
                    }
                    log.lock().unwrap().push(head[0].trim_end().to_string());
                    let mut client = client;
                    if head[0].contains(&fail_on) {
                        client.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        )?;
                        return Ok(());
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body)?;
                    let mut up = std::net::TcpStream::connect(&upstream)?;
                    up.write_all(head.concat().as_bytes())?;
                    up.write_all(b"connection: close\r\n\r\n")?;
                    up.write_all(&body)?;
                    std::io::copy(&mut up, &mut client)?;
                    Ok(())
                });
            }
        });
        FaultyProxy { endpoint, seen }
    }
}

/// `trainer publish --run RUN --to TO` against `s3`, not yet run.
pub fn publish_command(run: &Path, to: &str, s3: &S3Server) -> Command {
    let mut cmd = Command::new(bin("trainer"));
    cmd.args(["publish", "--run"])
        .arg(run)
        .args(["--to", to])
        .envs(s3.env());
    cmd
}

/// Publish a run directory, which must succeed.
pub fn publish_run(run: &Path, to: &str, s3: &S3Server) {
    let out = publish_command(run, to, s3).output().expect("trainer runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
