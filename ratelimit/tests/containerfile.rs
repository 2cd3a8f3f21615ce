//! Static checks of `ratelimit/Containerfile` (no container runtime
//! needed): the builder matches rust-toolchain.toml, the final stage is
//! `scratch` running as a numeric non-root user, every flag of the
//! entrypoint is one the real binary knows, and the ports it listens on are
//! the ones exposed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// Instruction lines (comments, blanks dropped; continuations joined).
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let (keyword, args) = pending.split_once(' ').unwrap_or((&pending, ""));
        out.push((keyword.to_ascii_uppercase(), args.trim().to_owned()));
        pending.clear();
    }
    out
}

#[test]
fn the_image_is_pinned_minimal_and_runs_what_the_binary_accepts() {
    let all = instructions(&read("ratelimit/Containerfile"));
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"');
    let arg = all
        .iter()
        .find(|(k, a)| k == "ARG" && a.starts_with("RUST_VERSION="))
        .unwrap();
    assert_eq!(arg.1, format!("RUST_VERSION={channel}"));
    let froms: Vec<&String> = all
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert_eq!(froms.len(), 2);
    assert!(froms[0].contains("rust:${RUST_VERSION}-alpine"));
    assert_eq!(froms[1], "scratch");
    let last_from = all.iter().rposition(|(k, _)| k == "FROM").unwrap();
    let final_stage = &all[last_from..];
    let user = final_stage.iter().find(|(k, _)| k == "USER").unwrap();
    let uid: u32 = user.1.split(':').next().unwrap().parse().unwrap();
    assert_ne!(uid, 0);
    assert!(!all.iter().any(|(k, _)| k == "ADD"));

    let entrypoint: Vec<String> = exec_form(
        &final_stage
            .iter()
            .find(|(k, _)| k == "ENTRYPOINT")
            .unwrap()
            .1,
    );
    assert_eq!(entrypoint[0], "/usr/local/bin/mcp-guard-ratelimit");
    let help = Command::new(env!("CARGO_BIN_EXE_mcp-guard-ratelimit"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in entrypoint.iter().filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag.as_str()), "{flag} unknown:\n{help}");
    }
    let exposed: Vec<&str> = final_stage
        .iter()
        .find(|(k, _)| k == "EXPOSE")
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    for flag in ["--listen", "--http-listen"] {
        let at = entrypoint.iter().position(|a| a == flag).unwrap();
        let port = entrypoint[at + 1].rsplit(':').next().unwrap();
        assert!(exposed.contains(&port), "{flag} port {port} not exposed");
    }
}

/// A JSON array of strings (the exec form), parsed without a JSON crate:
/// the entrypoint holds no escapes.
fn exec_form(text: &str) -> Vec<String> {
    let inner = text
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap();
    inner
        .split(',')
        .map(|item| item.trim().trim_matches('"').to_owned())
        .collect()
}
