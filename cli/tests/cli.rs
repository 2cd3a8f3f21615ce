//! End-to-end tests of the `mcp-guard` binary on the fixtures in
//! `tests/data/`.

use std::path::PathBuf;
use std::process::{Command, Output};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

/// Runs the binary from `tests/data` so file names in output are short.
fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        .args(args)
        .current_dir(data_dir())
        .output()
        .expect("binary runs")
}

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited")
}

/// An unsigned token: any signature is accepted when decoding unverified.
fn token(payload: &Value) -> String {
    let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.c2lnbmF0dXJl",
        part(&json!({"alg": "RS256", "kid": "k1"})),
        part(payload)
    )
}

fn explain(identity: &[&str], request: &str, extra: &[&str]) -> Output {
    let mut args = vec!["explain", "--bundle", "explain/bundle.json"];
    args.extend_from_slice(identity);
    args.extend_from_slice(&["--request", request]);
    args.extend_from_slice(extra);
    run(&args)
}

#[test]
fn validate_accepts_good_bundles() {
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/demo.json");
    let out = run(&[
        "validate",
        "bundles/valid/full.json",
        "bundles/valid/minimal.json",
        demo.to_str().unwrap(),
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ok: bundles/valid/full.json: full v7, 6 rules");
    assert_eq!(
        lines[1],
        "ok: bundles/valid/minimal.json: minimal v0, 0 rules"
    );
    assert!(
        lines[2].starts_with("ok: ") && lines[2].contains(": demo v"),
        "{text}"
    );
}

#[test]
fn validate_reports_every_issue_with_its_path() {
    let out = run(&[
        "validate",
        "bundles/valid/minimal.json",
        "bundles/semantic-issues.json",
        "bundles/invalid/two-operators.json",
    ]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "ok: bundles/valid/minimal.json: minimal v0, 0 rules",
            "bundles/semantic-issues.json:2:11: $.name: must not be empty",
            "bundles/semantic-issues.json:10:11: $.rules[0].when.methods[0]: must be an upper-case HTTP method",
            "bundles/semantic-issues.json:15:13: $.rules[1].id: duplicate rule id",
        ]
    );
    assert!(
        lines[4].starts_with(
            "bundles/invalid/two-operators.json:10:11: $.rules[0].when.claims[0]: \
             one operator per condition, found `equals` and `one_of`"
        ),
        "{text}"
    );
    assert_eq!(lines.len(), 5, "{text}");
}

#[test]
fn validate_json_report() {
    let out = run(&[
        "validate",
        "--json",
        "bundles/valid/minimal.json",
        "bundles/invalid/bad-effect.json",
    ]);
    assert_eq!(code(&out), 1);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["files"][0]["status"], "valid");
    assert_eq!(report["files"][0]["name"], "minimal");
    assert_eq!(report["files"][1]["status"], "invalid");
    assert_eq!(report["files"][1]["issues"][0]["path"], "$.rules[0].effect");
}

