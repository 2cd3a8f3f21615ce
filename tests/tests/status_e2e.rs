//! Who enforces what, with real Envoy: the filter's fetcher identifies
//! itself on every poll, `/v1/status` shows it synced under its instance id, then `rejected`
//! (`untrusted_key`) when the service signs with a key the filter does not
//! trust while v1 is still enforced, and `mcp-guard push --wait-rollout`
//! (the real CLI binary) fails naming the rejection, then succeeds for a
//! good version.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use mcp_guard_e2e::http::send;
use mcp_guard_e2e::{paths, target, tokens, Stack, StackOptions, Target, DEMO_BUNDLE, PUSH_TOKEN};
use serde_json::Value;

const CHAT: &str = r#"{"model":"demo-llm","messages":[{"role":"user","content":"hi"}]}"#;

fn chat(stack: &Stack, token: &str) -> u16 {
    send(
        "POST",
        &stack.url("/v1/chat/completions"),
        Some(token),
        &[],
        Some(CHAT),
    )
    .expect("request completes")
    .status
}

/// The demo bundle with its role renamed (decides alice differently).
fn demo_with(note: &str, role: &str) -> String {
    let mut bundle: Value = serde_json::from_str(DEMO_BUNDLE).expect("demo bundle");
    bundle["description"] = Value::String(note.into());
    bundle
        .to_string()
        .replace("\"model-user\"", &format!("\"{role}\""))
}

fn table(stack: &Stack) -> Value {
    stack
        .control_get("/v1/status")
        .expect("status table")
        .json()
}

