//! The function served over HTTP on loopback as `make run` serves it: the workspace's
//! release `classify` binary polling cargo lambda's emulator of the Lambda runtime API,
//! whose function URLs turn HTTP requests into API Gateway v2 events. The emulator builds
//! nothing (`--only-lambda-apis`), so the binary under test is the one `make test` built.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::{Service, bin, free_port, http, root, venv_tool};

/// The function and the emulator in front of it, on an ephemeral loopback port.
pub struct Watch {
    /// The `classify` process; its log holds the function's JSON lines.
    pub function: Service,
    pub emulator: Service,
    /// `http://127.0.0.1:PORT/lambda-url/classify`
    pub base: String,
}

/// The emulator's environment for a function whose runtime API it serves on `port`.
pub fn emulated_lambda_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        (
            "AWS_LAMBDA_RUNTIME_API",
            format!("http://127.0.0.1:{port}/.rt/classify"),
        ),
        ("AWS_LAMBDA_FUNCTION_NAME", "classify".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "1".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".into()),
    ]
}

/// Start the function with `env`, waiting until `/health` answers.
pub fn start_function(env: &[(&'static str, String)], logs: &Path) -> Watch {
    let port = free_port();
    let mut cmd = Command::new(venv_tool("cargo-lambda"));
    cmd.current_dir(root())
        .args([
            "lambda",
            "watch",
            "--only-lambda-apis",
            // The function's own CORS headers are under test, not the emulator's.
            "--disable-cors",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string());
    let mut emulator = Service::spawn("cargo-lambda-watch", cmd, logs);
    // A TCP connection, not a request: the emulator's routes wait for a function to answer.
    emulator.wait_until(Duration::from_secs(60), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let agent = http();
    let mut cmd = Command::new(bin("classify"));
    cmd.envs(emulated_lambda_env(port));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut function = Service::spawn("classify", cmd, logs);
    let base = format!("http://127.0.0.1:{port}/lambda-url/classify");
    let health = format!("{base}/health");
    function.wait_until(Duration::from_secs(120), || {
        agent
            .get(&health)
            .call()
            .map(|r| r.status().as_u16() == 200)
            .unwrap_or(false)
    });
    Watch {
        function,
        emulator,
        base,
    }
}
