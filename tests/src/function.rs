//! The function served over HTTP on loopback exactly as `make run` serves it:
//! `scripts/serve.sh` puts the workspace's release `classify` binary behind cargo lambda's
//! emulator of the Lambda runtime API, whose function URLs turn HTTP requests into API
//! Gateway v2 events. The emulator builds nothing (`--only-lambda-apis`), so the binary
//! under test is the one `make test` built.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Service, bin, free_port, http, root};

/// The served function on an ephemeral loopback port.
pub struct Watch {
    /// `scripts/serve.sh` with the emulator and the `classify` process in its group; its
    /// log holds the function's JSON lines (and the emulator's own).
    pub function: Service,
    /// `http://127.0.0.1:PORT/lambda-url/classify`
    pub base: String,
}

/// Start the function with `env`, waiting until `/health` answers (200, or 403 where
/// `ORIGIN_VERIFY` makes it refuse callers without the origin header).
pub fn start_function(env: &[(&'static str, String)], logs: &Path) -> Watch {
    let port = free_port();
    let mut cmd = Command::new("bash");
    cmd.current_dir(root())
        .arg("scripts/serve.sh")
        .arg(bin("classify"))
        .arg(port.to_string())
        .env(
            "PATH",
            format!(
                "{}:{}",
                root().join(".venv/bin").display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut function = Service::spawn("classify", cmd, logs);
    let base = format!("http://127.0.0.1:{port}/lambda-url/classify");
    let health = format!("{base}/health");
    let agent = http();
    function.wait_until(Duration::from_secs(120), || {
        agent
            .get(&health)
            .call()
            .map(|r| matches!(r.status().as_u16(), 200 | 403))
            .unwrap_or(false)
    });
    Watch { function, base }
}
