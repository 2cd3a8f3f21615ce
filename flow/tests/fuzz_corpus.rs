//! Replays the checked-in fuzz corpus (`fuzz/corpus/<target>/`) and every
//! input that once broke an invariant (`fuzz/regressions/<target>/`)
//! through the same checks the cargo-fuzz targets run, without libFuzzer,
//! so plain `cargo test` keeps them passing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

#[path = "../../fuzz/checks/mod.rs"]
mod checks;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// Every file under `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

fn replay(target: &str) {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap();
    let corpus = inputs("corpus", target);
    assert!(!corpus.is_empty(), "no seed corpus for {target}");
    for file in corpus.iter().chain(&inputs("regressions", target)) {
        let data = std::fs::read(file).unwrap();
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(
            outcome.is_ok(),
            "{target}: {} breaks an invariant",
            file.display()
        );
    }
}

#[test]
fn every_target_has_a_test_here() {
    let dir = fuzz_dir().join("fuzz_targets");
    for (name, _) in checks::TARGETS {
        assert!(dir.join(format!("{name}.rs")).is_file(), "{name}");
    }
}

#[test]
fn jwt_corpus() {
    replay("jwt");
}

#[test]
fn bundle_corpus() {
    replay("bundle");
}

#[test]
fn jsonrpc_corpus() {
    replay("jsonrpc");
}

#[test]
fn scrub_stream_corpus() {
    replay("scrub_stream");
}

#[test]
fn exchange_corpus() {
    replay("exchange");
}

#[test]
fn request_line_corpus() {
    replay("request_line");
}
