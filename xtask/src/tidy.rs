//! Repository rules checked by plain `cargo test`: file headers, banned crates, core's dependencies.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::root;

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            files(&path, ext, out);
        } else if path.extension().is_some_and(|e| e == ext) {
            out.push(path);
        }
    }
}

fn all(ext: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["crates", "xtask", "examples"] {
        files(&root().join(dir), ext, &mut out);
    }
    assert!(
        !out.is_empty(),
        "no .{ext} files found under {}",
        root().display()
    );
    out
}

#[test]
fn every_rust_file_opens_with_a_module_doc_line() {
    let missing: Vec<_> = all("rs")
        .into_iter()
        .filter(|p| {
            !fs::read_to_string(p)
                .unwrap_or_default()
                .starts_with("//! ")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading `//!` line: {missing:#?}"
    );
}

#[test]
fn no_manifest_depends_on_bincode() {
    let mut manifests = all("toml");
    manifests.push(root().join("Cargo.toml"));
    for manifest in manifests.iter().filter(|p| p.ends_with("Cargo.toml")) {
        let text = fs::read_to_string(manifest).unwrap_or_default();
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with("bincode")),
            "{} depends on bincode, which is unmaintained (RUSTSEC-2025-0141); use postcard",
            manifest.display()
        );
    }
}

#[test]
fn core_depends_on_no_database_client() {
    let manifest =
        fs::read_to_string(root().join("crates/eventlogs-core/Cargo.toml")).unwrap_or_default();
    for client in ["postgres", "fred", "redis", "deadpool", "sqlx", "diesel"] {
        assert!(
            !manifest
                .lines()
                .any(|l| l.contains(client) && !l.trim_start().starts_with('#') && l.contains('=')),
            "eventlogs-core must not depend on a database client ({client})"
        );
    }
}

#[test]
fn source_files_stay_small() {
    let large: Vec<_> = all("rs")
        .into_iter()
        .filter(|p| {
            fs::read_to_string(p)
                .map(|t| t.lines().count() > 700)
                .unwrap_or(false)
        })
        .collect();
    assert!(large.is_empty(), "split these files by concept: {large:#?}");
}

#[test]
fn spans_are_attached_with_instrument_not_entered() {
    // A guard of `span.enter()` held across an `.await` tags other tasks' events with the span;
    // clippy's `await_holding_invalid_type` (configured in clippy.toml) catches it in a build,
    // and this check keeps the pattern out of the code altogether.
    let entered: Vec<_> = all("rs")
        .into_iter()
        .filter(|p| !p.ends_with("tidy.rs"))
        .filter(|p| {
            fs::read_to_string(p)
                .map(|t| t.contains(".enter()") || t.contains(".entered()"))
                .unwrap_or(false)
        })
        .collect();
    assert!(
        entered.is_empty(),
        "use `.instrument(span)` instead of entering a span: {entered:#?}"
    );
    let clippy = fs::read_to_string(root().join("clippy.toml")).unwrap_or_default();
    assert!(
        clippy.contains("tracing::span::Entered"),
        "clippy.toml must list tracing's span guards in await-holding-invalid-types"
    );
}