/// Waits until the table's row of `instance` satisfies `ok`; the row.
fn wait_row(stack: &Stack, instance: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let table = table(stack);
        let row = table["instances"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["instance"] == instance))
            .cloned();
        if let Some(row) = row.filter(|r| ok(r)) {
            return row;
        }
        assert!(
            Instant::now() < deadline,
            "no row of {instance} {what}; table: {table}\nEnvoy log:\n{}",
            stack.envoy.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `mcp-guard push --wait-rollout` as a real process.
fn push_and_wait(stack: &Stack, dir: &Path, bundle: &str, note: &str) -> (Output, Duration) {
    let file = dir.join(format!("{note}.json"));
    std::fs::write(&file, bundle).expect("write bundle");
    let token = dir.join("push-token");
    std::fs::write(&token, PUSH_TOKEN).expect("write token");
    let cli = paths::cli_path();
    assert!(
        cli.exists(),
        "{} missing: cargo build -p mcp-guard-cli (or set MCP_GUARD_CLI)",
        cli.display()
    );
    let started = Instant::now();
    let output = Command::new(cli)
        // The stack's control service listens on plain http (loopback).
        .env("MCP_GUARD_ALLOW_PLAIN_HTTP", "1")
        .args(["push", "--server"])
        .arg(format!("http://127.0.0.1:{}", stack.control_port))
        .arg("--token-file")
        .arg(&token)
        .args(["--wait-rollout", "--rollout-timeout", "20"])
        .arg(&file)
        .output()
        .expect("cli runs");
    (output, started.elapsed())
}

#[test]
fn the_status_table_shows_who_enforces_what() {
    for target in target::available() {
        eprintln!(
            "the_status_table_shows_who_enforces_what: {}",
            target.name()
        );
        the_status_table_shows_who_enforces_what_on(&target);
    }
}

fn the_status_table_shows_who_enforces_what_on(target: &Target) {
    let mut stack = Stack::start(StackOptions {
        target: target.clone(),
        concurrency: 2,
        ..StackOptions::default()
    })
    .expect("stack starts");
    // The instance id: the native module's is `envoy-<pid>`; the wasm
    // filter's is Envoy's node id (`node.id` in the template).
    let instance = match target {
        Target::Native(_) => format!("envoy-{}", stack.envoy.pid()),
        Target::Wasm(_) => "mcp-guard-demo".to_owned(),
    };
    let alice = tokens::alice().expect("token");
    let llm_user =
        tokens::mint(serde_json::json!({"sub": "lou", "roles": ["llm-user"]})).expect("token");

    // v1 synced, under the node id, seen on every poll.
    let row = wait_row(&stack, &instance, "synced at v1", |r| {
        r["state"] == "synced"
    });
    assert_eq!(
        (&row["bundle"], &row["active"], &row["latest"]),
        (&"demo".into(), &1.into(), &1.into())
    );
    assert_eq!(row["last_error"], Value::Null, "{row}");
    if matches!(target, Target::Wasm(_)) {
        // Istio's pod name, from the node metadata.
        assert_eq!(row["pod"], "mcp-guard-demo-pod", "{row}");
    }
    assert!(row["age_secs"].as_u64().is_some_and(|a| a < 60), "{row}");
    let rows = table(&stack)["instances"].as_array().map(Vec::len);
    assert_eq!(rows, Some(1), "one fetcher per Envoy, not one per worker");

    // The service now signs with a key the filter does not trust. The
    // proxy comes back to the restarted service (its table starts empty).
    let trusted = stack.control_key().expect("control key");
    stack
        .restart_control_with_key(mcp_guard_control::keys::generate())
        .expect("restart with a rogue key");
    wait_row(&stack, &instance, "back after the restart", |r| {
        r["active"] == 1
    });

    // v2 is refused: the CLI says who refused it and why, exit 4.
    let dir = stack.work_dir.join("cli");
    std::fs::create_dir_all(&dir).expect("cli dir");
    let (refused, took) = push_and_wait(&stack, &dir, &demo_with("v2", "llm-user"), "v2");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let stdout = String::from_utf8_lossy(&refused.stdout);
    assert_eq!(
        refused.status.code(),
        Some(4),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stderr.contains(&format!("{instance} (untrusted_key)")) && stderr.contains("v2"),
        "{stderr}"
    );
    assert!(
        stdout.contains("\"version\":2"),
        "the push itself is printed: {stdout}"
    );
    eprintln!("wait-rollout reported the rejection after {took:?}");
    let row = wait_row(&stack, &instance, "rejected", |r| r["state"] == "rejected");
    assert_eq!(
        row["rejected"],
        serde_json::json!({"version": 2, "reason": "untrusted_key"}),
        "{row}"
    );
    assert_eq!((&row["active"], &row["latest"]), (&1.into(), &2.into()));
    assert_eq!(row["last_error"], "untrusted_key");
    // v1 is still what decides requests.
    assert_eq!(chat(&stack, &alice), 200);
    assert_eq!(chat(&stack, &llm_user), 403);

    // Back to the trusted key: a good v3 rolls out and the CLI says so.
    stack
        .restart_control_with_key(trusted)
        .expect("restart with the trusted key");
    wait_row(&stack, &instance, "back with the trusted key", |r| {
        r["state"] != "stale"
    });
    let (rolled, took) = push_and_wait(&stack, &dir, &demo_with("v3", "llm-user"), "v3");
    let stdout = String::from_utf8_lossy(&rolled.stdout);
    assert_eq!(
        rolled.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&rolled.stderr)
    );
    assert!(stdout.contains("rolled out demo v3"), "{stdout}");
    eprintln!("wait-rollout confirmed v3 after {took:?}");
    let row = wait_row(&stack, &instance, "synced at v3", |r| {
        r["state"] == "synced"
    });
    assert_eq!(
        (&row["active"], &row["rejected"], &row["last_error"]),
        (&3.into(), &Value::Null, &Value::Null),
        "a good fetch clears the error"
    );
    // The table as the CLI prints it.
    let listed = Command::new(paths::cli_path())
        // The stack's control service listens on plain http (loopback).
        .env("MCP_GUARD_ALLOW_PLAIN_HTTP", "1")
        .args(["status", "--server"])
        .arg(format!("http://127.0.0.1:{}", stack.control_port))
        .output()
        .expect("cli runs");
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(&instance))
        .unwrap_or_else(|| panic!("{instance} not listed:\n{text}"));
    assert!(
        line.starts_with("demo") && line.contains(" synced "),
        "{text}"
    );
    eprintln!("{text}");
    assert_eq!(chat(&stack, &alice), 403);
    assert_eq!(chat(&stack, &llm_user), 200);
}
