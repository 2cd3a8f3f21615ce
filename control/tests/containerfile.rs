//! Static checks of `control/Containerfile` (no container runtime needed):
//! multi-stage, pinned builder matching rust-toolchain.toml, a final stage
//! with nothing but the binary running as a numeric non-root user, no
//! remote `ADD`, an entrypoint whose flags the real binary accepts and
//! whose listen port is the one exposed, and a build context that keeps
//! every workspace member.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap()
}

/// One instruction: keyword (upper case) and its arguments as written.
#[derive(Debug, Clone)]
struct Instruction {
    keyword: String,
    args: String,
}

/// Splits a Containerfile into instructions: comments and blank lines
/// dropped, `\` continuations joined.
fn instructions(text: &str) -> Vec<Instruction> {
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
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_owned(),
        });
        pending.clear();
    }
    assert!(pending.is_empty(), "dangling continuation");
    out
}

/// Instructions grouped by stage (each starting at its FROM); global ARGs
/// before the first FROM are returned apart.
fn stages(all: &[Instruction]) -> (Vec<Instruction>, Vec<Vec<Instruction>>) {
    let mut globals = Vec::new();
    let mut stages: Vec<Vec<Instruction>> = Vec::new();
    for i in all {
        if i.keyword == "FROM" {
            stages.push(vec![i.clone()]);
        } else if let Some(stage) = stages.last_mut() {
            stage.push(i.clone());
        } else {
            globals.push(i.clone());
        }
    }
    (globals, stages)
}

/// The default of a global `ARG NAME=value`.
fn arg_default(globals: &[Instruction], name: &str) -> Option<String> {
    globals
        .iter()
        .filter(|i| i.keyword == "ARG")
        .find_map(|i| i.args.strip_prefix(&format!("{name}=")).map(str::to_owned))
}

/// A JSON-array (exec form) instruction's arguments.
fn exec_form(i: &Instruction) -> Vec<String> {
    serde_json::from_str(&i.args)
        .unwrap_or_else(|_| panic!("{} must use the exec (JSON array) form", i.keyword))
}

fn the_containerfile() -> (Vec<Instruction>, Vec<Vec<Instruction>>) {
    stages(&instructions(&read("control/Containerfile")))
}

#[test]
fn is_multi_stage_with_a_pinned_builder_matching_the_toolchain() {
    let (globals, stages) = the_containerfile();
    assert!(stages.len() >= 2, "a build stage and a final stage");
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let rust_version = arg_default(&globals, "RUST_VERSION").unwrap();
    assert_eq!(rust_version, channel, "builder Rust = rust-toolchain.toml");

    let mut names = Vec::new();
    for stage in &stages {
        let from = stage[0].args.replace("${RUST_VERSION}", &rust_version);
        let mut words = from.split_whitespace();
        let image = words.next().unwrap().to_owned();
        if let (Some(kw), Some(name)) = (words.next(), words.next()) {
            assert!(kw.eq_ignore_ascii_case("AS"));
            names.push(name.to_owned());
        }
        if image == "scratch" || names.contains(&image) {
            continue;
        }
        assert!(!image.contains('$'), "unresolved variable in {image}");
        // Pinned: a digest, or an explicit version tag (never latest or
        // none). The registry host is explicit too.
        let last = image.rsplit('/').next().unwrap();
        let pinned_by_digest = image.contains("@sha256:");
        let tag = last.split_once(':').map(|(_, t)| t);
        assert!(
            pinned_by_digest
                || tag
                    .is_some_and(|t| t != "latest" && t.starts_with(|c: char| c.is_ascii_digit())),
            "{image} is not pinned"
        );
        assert!(
            image.split('/').next().unwrap().contains('.'),
            "{image}: name the registry"
        );
    }
}

#[test]
fn the_final_stage_is_only_the_binary_run_as_a_numeric_non_root_user() {
    let (_, stages) = the_containerfile();
    let last = stages.last().unwrap();
    let base = last[0].args.split_whitespace().next().unwrap();
    assert!(
        base == "scratch" || base.contains("distroless/static"),
        "minimal final stage, got {base}"
    );
    let keywords: Vec<&str> = last.iter().map(|i| i.keyword.as_str()).collect();
    assert!(!keywords.contains(&"RUN"), "no shell in the final stage");

    let users: Vec<&Instruction> = last.iter().filter(|i| i.keyword == "USER").collect();
    let user = users.last().expect("USER in the final stage");
    let (uid, gid) = user.args.split_once(':').unwrap_or((&user.args, ""));
    let uid: u32 = uid.parse().expect("numeric uid");
    assert_ne!(uid, 0, "not root");
    if !gid.is_empty() {
        assert_ne!(gid.parse::<u32>().expect("numeric gid"), 0);
    }
    // Nothing after USER switches back.
    let after = last.iter().rev().take_while(|i| i.keyword != "USER");
    assert!(after.clone().all(|i| i.keyword != "USER"));

    // Every COPY into the final stage comes from the build stage.
    for i in last.iter().filter(|i| i.keyword == "COPY") {
        assert!(i.args.starts_with("--from="), "COPY {}", i.args);
    }
}

