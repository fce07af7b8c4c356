//! The example notebook, executed cell by cell (nbclient) against the running function
//! as a data scientist would run it, and the README's Python snippet, which must be its
//! first cell.

use std::process::Command;

use e2e::*;

fn first_cell() -> String {
    let text = std::fs::read_to_string(root().join("examples/notebook.ipynb")).unwrap();
    let nb: serde_json::Value = serde_json::from_str(&text).unwrap();
    match &nb["cells"][0]["source"] {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Array(lines) => lines.iter().map(|l| l.as_str().unwrap()).collect(),
        other => panic!("unexpected source {other}"),
    }
}

#[test]
fn the_readme_python_snippet_is_the_notebooks_first_cell() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("```python\n").expect("a Python block in the README") + "```python\n".len();
    let block = &readme[start..start + readme[start..].find("\n```").unwrap()];
    assert_eq!(block, first_cell());
}

#[test]
#[ignore = "needs `make setup` tools and release binaries; run by `make test`"]
fn the_notebook_runs_against_the_function() {
    let work = tempfile::tempdir().unwrap();
    let watch = start_function(&[], work.path());
    let executed = work.path().join("executed.ipynb");
    let (ok, out) = run(Command::new(venv_tool("python"))
        .current_dir(root())
        .arg("scripts/run_notebook.py")
        .arg("examples/notebook.ipynb")
        .arg(&executed)
        .env("CLASSIFY_URL", &watch.base));
    assert!(ok, "the notebook failed:\n{out}");
    assert!(out.contains("cat "), "first cell's answer: {out}");
    let accuracy = out
        .lines()
        .find_map(|l| l.strip_prefix("accuracy "))
        .unwrap_or_else(|| panic!("no accuracy line in:\n{out}"));
    assert!(accuracy.contains("on 500 images"), "{accuracy}");
    let text = std::fs::read_to_string(&executed).unwrap();
    assert!(text.contains("image/png"), "the confusion matrix was not drawn");
}
