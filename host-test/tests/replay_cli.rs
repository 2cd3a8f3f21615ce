//! The `replay` binary's command line: help, the git-described version,
//! and bad flags named with exit status 2 (before any module is loaded).

use std::process::{Command, Output};

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_replay"))
        .args(args)
        .env_remove("MCP_GUARD_WASM")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn help_lists_every_flag_and_the_wasm_variable() {
    let out = replay(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    for flag in [
        "--wasm",
        "--config",
        "--jwt-key",
        "--vm-config",
        "--log-level",
        "MCP_GUARD_WASM",
        "critical",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

#[test]
fn version_names_the_crate_version_and_the_commit() {
    let out = replay(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let version = text(&out.stdout);
    assert!(
        version.starts_with(&format!("replay {}", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
}

#[test]
fn a_bad_command_line_names_what_is_wrong_and_exits_2() {
    for (args, named) in [
        (&["--config", "c.json", "--bogus"][..], "--bogus"),
        (&["--wasm", "x.wasm"][..], "--config"),
        (&["--config"][..], "--config"),
        (&["--config", "c.json", "--log-level", "loud"][..], "loud"),
        (&["--config", "c.json", "extra"][..], "extra"),
    ] {
        let out = replay(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(named), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let out = replay(&[
        "--wasm",
        "/nonexistent.wasm",
        "--config",
        "/nonexistent/c.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read /nonexistent/c.json"),
        "{}",
        text(&out.stderr)
    );
}