#[test]
fn validate_io_and_usage_errors_exit_2() {
    let out = run(&["validate", "bundles/valid/minimal.json", "missing.json"]);
    assert_eq!(code(&out), 2);
    assert!(
        stdout(&out).contains("missing.json: error: cannot read"),
        "{}",
        stdout(&out)
    );
    let out = run(&["validate"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("required arguments were not provided:\n  <BUNDLE.json>..."),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("Usage: mcp-guard validate"));
}

#[test]
fn explain_allow_names_the_rule() {
    let out = explain(
        &["--claims", "explain/claims-user.json"],
        "explain/req-chat.json",
        &[],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().next(), Some("ALLOW by rule model-users-chat"));
    assert!(
        text.contains("✓ model-users-chat (allow)  <- decides"),
        "{text}"
    );
    assert!(
        text.contains("    ✓ model in [\"gpt-4o*\"]  (actual: gpt-4o-mini)"),
        "{text}"
    );
    assert!(text.contains("host=llm.example.com"), "{text}");
    assert!(!text.contains("WARNING"), "{text}");
}

#[test]
fn explain_deny_shows_the_failing_condition() {
    let out = explain(
        &["--claims", "explain/claims-viewer.json"],
        "explain/req-chat.json",
        &[],
    );
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    assert_eq!(text.lines().next(), Some("DENY (default_deny)"));
    let rule = text
        .split("✗ model-users-chat (allow)\n")
        .nth(1)
        .expect("rule listed");
    assert!(
        rule.contains("    ✓ method in [\"POST\"]  (actual: POST)\n"),
        "{text}"
    );
    assert!(
        rule.contains(
            "    ✗ claim roles {\"contains_any\":[\"model-user\"]}  (actual: [\"viewer\"])\n"
        ),
        "{text}"
    );
    // Deny rules come first.
    assert!(text.find("deny-suspended") < text.find("model-users-chat"));
}

#[test]
fn explain_time_windows_use_the_request_time() {
    let out = explain(
        &["--claims", "explain/claims-user.json"],
        "explain/req-report-saturday.json",
        &[],
    );
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    assert!(text.contains("at 2026-11-21T12:00:00Z"), "{text}");
    let rule = text.split("✗ weekday-reports (allow)\n").nth(1).unwrap();
    assert!(rule.contains("    ✓ method in [\"GET\"]"), "{text}");
    assert!(rule.contains("    ✗ time "), "{text}");
}

#[test]
fn explain_batch_explains_every_call() {
    let out = explain(
        &["--claims", "explain/claims-user.json"],
        "explain/req-batch.json",
        &[],
    );
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    assert_eq!(
        text.lines().next(),
        Some("DENY by rule deny-delete-tools  (combined decision of 2 MCP calls)")
    );
    assert!(
        text.contains("call 1/2: tools/call search (id 1) -> ALLOW by rule mcp-tools"),
        "{text}"
    );
    assert!(
        text.contains("call 2/2: tools/call delete_repo (id 2) -> DENY by rule deny-delete-tools"),
        "{text}"
    );
    assert!(
        text.contains("      ✓ mcp tool in [\"delete_*\"]  (actual: delete_repo)"),
        "{text}"
    );
}

#[test]
fn explain_json_report() {
    let out = explain(
        &["--claims", "explain/claims-user.json"],
        "explain/req-batch.json",
        &["--json"],
    );
    assert_eq!(code(&out), 3);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["decision"]["effect"], "deny");
    assert_eq!(report["decision"]["rule_id"], "deny-delete-tools");
    assert_eq!(report["request"]["batch"], true);
    assert_eq!(report["request"]["now_unix"], 1_767_607_200u64);
    let calls = report["explanations"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["call"]["target"], "search");
    assert_eq!(calls[0]["decision"]["effect"], "allow");
    let first_rule = &calls[1]["rules"][1];
    assert_eq!(first_rule["id"], "deny-delete-tools");
    assert_eq!(first_rule["matched"], true);
    assert_eq!(first_rule["conditions"][0]["held"], true);
    assert_eq!(first_rule["conditions"][0]["actual"], "delete_repo");
}

#[test]
fn explain_with_a_token_warns_that_it_is_unverified() {
    let t = token(&json!({"sub": "carol", "roles": ["model-user"]}));
    let out = explain(&["--token", &t], "explain/req-chat.json", &[]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().next(), Some("ALLOW by rule model-users-chat"));
    assert!(
        text.contains("WARNING:  claims decoded without signature verification"),
        "{text}"
    );
    assert!(
        text.contains("caller:   carol (token unverified)"),
        "{text}"
    );
    assert!(!text.contains(&t), "the token must never be printed");

    let out = explain(&["--token", &t], "explain/req-chat.json", &["--json"]);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["identity"]["source"], "token_unverified");
    assert_eq!(report["identity"]["verified"], false);
    assert!(report["identity"]["warning"]
        .as_str()
        .unwrap()
        .starts_with("claims decoded without signature verification"));
    assert!(!stdout(&out).contains(&t));
}