#[test]
fn no_remote_add_anywhere() {
    for i in instructions(&read("control/Containerfile")) {
        assert_ne!(
            i.keyword, "ADD",
            "use COPY; ADD {} fetches or unpacks",
            i.args
        );
        for word in i.args.split_whitespace() {
            if i.keyword == "COPY" || i.keyword == "FROM" {
                assert!(!word.contains("://"), "{} {}", i.keyword, i.args);
            }
        }
    }
}

#[test]
fn the_entrypoint_listens_on_all_interfaces_at_the_exposed_port_with_real_flags() {
    let (_, stages) = the_containerfile();
    let last = stages.last().unwrap();
    let find = |kw: &str| last.iter().rfind(|i| i.keyword == kw).unwrap();
    let entrypoint = exec_form(find("ENTRYPOINT"));
    let cmd = exec_form(find("CMD"));
    let exposed: Vec<&str> = find("EXPOSE").args.split_whitespace().collect();

    let listen = entrypoint
        .iter()
        .position(|a| a == "--listen")
        .map(|i| entrypoint[i + 1].clone())
        .unwrap();
    let port = listen.strip_prefix("0.0.0.0:").expect("all interfaces");
    assert!(exposed.contains(&port), "EXPOSE {exposed:?} vs {listen}");

    // The entrypoint binary is what the final stage copies in.
    let binary = &entrypoint[0];
    assert!(last
        .iter()
        .any(|i| i.keyword == "COPY" && i.args.ends_with(&format!(" {binary}"))));
    // The data directory flag points at the declared volume.
    let data = entrypoint
        .iter()
        .position(|a| a == "--data")
        .map(|i| entrypoint[i + 1].clone())
        .unwrap();
    assert!(find("VOLUME").args.contains(&format!("\"{data}\"")));

    // The real binary accepts every flag of ENTRYPOINT + CMD (parsing stops
    // at --help only after the flags before it parsed).
    let status = Command::new(env!("CARGO_BIN_EXE_mcp-guard-control"))
        .args(&entrypoint[1..])
        .args(&cmd)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "flags refused: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    // ... and the check can fail: an unknown flag is refused.
    let bogus = Command::new(env!("CARGO_BIN_EXE_mcp-guard-control"))
        .args(["--no-such-flag", "--help"])
        .output()
        .unwrap();
    assert!(!bogus.status.success());
}

#[test]
fn the_build_compiles_the_service_with_the_profile_it_copies() {
    let (_, stages) = the_containerfile();
    let build = &stages[0];
    let run = build
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .unwrap();
    assert!(run.args.contains("--locked"), "build from Cargo.lock");
    assert!(run.args.contains("--package mcp-guard-control"));
    let profile = run
        .args
        .split_once("--profile ")
        .map(|(_, r)| r.split_whitespace().next().unwrap().to_owned())
        .unwrap();
    assert!(
        read("Cargo.toml").contains(&format!("[profile.{profile}]")),
        "profile {profile} exists"
    );
    assert!(run
        .args
        .contains(&format!("target/{profile}/mcp-guard-control")));
    // The final stage has no libc: the binary must be static, i.e. built
    // for musl (Alpine's Rust is musl-hosted, or an explicit musl target).
    let builder = &build[0].args;
    assert!(
        builder.contains("-alpine") || (run.args.contains("--target") && run.args.contains("musl")),
        "a static (musl) build for a final stage without libc: {builder}"
    );
}

#[test]
fn the_build_context_keeps_every_workspace_member() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for out in ["target", ".git"] {
        assert!(patterns.contains(&out), "{out} stays out of the context");
    }
    let manifest = read("Cargo.toml");
    let members = manifest
        .split_once("members = [")
        .unwrap()
        .1
        .split_once(']')
        .unwrap()
        .0;
    let members: Vec<&str> = members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.contains(&"control"));
    for member in members {
        let top = member.split('/').next().unwrap();
        assert!(
            !patterns.contains(&top),
            "{member} is excluded from the context"
        );
    }
}
