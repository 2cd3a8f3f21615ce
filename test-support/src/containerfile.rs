//! Static checks of a service's Containerfile (no container runtime
//! needed), shared by every image the workspace builds: multi-stage with a
//! pinned builder matching rust-toolchain.toml, a final stage with nothing
//! but the binary running as a numeric non-root user, no remote `ADD`, an
//! entrypoint whose flags the real binary accepts and whose listen ports
//! are the ones exposed, a static build of the package it copies, and a
//! build context that keeps every workspace member.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (this crate's parent directory).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// A file of the workspace, by its path from the root.
pub fn read(path: &str) -> String {
    let full = root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// One instruction: keyword (upper case) and its arguments as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

impl Instruction {
    /// The arguments of a JSON-array (exec form) instruction.
    pub fn exec_form(&self) -> Vec<String> {
        serde_json::from_str(&self.args)
            .unwrap_or_else(|_| panic!("{} must use the exec (JSON array) form", self.keyword))
    }
}

/// Splits a Containerfile into instructions: comments and blank lines
/// dropped, `\` continuations joined.
pub fn instructions(text: &str) -> Vec<Instruction> {
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

/// A Containerfile split into its global `ARG`s and its stages.
#[derive(Debug, Clone)]
pub struct Containerfile {
    /// Instructions before the first `FROM`.
    pub globals: Vec<Instruction>,
    /// Each stage, starting at its `FROM`.
    pub stages: Vec<Vec<Instruction>>,
}

impl Containerfile {
    /// Reads and splits `path` (from the workspace root).
    pub fn read(path: &str) -> Self {
        Self::parse(&read(path))
    }

    /// Splits `text` into stages.
    pub fn parse(text: &str) -> Self {
        let mut globals = Vec::new();
        let mut stages: Vec<Vec<Instruction>> = Vec::new();
        for i in instructions(text) {
            if i.keyword == "FROM" {
                stages.push(vec![i]);
            } else if let Some(stage) = stages.last_mut() {
                stage.push(i);
            } else {
                globals.push(i);
            }
        }
        Self { globals, stages }
    }

    /// Every instruction, in order.
    pub fn all(&self) -> impl Iterator<Item = &Instruction> {
        self.globals.iter().chain(self.stages.iter().flatten())
    }

    /// The default of a global `ARG NAME=value`.
    pub fn arg_default(&self, name: &str) -> Option<String> {
        self.globals
            .iter()
            .filter(|i| i.keyword == "ARG")
            .find_map(|i| i.args.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    /// The first stage (the build).
    pub fn build_stage(&self) -> &[Instruction] {
        self.stages.first().expect("a build stage")
    }

    /// The last stage (the image that ships).
    pub fn final_stage(&self) -> &[Instruction] {
        self.stages.last().expect("a final stage")
    }

    /// The last `keyword` instruction of the final stage.
    pub fn last(&self, keyword: &str) -> &Instruction {
        self.final_stage()
            .iter()
            .rfind(|i| i.keyword == keyword)
            .unwrap_or_else(|| panic!("no {keyword} in the final stage"))
    }

    /// The final stage's `ENTRYPOINT`, exec form.
    pub fn entrypoint(&self) -> Vec<String> {
        self.last("ENTRYPOINT").exec_form()
    }

    /// The value after `flag` in the entrypoint.
    pub fn entrypoint_value(&self, flag: &str) -> String {
        let entrypoint = self.entrypoint();
        entrypoint
            .iter()
            .position(|a| a == flag)
            .and_then(|i| entrypoint.get(i + 1).cloned())
            .unwrap_or_else(|| panic!("no {flag} VALUE in the entrypoint {entrypoint:?}"))
    }
}

/// The `channel` of rust-toolchain.toml.
pub fn toolchain_channel() -> String {
    read("rust-toolchain.toml")
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .expect("channel in rust-toolchain.toml")
        .trim_matches('"')
        .to_owned()
}

/// Multi-stage; the builder's `RUST_VERSION` is rust-toolchain.toml's
/// channel; every image pulled is pinned (a digest or a version tag, never
/// `latest` or none) and names its registry.
pub fn assert_pinned_builder_matching_the_toolchain(file: &Containerfile) {
    assert!(file.stages.len() >= 2, "a build stage and a final stage");
    let rust_version = file.arg_default("RUST_VERSION").expect("ARG RUST_VERSION");
    assert_eq!(
        rust_version,
        toolchain_channel(),
        "builder Rust = rust-toolchain.toml"
    );
    let mut names = Vec::new();
    for stage in &file.stages {
        let from = stage[0].args.replace("${RUST_VERSION}", &rust_version);
        let mut words = from.split_whitespace();
        let image = words.next().expect("FROM image").to_owned();
        if let (Some(kw), Some(name)) = (words.next(), words.next()) {
            assert!(kw.eq_ignore_ascii_case("AS"), "FROM {from}");
            names.push(name.to_owned());
        }
        if image == "scratch" || names.contains(&image) {
            continue;
        }
        assert!(!image.contains('$'), "unresolved variable in {image}");
        let last = image.rsplit('/').next().unwrap_or(&image);
        let pinned_by_digest = image.contains("@sha256:");
        let tag = last.split_once(':').map(|(_, t)| t);
        assert!(
            pinned_by_digest
                || tag
                    .is_some_and(|t| t != "latest" && t.starts_with(|c: char| c.is_ascii_digit())),
            "{image} is not pinned"
        );
        assert!(
            image
                .split('/')
                .next()
                .is_some_and(|host| host.contains('.')),
            "{image}: name the registry"
        );
    }
}

/// The final stage is `scratch` (or distroless/static) with no `RUN`,
/// copies only from the build stage, and runs as a numeric non-root user.
pub fn assert_minimal_final_stage_as_non_root(file: &Containerfile) {
    let last = file.final_stage();
    let base = last[0].args.split_whitespace().next().unwrap_or_default();
    assert!(
        base == "scratch" || base.contains("distroless/static"),
        "minimal final stage, got {base}"
    );
    assert!(
        last.iter().all(|i| i.keyword != "RUN"),
        "no shell in the final stage"
    );
    let user = file.last("USER");
    let (uid, gid) = user.args.split_once(':').unwrap_or((&user.args, ""));
    let uid: u32 = uid.parse().expect("numeric uid");
    assert_ne!(uid, 0, "not root");
    if !gid.is_empty() {
        assert_ne!(gid.parse::<u32>().expect("numeric gid"), 0);
    }
    for i in last.iter().filter(|i| i.keyword == "COPY") {
        assert!(i.args.starts_with("--from="), "COPY {}", i.args);
    }
}

/// `COPY` instead of `ADD`, and nothing fetched from a URL.
pub fn assert_no_remote_add(file: &Containerfile) {
    for i in file.all() {
        assert_ne!(
            i.keyword, "ADD",
            "use COPY; ADD {} fetches or unpacks",
            i.args
        );
        if i.keyword == "COPY" || i.keyword == "FROM" {
            assert!(!i.args.contains("://"), "{} {}", i.keyword, i.args);
        }
    }
}

/// The entrypoint runs the binary the final stage copies in; each of
/// `listen_flags` listens on all interfaces at an exposed port; and the
/// real `binary` accepts every flag of `ENTRYPOINT` + `CMD` (a run with
/// `--help` after them succeeds) while it refuses an unknown one, so the
/// check can fail.
pub fn assert_entrypoint_runs(file: &Containerfile, binary: &Path, listen_flags: &[&str]) {
    let entrypoint = file.entrypoint();
    let exposed: Vec<&str> = file.last("EXPOSE").args.split_whitespace().collect();
    for flag in listen_flags {
        let listen = file.entrypoint_value(flag);
        let port = listen.strip_prefix("0.0.0.0:").expect("all interfaces");
        assert!(
            exposed.contains(&port),
            "EXPOSE {exposed:?} vs {flag} {listen}"
        );
    }
    let installed = &entrypoint[0];
    assert!(
        file.final_stage()
            .iter()
            .any(|i| i.keyword == "COPY" && i.args.ends_with(&format!(" {installed}"))),
        "{installed} is not what the final stage copies in"
    );
    let cmd = file
        .final_stage()
        .iter()
        .rfind(|i| i.keyword == "CMD")
        .map(Instruction::exec_form)
        .unwrap_or_default();
    let run = |args: &[String]| {
        Command::new(binary)
            .args(args)
            .arg("--help")
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()))
    };
    let accepted = run(&[&entrypoint[1..], &cmd[..]].concat());
    assert!(
        accepted.status.success(),
        "flags refused: {}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    let bogus = run(&["--no-such-flag".to_owned()]);
    assert!(!bogus.status.success(), "an unknown flag is refused");
}

/// The build stage builds `package` from Cargo.lock with a profile that
/// exists, statically (musl: the final stage has no libc), and copies that
/// profile's binary.
pub fn assert_static_build_of(file: &Containerfile, package: &str) {
    let run = file
        .build_stage()
        .iter()
        .find(|i| i.keyword == "RUN" && i.args.contains("cargo build"))
        .expect("RUN cargo build in the build stage");
    assert!(run.args.contains("--locked"), "build from Cargo.lock");
    assert!(run.args.contains(&format!("--package {package}")));
    let profile = run
        .args
        .split_once("--profile ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .expect("--profile NAME");
    assert!(
        read("Cargo.toml").contains(&format!("[profile.{profile}]")),
        "profile {profile} exists"
    );
    assert!(run.args.contains(&format!("target/{profile}/{package}")));
    let builder = &file.build_stage()[0].args;
    assert!(
        builder.contains("-alpine") || (run.args.contains("--target") && run.args.contains("musl")),
        "a static (musl) build for a final stage without libc: {builder}"
    );
}

/// `.dockerignore` keeps build outputs and history out but every
/// workspace member in.
pub fn assert_context_keeps_every_member() {
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
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(members, _)| members)
        .expect("workspace members");
    let members: Vec<&str> = members
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() > 1, "members {members:?}");
    for member in members {
        let top = member.split('/').next().unwrap_or(member);
        assert!(
            !patterns.contains(&top),
            "{member} is excluded from the context"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# comment
ARG RUST_VERSION=1.0.0

FROM docker.io/library/rust:${RUST_VERSION}-alpine AS build
RUN cargo build \\
    --locked
FROM scratch
COPY --from=build /x /usr/local/bin/x
USER 65532:65532
ENTRYPOINT [\"/usr/local/bin/x\", \"--listen\", \"0.0.0.0:80\"]
";

    #[test]
    fn splits_stages_and_joins_continuations() {
        let file = Containerfile::parse(SAMPLE);
        assert_eq!(file.arg_default("RUST_VERSION").as_deref(), Some("1.0.0"));
        assert_eq!(file.stages.len(), 2);
        assert_eq!(file.build_stage()[1].args, "cargo build  --locked");
        assert_eq!(file.entrypoint_value("--listen"), "0.0.0.0:80");
        assert_eq!(file.last("USER").args, "65532:65532");
    }

    #[test]
    #[should_panic(expected = "not root")]
    fn a_root_user_fails() {
        assert_minimal_final_stage_as_non_root(&Containerfile::parse(
            &SAMPLE.replace("USER 65532:65532", "USER 0"),
        ));
    }

    #[test]
    #[should_panic(expected = "ADD")]
    fn a_remote_add_fails() {
        assert_no_remote_add(&Containerfile::parse(&format!(
            "{SAMPLE}ADD https://example.com/x /x\n"
        )));
    }
}
