//! `cargo xtask fuzz [--seconds N] [target...]`: runs the cargo-fuzz
//! targets in `fuzz/` for a bounded time each and fails on a crash.
//!
//! New corpus entries go to `fuzz/corpus-run/<target>/` (ignored by git);
//! the checked-in seeds in `fuzz/corpus/<target>/` are only read. A crash
//! is reported with its artifact path: copy it to
//! `fuzz/regressions/<target>/` so `cargo test` replays it.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use mcp_guard_e2e::paths;

/// Every target, in the order they run.
const TARGETS: &[&str] = &[
    "jwt",
    "bundle",
    "jsonrpc",
    "scrub_stream",
    "exchange",
    "request_line",
];

const DEFAULT_SECONDS: u64 = 60;

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Installs cargo-fuzz when `cargo fuzz` is missing.
fn ensure_cargo_fuzz() -> Result<(), String> {
    let present = Command::new(cargo())
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    eprintln!("xtask: cargo-fuzz is missing; installing it");
    let status = Command::new(cargo())
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo install cargo-fuzz --locked` failed ({status})"
        ))
    }
}

/// Parses `[--seconds N] [target...]`.
fn parse(args: &[String]) -> Result<(u64, Vec<String>), String> {
    let mut seconds = DEFAULT_SECONDS;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                let value = it.next().ok_or("--seconds needs a number")?;
                seconds = value
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| format!("--seconds {value}: not a positive number"))?;
            }
            t if TARGETS.contains(&t) => targets.push(t.to_string()),
            other => {
                return Err(format!(
                    "unknown fuzz target `{other}` (targets: {})",
                    TARGETS.join(", ")
                ))
            }
        }
    }
    if targets.is_empty() {
        targets = TARGETS.iter().map(|t| t.to_string()).collect();
    }
    Ok((seconds, targets))
}

/// The artifacts libFuzzer wrote for `target` (crashes, leaks, timeouts).
fn artifacts(fuzz: &Path, target: &str) -> Vec<String> {
    let dir = fuzz.join("artifacts").join(target);
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Runs each target for `--seconds` (default 60); fails when any crashed.
pub fn run(args: &[String]) -> Result<(), String> {
    let (seconds, targets) = parse(args)?;
    ensure_cargo_fuzz()?;
    let fuzz = paths::workspace_root().join("fuzz");
    let mut crashed = Vec::new();
    for target in &targets {
        let before = artifacts(&fuzz, target);
        let scratch = fuzz.join("corpus-run").join(target);
        std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let started = Instant::now();
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let status = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "-O", target])
            .arg(&scratch)
            .arg(fuzz.join("corpus").join(target))
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-rss_limit_mb=2048",
                "-timeout=10",
            ])
            .current_dir(&fuzz)
            // The pinned toolchain file must not override `+nightly`.
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO")
            .status()
            .map_err(|e| format!("cannot run cargo +nightly fuzz: {e}"))?;
        let new: Vec<String> = artifacts(&fuzz, target)
            .into_iter()
            .filter(|a| !before.contains(a))
            .collect();
        if status.success() && new.is_empty() {
            eprintln!("xtask: {target}: no crash in {:.0?}", started.elapsed());
            continue;
        }
        eprintln!("xtask: {target}: CRASH ({status}); artifacts:");
        for a in &new {
            eprintln!("xtask:   {a}");
        }
        crashed.push(format!("{target} ({})", new.join(", ")));
    }
    if crashed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "fuzz targets crashed: {}; copy the artifact to fuzz/regressions/<target>/ \
             and reproduce with `cargo +nightly fuzz run <target> <artifact>`",
            crashed.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_are_parsed_and_checked() {
        let (s, t) = parse(&args(&[])).unwrap();
        assert_eq!((s, t.len()), (DEFAULT_SECONDS, TARGETS.len()));
        let (s, t) = parse(&args(&["--seconds", "5", "jwt", "exchange"])).unwrap();
        assert_eq!((s, t), (5, args(&["jwt", "exchange"])));
        assert!(parse(&args(&["--seconds"])).is_err());
        assert!(parse(&args(&["--seconds", "0"])).is_err());
        assert!(parse(&args(&["nope"])).is_err());
    }

    #[test]
    fn every_fuzz_target_is_listed() {
        let dir = paths::workspace_root().join("fuzz/fuzz_targets");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        on_disk.sort();
        let mut listed: Vec<String> = TARGETS.iter().map(|t| t.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }
}
