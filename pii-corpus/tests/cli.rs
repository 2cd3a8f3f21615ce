//! The binary's command line: per-command help, the git-described
//! version, a bad flag named with exit status 2, and a small run.

use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-guard-pii-corpus"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_is_per_command() {
    let top = run(&["--help"]);
    assert_eq!(top.status.code(), Some(0));
    assert!(stdout(&top).contains("eval"), "{}", stdout(&top));
    assert!(stdout(&top).contains("dump"), "{}", stdout(&top));

    let eval = run(&["eval", "--help"]);
    assert_eq!(eval.status.code(), Some(0));
    for flag in ["--docs", "--seed", "--json", "--examples"] {
        assert!(stdout(&eval).contains(flag), "{flag}: {}", stdout(&eval));
    }
    assert!(!stdout(&eval).contains("--out"), "{}", stdout(&eval));

    let dump = run(&["dump", "--help"]);
    assert_eq!(dump.status.code(), Some(0));
    assert!(stdout(&dump).contains("--out"), "{}", stdout(&dump));
    assert!(!stdout(&dump).contains("--json"), "{}", stdout(&dump));
}

#[test]
fn version_names_the_crate_version_and_the_commit() {
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "mcp-guard-pii-corpus {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
}

#[test]
fn a_bad_command_line_names_what_is_wrong_and_exits_2() {
    for (args, named) in [
        (&["eval", "--bogus"][..], "--bogus"),
        // Options of the other subcommand are refused, not ignored.
        (&["eval", "--out", "x"][..], "--out"),
        (&["dump", "--json"][..], "--json"),
        (&["eval", "--docs", "many"][..], "many"),
        (&["eval", "--docs"][..], "--docs"),
        (&["frobnicate"][..], "frobnicate"),
    ] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(named), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    let none = run(&[]);
    assert_eq!(none.status.code(), Some(2));
    assert!(stderr(&none).contains("Usage"), "{}", stderr(&none));
}

#[test]
fn dump_writes_one_document_a_line() {
    let out = run(&["dump", "--docs", "3", "--seed", "7"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 3);
    for line in text.lines() {
        let doc: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(doc["text"].is_string(), "{line}");
    }
}