#[test]
fn explain_with_a_token_file() {
    let dir = std::env::temp_dir().join(format!("mcp-guard-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("token.txt");
    let t = token(&json!({"sub": "dave", "suspended": true, "roles": ["model-user"]}));
    std::fs::write(&file, format!("Bearer {t}\n")).unwrap();
    let out = explain(
        &["--token-file", file.to_str().unwrap()],
        "explain/req-chat.json",
        &[],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    assert_eq!(text.lines().next(), Some("DENY by rule deny-suspended"));
    assert!(text.contains("claims decoded without signature verification"));
}

#[test]
fn explain_decides_bad_bodies_like_the_filter() {
    let out = explain(
        &["--claims", "explain/claims-user.json"],
        "explain/req-bad-batch.json",
        &[],
    );
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    assert_eq!(text.lines().next(), Some("DENY (invalid_body: bad_batch)"));
    assert!(text.contains("malformed JSON-RPC batch"), "{text}");
}

#[test]
fn explain_refuses_ambiguous_bodies_like_the_filter() {
    let out = explain(
        &["--claims", "explain/claims-user.json"],
        "explain/req-dup-name.json",
        &["--json"],
    );
    assert_eq!(code(&out), 3);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["decision"]["reason"], "invalid_body");
    assert_eq!(report["decision"]["detail"], "duplicate_key");
    let notes = report["notes"].to_string();
    assert!(notes.contains("duplicate_key"), "{notes}");
}

#[test]
fn explain_bad_inputs_exit_2_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "explain",
                "--bundle",
                "explain/bundle.json",
                "--claims",
                "explain/claims-user.json",
            ],
            "required arguments were not provided:\n  --request <REQUEST.json>",
        ),
        (
            &[
                "explain",
                "--bundle",
                "explain/bundle.json",
                "--claims",
                "explain/claims-user.json",
                "--request",
                "explain/req-typo.json",
            ],
            "unknown field `header`",
        ),
        (
            &[
                "explain",
                "--bundle",
                "explain/bundle.json",
                "--claims",
                "explain/claims-user.json",
                "--request",
                "explain/req-bad-time.json",
            ],
            "`yesterday` is not an RFC 3339 time",
        ),
        (
            &[
                "explain",
                "--bundle",
                "bundles/semantic-issues.json",
                "--claims",
                "explain/claims-user.json",
                "--request",
                "explain/req-chat.json",
            ],
            "$.rules[1].id: duplicate rule id",
        ),
        (
            &[
                "explain",
                "--bundle",
                "nope.json",
                "--claims",
                "explain/claims-user.json",
                "--request",
                "explain/req-chat.json",
            ],
            "cannot read bundle `nope.json`",
        ),
        (
            &[
                "explain",
                "--bundle",
                "explain/bundle.json",
                "--claims",
                "bundles/invalid/not-an-object.json",
                "--request",
                "explain/req-chat.json",
            ],
            "claims `bundles/invalid/not-an-object.json`: must be a JSON object",
        ),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (
            &["get", "--server", "https://127.0.0.1:9", "../status"],
            "invalid value '../status' for '<NAME>': / is not allowed in a bundle name",
        ),
        (&["explain", "--verbose"], "unexpected argument '--verbose'"),
        (
            &["test", "t.json", "-o", "yaml"],
            "invalid value 'yaml' for '--output <OUTPUT>'",
        ),
    ];
    for (args, message) in cases {
        let out = run(args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    // A malformed token is refused without being echoed.
    let out = explain(&["--token", "secret-value.x"], "explain/req-chat.json", &[]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("not a compact JWT"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("secret-value"));
}

#[test]
fn help_lists_every_command() {
    let out = run(&["--help"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    for command in ["validate", "explain", "schema"] {
        assert!(text.contains(&format!("mcp-guard {command}")), "{text}");
    }
}

#[test]
fn explain_shows_what_dry_run_would_enforce() {
    let dry = |claims: &str| {
        run(&[
            "explain",
            "--bundle",
            "explain/bundle-dry-run.json",
            "--claims",
            claims,
            "--request",
            "explain/req-chat.json",
        ])
    };
    let out = dry("explain/claims-user.json");
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    let head: Vec<&str> = text.lines().take(2).collect();
    assert_eq!(
        head,
        [
            "ALLOW by rule model-users-chat",
            "dry run:  would be DENY by rule dry-deny-chat if enforced"
        ]
    );
    assert!(text.contains("✓ dry-deny-chat (deny) [dry-run]  <- would decide (dry run)"));
    // A dry-run bundle lets a default deny through, and says so.
    let out = dry("explain/claims-viewer.json");
    assert_eq!(code(&out), 0);
    assert!(stdout(&out)
        .starts_with("ALLOW (dry_run)\ndry run:  would be DENY (default_deny) if enforced\n"));
}

#[test]
fn explain_refuses_paths_not_in_normal_form_like_the_filter() {
    let out = explain(
        &["--claims", "explain/claims-user.json"],
        "explain/req-dot-segment.json",
        &["--json"],
    );
    assert_eq!(code(&out), 3);
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["decision"]["reason"], "invalid_request");
    assert_eq!(report["decision"]["detail"], "path_dot_segment");
    let notes = report["notes"].to_string();
    assert!(notes.contains("before the rules"), "{notes}");
}

#[test]
fn explain_names_resource_server_refusals() {
    let bundle = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/mcp-resource.json");
    let explain_with = |claims: Value| {
        let token = token(&claims);
        run(&[
            "explain",
            "--bundle",
            bundle.to_str().unwrap(),
            "--token",
            &token,
            "--request",
            "explain/req-mcp-list.json",
        ])
    };
    let aud = "https://mcp.example.com/mcp";
    let out = explain_with(json!({"sub": "a", "aud": aud, "scope": "mcp:toolsx"}));
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        text.lines().next(),
        Some("DENY (insufficient_scope)"),
        "{text}"
    );
    let out = explain_with(json!({"sub": "a", "aud": "someone-else", "scope": "mcp:tools"}));
    assert_eq!(code(&out), 3);
    let text = stdout(&out);
    assert_eq!(
        text.lines().next(),
        Some("DENY (invalid_token: audience)"),
        "{text}"
    );
    let out = explain_with(json!({"sub": "a", "aud": aud, "scope": "mcp:tools"}));
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

#[test]
fn the_shipped_policy_tests_pass() {
    let file = policies_dir().join("tests/demo.tests.json");
    let out = run(&["test", file.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}{}", stderr(&out));
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("PASS: ") && last.ends_with("/10"),
        "{text}"
    );
    assert!(!text.contains("FAIL"), "{text}");
}

/// The shipped bundles are in `mcp-guard fmt`'s canonical layout, so a
/// pull request's diff shows policy changes, not reformatting.
#[test]
fn the_shipped_bundles_are_canonically_formatted() {
    let mut files: Vec<String> = std::fs::read_dir(policies_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| path.to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    let mut args = vec!["fmt", "--check"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&args);
    assert_eq!(
        code(&out),
        0,
        "not canonical (run `mcp-guard fmt -w`):\n{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn a_failing_policy_test_says_what_differed() {
    let dir = std::env::temp_dir().join(format!("mcp-guard-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bundle = policies_dir().join("demo.json");
    let cases = dir.join("cases.json");
    std::fs::write(
        &cases,
        serde_json::json!({"tests": [
            {"name": "viewer chats (wrong on purpose)",
             "claims": {"sub": "v", "roles": ["viewer"]},
             "request": {"method": "POST", "path": "/v1/chat/completions",
                         "headers": {"content-type": "application/json"},
                         "body": {"model": "demo-small", "messages": []}},
             "expect": {"decision": "allow", "status": 200,
                        "upstream_headers": {"x-mcp-subject": "v"}}},
            {"name": "passes", "claims": {"sub": "v", "roles": ["viewer"]},
             "request": {"method": "GET", "path": "/"},
             "expect": {"decision": "deny"}}
        ]})
        .to_string(),
    )
    .unwrap();
    let out = run(&[
        "test",
        cases.to_str().unwrap(),
        "--bundle",
        bundle.to_str().unwrap(),
    ]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(
        text.contains("decision: expected allow, got deny")
            && text.contains("status: expected 200, got 403")
            && text.contains("upstream header x-mcp-subject: expected \"v\", got absent")
            && text.contains("PASS: 1/2")
            && text.contains("FAIL: 1/2"),
        "{text}"
    );
    // Bad input: no bundle, unknown fields, twice the same name.
    let out = run(&["test", cases.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("no `bundle`"), "{}", stderr(&out));
    for (content, why) in [
        (
            r#"{"tests": [{"name": "a", "request": {"method": "GET", "path": "/"}, "expect": {"decison": "deny"}}]}"#,
            "unknown field `decison`",
        ),
        (
            r#"{"tests": [{"name": "a", "request": {"method": "GET", "path": "/"}, "expect": {}}, {"name": "a", "request": {"method": "GET", "path": "/"}, "expect": {}}]}"#,
            "two tests are named `a`",
        ),
    ] {
        std::fs::write(&cases, content).unwrap();
        let out = run(&[
            "test",
            cases.to_str().unwrap(),
            "--bundle",
            bundle.to_str().unwrap(),
        ]);
        assert_eq!(code(&out), 2, "{content}");
        assert!(stderr(&out).contains(why), "{}", stderr(&out));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_names_the_commit() {
    let out = run(&["--version"]);
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(
        text.starts_with(concat!("mcp-guard ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    // Built from this git checkout: `git describe` follows in brackets.
    if PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../.git")
        .exists()
    {
        assert!(
            text.contains(" (") && text.trim_end().ends_with(')'),
            "{text}"
        );
    }
}

/// Every command answers `--help` with its usage, and the completion
/// scripts name every command (so a new command cannot ship without both).
#[test]
fn every_command_has_help_and_completions() {
    let commands = [
        "validate",
        "explain",
        "schema",
        "test",
        "diff",
        "fmt",
        "build",
        "sign",
        "push",
        "get",
        "history",
        "status",
        "rollback",
        "pins",
        "audit",
        "keygen",
        "hash-token",
        "completions",
    ];
    for command in commands {
        let out = run(&[command, "--help"]);
        assert_eq!(code(&out), 0, "{command}: {}", stderr(&out));
        assert!(
            stdout(&out).contains(&format!("Usage: mcp-guard {command}")),
            "{command}: {}",
            stdout(&out)
        );
    }
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert_eq!(code(&out), 0, "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        for command in commands {
            assert!(
                script.contains(command),
                "{shell} completions miss {command}"
            );
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(code(&out), 2, "unknown shell is a usage error");
    assert!(stderr(&out).contains("tcsh"), "{}", stderr(&out));
    let out = run(&["--version"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).starts_with("mcp-guard 0."), "{}", stdout(&out));
}
