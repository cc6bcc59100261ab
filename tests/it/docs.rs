//! The README and `docs/` point only at what is in the repository: every
//! relative link resolves, and every file path they name exists.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).expect("docs/ exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            docs.push(path);
        }
    }
    docs
}

/// Where a path written in the docs may be relative to: the repository, or
/// the directories the prose names files in (`server/page_cache.rs` is in `src/`).
const BASES: [&str; 7] = [
    "",
    "src/",
    "tests/it/",
    "stripe-emulator/",
    "stripe-emulator/src/",
    "end2end/",
    "migration/src/",
];

const FILE_ENDINGS: [&str; 9] = [
    ".rs", ".md", ".toml", ".sh", ".ts", ".json", ".py", ".png", ".css",
];

/// `name` looks like a path in this repository (not a URL, a glob or a
/// placeholder).
fn is_repo_path(name: &str) -> bool {
    !name.contains("://")
        && !name.contains(['*', '…', '<', ' ', '{', '$'])
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
        && (FILE_ENDINGS.iter().any(|end| name.ends_with(end))
            || (name.ends_with('/') && name.len() > 1))
}

/// Named in the docs but not part of the repository: created when the app
/// runs (`data/`) or by a build or the benchmark (`target/`), both git-ignored,
/// or a file of Stripe's own repository.
fn made_elsewhere(name: &str) -> bool {
    name.starts_with("data/") || name.starts_with("target/") || name == "fixtures3.json"
}

fn exists(name: &str, doc: &Path) -> bool {
    let name = name.trim_start_matches("./");
    if made_elsewhere(name) {
        return true;
    }
    let relative_to_doc = doc.parent().unwrap().join(name);
    relative_to_doc.exists()
        || BASES
            .iter()
            .any(|base| root().join(base).join(name).exists())
}

#[test]
fn docs_name_only_files_that_exist() {
    let mut missing = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let shown = doc.strip_prefix(root()).unwrap().display().to_string();
        // Markdown links: [text](target), targets without a scheme.
        for (at, _) in text.match_indices("](") {
            let rest = &text[at + 2..];
            let target = &rest[..rest.find(')').unwrap_or(0)];
            let file = target.split('#').next().unwrap();
            if !file.is_empty() && !target.contains("://") && !exists(file, &doc) {
                missing.push(format!("{shown}: link {target}"));
            }
        }
        // Code spans that name a file or directory.
        for (i, span) in text.split('`').enumerate() {
            if i % 2 == 1 && is_repo_path(span) && !exists(span, &doc) {
                missing.push(format!("{shown}: `{span}`"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_readme_stays_a_guide() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 400,
        "README.md has {lines} lines; the reference belongs in docs/"
    );
}
