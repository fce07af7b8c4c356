//! First-run errors: on a machine without the Rust toolchain, Python 3 (or its venv
//! module) or Node.js, `make test` and `make run` stop within seconds naming what to
//! install. Each case runs the Makefile's check with a PATH that lacks one tool.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::root;

const TOOLS: [&str; 6] = ["make", "cargo", "rustc", "python3", "node", "npm"];
/// What any machine has, beside the tools the check looks for.
const BASICS: [&str; 4] = ["bash", "sh", "env", "id"];

/// The program itself, not a launcher that needs the PATH (pyenv's shims, say).
fn real(tool: &str) -> std::path::PathBuf {
    let ask = |args: &[&str]| {
        let out = Command::new(which(tool)).args(args).output().unwrap();
        std::path::PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
    };
    match tool {
        "python3" => ask(&[
            "-c",
            "import sys; print(getattr(sys, '_base_executable', sys.executable))",
        ]),
        "node" => ask(&["-p", "process.execPath"]),
        _ => which(tool),
    }
}

fn which(tool: &str) -> std::path::PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{tool} is not on this machine's PATH"))
}

/// A PATH folder with every tool but `without`, and `fakes` written as scripts.
fn path_with(dir: &Path, without: &[&str], fakes: &[(&str, &str)]) {
    for tool in TOOLS.iter().chain(&BASICS).filter(|t| !without.contains(t)) {
        symlink(real(tool), dir.join(tool)).unwrap();
    }
    for (name, script) in fakes {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{script}\n")).unwrap();
        Command::new("chmod").arg("+x").arg(&p).status().unwrap();
    }
}

/// The check `make test` (`mode` test) or `make run` (`mode` run) starts with.
fn check(mode: &str, without: &[&str], fakes: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new("/bin/bash");
    cmd.args(["scripts/check-tools.sh", mode]);
    in_path(cmd, without, fakes)
}

/// `cmd` in the repository with only the PATH folder [`path_with`] makes; it must end
/// within seconds.
fn in_path(mut cmd: Command, without: &[&str], fakes: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    path_with(dir.path(), without, fakes);
    let start = Instant::now();
    let out = cmd
        .current_dir(root())
        .env_clear()
        .env("PATH", dir.path())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .output()
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "the check took {:?}",
        start.elapsed()
    );
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_complete_machine_passes() {
    let (ok, err) = check("test", &[], &[]);
    assert!(ok, "{err}");
}

#[test]
fn each_missing_tool_is_named_with_how_to_install_it() {
    let cases: [(&[&str], &str); 4] = [
        (&["cargo"], "the Rust toolchain (cargo, rustc)"),
        (&["rustc"], "the Rust toolchain (cargo, rustc)"),
        (&["python3"], "Python 3: apt-get install python3 python3-venv"),
        (&["node", "npm"], "Node.js 20 or newer with npm"),
    ];
    for (without, named) in cases {
        let (ok, err) = check("test", without, &[]);
        assert!(!ok, "without {without:?} the check passed");
        assert!(err.contains(named), "without {without:?}: {err}");
        assert!(err.contains("make test needs:"), "{err}");
    }
}

#[test]
fn python_without_venv_and_an_old_node_are_named_too() {
    let (ok, err) = check("test", &["python3"], &[("python3", "exit 1")]);
    assert!(
        !ok && err.contains("Python 3 venv support: apt-get install python3-venv"),
        "{err}"
    );
    let old_node = r#"if [ "$1" = --version ]; then echo v18.19.0; else exit 1; fi"#;
    let (ok, err) = check("test", &["node"], &[("node", old_node)]);
    assert!(!ok && err.contains("Node.js 20 or newer (found v18.19.0)"), "{err}");
}

/// Through make itself: `make test` and `make run` start with the check, before any
/// set-up or build.
#[test]
fn make_test_and_make_run_stop_at_once() {
    for target in ["test", "run"] {
        let mut cmd = Command::new(which("make"));
        cmd.args(["-s", target]);
        let (ok, err) = in_path(cmd, &["cargo"], &[]);
        assert!(!ok, "make {target} went on without cargo");
        assert!(
            err.contains(&format!("make {target} needs:")) && err.contains("the Rust toolchain"),
            "{err}"
        );
    }
}

#[test]
fn make_run_does_not_need_node() {
    let (ok, err) = check("run", &["node", "npm"], &[]);
    assert!(ok, "{err}");
    let (ok, err) = check("run", &["cargo"], &[]);
    assert!(!ok && err.contains("make run needs:"), "{err}");
}
