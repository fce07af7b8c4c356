//! The shipped model checked by an independent runtime (ONNX Runtime from PyPI).

use std::process::Command;

use e2e::*;

#[test]
#[ignore = "needs `make setup` (onnxruntime in .venv); run by `make test`"]
fn onnx_runtime_runs_the_shipped_model_and_matches_its_golden_outputs() {
    let (ok, text) = run(Command::new(venv_tool("python"))
        .arg(root().join("scripts/check_onnx.py"))
        .arg(root().join("models/cifar10.onnx"))
        .arg(root().join("models/golden.json")));
    assert!(ok, "{text}");
    assert!(text.contains("follows the contract"), "{text}");
}
