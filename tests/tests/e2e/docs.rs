//! The documents a newcomer follows: every relative link in the README and `docs/` points
//! at a file (and heading) that exists, every `make` target they name is in the Makefile,
//! and the clients guide lists every error code the API can answer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use e2e::root;

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md"), root().join("tests/fixtures/README.md")];
    let mut guides: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    guides.sort();
    docs.extend(guides);
    docs
}

/// `(line, target)` of each inline Markdown link `[text](target)` outside code.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans may hold `](`-like text; drop them first.
        let plain: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            out.push((n + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(slug(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn relative_links_point_at_files_and_headings_that_exist() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(path)
            };
            let shown = format!("{}:{line}: {target}", doc.strip_prefix(root()).unwrap().display());
            if !file.exists() {
                broken.push(format!("{shown} (no such file)"));
            } else if !anchor.is_empty() {
                let heads = anchors(&std::fs::read_to_string(&file).unwrap_or_default());
                if !heads.contains(anchor) {
                    broken.push(format!("{shown} (no heading with that anchor)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The text of code spans and fenced blocks, where commands are written (a span may
/// wrap onto the next line).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if fenced {
            out.push_str(line);
            out.push('\n');
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    for span in prose.split('`').skip(1).step_by(2) {
        out.push_str(span);
        out.push('\n');
    }
    out
}

/// Targets after each `make` in commands: `make deploy`, `$(make -s url)`,
/// `make publish-model MODEL=...` (options and variables skipped).
fn make_targets(commands: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let words: Vec<&str> = commands.split_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if w.trim_start_matches(['"', '$', '(']) != "make" {
            continue;
        }
        let target = words[i + 1..]
            .iter()
            .find(|t| !t.starts_with('-') && !t.contains('='))
            .map(|t| {
                let end = t
                    .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                    .unwrap_or(t.len());
                &t[..end]
            });
        if let Some(t) = target
            && t.starts_with(|c: char| c.is_ascii_lowercase())
        {
            out.insert(t.to_string());
        }
    }
    out
}

fn makefile_targets() -> BTreeSet<String> {
    std::fs::read_to_string(root().join("Makefile"))
        .expect("Makefile")
        .lines()
        .filter(|l| !l.starts_with(['\t', ' ', '#', '.']))
        .filter_map(|l| l.split_once(':').filter(|(_, rest)| !rest.starts_with('=')))
        .flat_map(|(names, _)| names.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .collect()
}

#[test]
fn every_make_target_the_docs_name_exists() {
    let defined = makefile_targets();
    assert!(defined.contains("test") && defined.contains("run"), "{defined:?}");
    let mut missing = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for target in make_targets(&code(&text)) {
            if !defined.contains(&target) {
                missing.push(format!(
                    "{}: make {target}",
                    doc.strip_prefix(root()).unwrap().display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "targets the docs name but the Makefile lacks:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_clients_guide_lists_every_error_code() {
    let guide = std::fs::read_to_string(root().join("docs/clients.md")).unwrap();
    for code in api::ErrorCode::ALL {
        assert!(
            guide.contains(&format!("`{code}`")),
            "docs/clients.md does not list `{code}`"
        );
    }
}

#[test]
fn the_checks_find_what_they_look_for() {
    let text = "see [a](docs/x.md#part-one) and `[b](not-a-link)`\n```\n[c](in-code)\n```\n";
    assert_eq!(links(text), vec![(1, "docs/x.md#part-one".to_string())]);
    assert_eq!(
        slug(" Cost per million requests (estimate)"),
        "cost-per-million-requests-estimate"
    );
    assert_eq!(
        slug("Abstaining: what `min_probability` costs"),
        "abstaining-what-min_probability-costs"
    );
    let cmds = "make deploy CDK_ARGS=x\ncurl \"$(make -s url)/health\"\nmake publish-model MODEL=m.onnx\nmake\n";
    assert_eq!(code("run `make\ncheck-tools` first\n"), "make\ncheck-tools\n");
    assert_eq!(
        make_targets(cmds),
        ["deploy", "publish-model", "url"].map(String::from).into()
    );
    assert!(Path::new(&root()).join("Makefile").is_file());
}

/// The crate boundaries architecture.md states as `cargo tree -p X -e normal | grep -cE
/// "..."` prints 0: each is run, so the document and the dependency graph cannot drift.
#[test]
fn the_dependency_boundaries_architecture_states_hold() {
    let text = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let flat = text.replace('\n', " ");
    let mut checked = 0;
    for claim in flat.split("`cargo tree -p ").skip(1) {
        let Some((command, rest)) = claim.split_once('`') else {
            continue;
        };
        assert!(rest.trim_start().starts_with("prints 0"), "unexpected claim: {command}");
        let (package, pattern) = command
            .split_once(" -e normal | grep -cE \"")
            .and_then(|(p, rest)| Some((p, rest.strip_suffix('"')?)))
            .unwrap_or_else(|| panic!("cannot read the claim `cargo tree -p {command}`"));
        let (ok, tree) = e2e::run(
            std::process::Command::new("cargo")
                .args(["tree", "--offline", "-e", "normal", "-p", package])
                .current_dir(root()),
        );
        assert!(ok, "cargo tree -p {package}: {tree}");
        let words: Vec<&str> = pattern.split('|').collect();
        let hits: Vec<&str> = tree.lines().filter(|l| words.iter().any(|w| l.contains(w))).collect();
        assert!(
            hits.is_empty(),
            "{package} depends on what architecture.md rules out:\n{}",
            hits.join("\n")
        );
        checked += 1;
    }
    assert_eq!(checked, 3, "architecture.md states three boundaries");
}
