//! Helpers for the end-to-end tests: real processes (moto_server, cargo lambda watch,
//! the trainer, qemu) started on loopback with ephemeral ports and stopped on drop,
//! also when a test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A release binary of the workspace (`make test` builds them first).
pub fn bin(name: &str) -> PathBuf {
    let p = root().join("target/release").join(name);
    assert!(p.is_file(), "{} is missing: run `cargo build --release --workspace --bins` (make test does)", p.display());
    p
}

/// A tool from the project's `.venv` (installed by `make setup`).
pub fn venv_tool(name: &str) -> PathBuf {
    let p = root().join(".venv/bin").join(name);
    assert!(p.is_file(), "{} is missing: run `make setup`", p.display());
    p
}

/// The shared CIFAR-10 JPEG training archive.
pub fn dataset_tgz() -> PathBuf {
    let p = root().join("../shared/datasets/cifar10-jpeg/train.tar.gz");
    assert!(p.is_file(), "{} is missing", p.display());
    p
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// A child process in its own process group, killed with its descendants on drop.
pub struct Service {
    child: Child,
    pub name: String,
    pub log: PathBuf,
}

impl Service {
    pub fn spawn(name: &str, mut cmd: Command, log_dir: &Path) -> Service {
        use std::os::unix::process::CommandExt;
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("log file");
        cmd.stdin(Stdio::null()).stdout(file.try_clone().expect("dup log")).stderr(file).process_group(0);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Service { child, name: name.into(), log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Poll `ready` until it holds, failing with the service's log if it exits or times out.
    pub fn wait_until(&mut self, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if ready() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status} before it was ready:\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("{} not ready after {timeout:?}:\n{}", self.name, self.log_text());
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signalling our own child's process group.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// An HTTP agent that returns 4xx/5xx as responses instead of errors.
pub fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// moto_server on an ephemeral port: a real S3 API on loopback.
pub struct S3Server {
    pub service: Service,
    pub endpoint: String,
}

impl S3Server {
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
        let r = http().put(&format!("{}/{bucket}", self.endpoint)).send_empty().expect("create bucket");
        assert_eq!(r.status().as_u16(), 200, "create bucket {bucket}");
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

/// Real JPEGs from the shared dataset: the first `per_class` files of each class,
/// as (class, file name, bytes).
pub fn sample_images(per_class: usize) -> Vec<(String, String, Vec<u8>)> {
    use std::io::Read;
    let file = std::fs::File::open(dataset_tgz()).expect("open dataset");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    let mut out = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().expect("path").into_owned();
        let class = path.parent().and_then(Path::file_name).unwrap().to_string_lossy().into_owned();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let n = counts.entry(class.clone()).or_default();
        if *n >= per_class {
            continue;
        }
        *n += 1;
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        out.push((class, name, bytes));
        if counts.len() == 10 && counts.values().all(|&c| c >= per_class) {
            break;
        }
    }
    out
}

/// Write images into an image-folder layout under `dir`.
pub fn write_folder(dir: &Path, images: &[(String, String, Vec<u8>)]) {
    for (class, name, bytes) in images {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join(name), bytes).expect("write image");
    }
}
