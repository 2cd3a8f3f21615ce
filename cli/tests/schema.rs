//! The hand-written bundle schema must agree with the engine's parser:
//! every shipped policy and valid fixture passes both, every invalid
//! fixture fails both, and the cross-field checks only the engine makes are
//! pinned down so a change on either side is noticed.

use std::path::{Path, PathBuf};
use std::process::Command;

use jsonschema::Validator;
use mcp_guard_engine::Bundle;
use serde_json::Value;

const SCHEMA: &str = include_str!("../../schemas/bundle-v1.schema.json");

fn validator() -> Validator {
    let schema: Value = serde_json::from_str(SCHEMA).expect("schema is JSON");
    jsonschema::draft202012::meta::validate(&schema).expect("schema is a valid 2020-12 schema");
    jsonschema::draft202012::new(&schema).expect("schema compiles")
}

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

/// (schema accepts, engine accepts, schema errors for messages).
fn verdicts(validator: &Validator, path: &Path) -> (bool, bool, Vec<String>) {
    let text = std::fs::read(path).unwrap();
    let instance: Value = serde_json::from_slice(&text).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    (errors.is_empty(), Bundle::parse(&text).is_ok(), errors)
}

#[test]
fn shipped_policies_and_valid_fixtures_pass_both() {
    let v = validator();
    // `*.tests.json` next to a policy are its unit tests, not bundles.
    let mut files: Vec<_> = json_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies"))
        .into_iter()
        .filter(|f| !f.to_string_lossy().ends_with(".tests.json"))
        .collect();
    files.extend(json_files(&data("bundles/valid")));
    files.push(data("explain/bundle.json"));
    files.push(data("explain/bundle-dry-run.json"));
    for file in files {
        let (schema_ok, engine_ok, errors) = verdicts(&v, &file);
        assert!(engine_ok, "engine rejects {}", file.display());
        assert!(schema_ok, "schema rejects {}: {errors:?}", file.display());
    }
}

#[test]
fn invalid_fixtures_fail_both() {
    let v = validator();
    for file in json_files(&data("bundles/invalid")) {
        let (schema_ok, engine_ok, _) = verdicts(&v, &file);
        assert!(!engine_ok, "engine accepts {}", file.display());
        assert!(!schema_ok, "schema accepts {}", file.display());
    }
}

/// Checks across fields that JSON Schema cannot express; documented in the
/// schema's description. If the schema learns one, move the fixture.
#[test]
fn engine_only_checks_are_exactly_the_documented_ones() {
    let v = validator();
    let names: Vec<String> = json_files(&data("bundles/engine-only"))
        .into_iter()
        .map(|file| {
            let (schema_ok, engine_ok, _) = verdicts(&v, &file);
            assert!(!engine_ok, "engine accepts {}", file.display());
            assert!(schema_ok, "schema now rejects {}", file.display());
            file.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    assert_eq!(
        names,
        [
            "duplicate-capture",
            "duplicate-route-id",
            "duplicate-rule-id",
            "hours-equal",
            "resource-dot-segment",
            "route-fallback-is-cluster",
            "unknown-capture",
            "unknown-resource-capture",
            "version-float"
        ]
    );
}

#[test]
fn schema_names_the_offending_operator_set() {
    let v = validator();
    let (ok, _, errors) = verdicts(&v, &data("bundles/invalid/two-operators.json"));
    assert!(!ok);
    assert!(
        errors.iter().any(|e| e.contains("/rules/0/when/claims/0")),
        "{errors:?}"
    );
}

#[test]
fn schema_command_prints_the_schema_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), SCHEMA);
}
