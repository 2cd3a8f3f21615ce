//! The replay CLI on the checked-in demo exchanges, against the real filter
//! module: every line's outcome is asserted.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use mcp_guard_host_test::default_wasm_path;
use serde_json::Value;

fn testdata(name: &str) -> String {
    format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn replay() -> (HashMap<String, Value>, Vec<Value>) {
    let wasm = std::env::var("MCP_GUARD_WASM")
        .unwrap_or_else(|_| default_wasm_path().display().to_string());
    let mut child = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args([
            "--wasm",
            &wasm,
            "--config",
            &testdata("demo-plugin-config.json"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("replay starts");
    let input = std::fs::read(testdata("demo-exchanges.jsonl")).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut by_id = HashMap::new();
    let mut errors = Vec::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let value: Value = serde_json::from_str(line).expect("every output line is JSON");
        if value.get("error").is_some() {
            errors.push(value);
        } else {
            by_id.insert(value["id"].as_str().unwrap().to_string(), value);
        }
    }
    (by_id, errors)
}

fn decision(result: &Value) -> Value {
    serde_json::from_str(
        result["filter_state"]["wasm.mcp_decision"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn demo_exchanges_replay_to_the_expected_outcomes() {
    let (results, errors) = replay();

    let allowed = &results["allowed-scrubbed"];
    assert!(allowed["local_reply"].is_null());
    let upstream_headers = &allowed["upstream_request"]["headers"];
    assert!(
        upstream_headers.get("accept-encoding").is_none(),
        "accept-encoding must be stripped"
    );
    let body: Value =
        serde_json::from_str(allowed["response"]["body"].as_str().unwrap()).expect("still JSON");
    assert_eq!(body["choices"][0]["message"]["content"], "Write to [EMAIL]");
    assert!(allowed["response"]["headers"]
        .get("content-length")
        .is_none());
    let d = decision(allowed);
    assert_eq!(
        (d["decision"].as_str(), d["rule"].as_str()),
        (Some("allow"), Some("model-users-chat"))
    );
    assert_eq!(d["redactions"]["email"], 1);

    let forbidden = &results["forbidden"];
    assert_eq!(forbidden["local_reply"]["status"], 403);
    assert_eq!(forbidden["local_reply"]["details"], "mcp_default_deny");
    assert!(forbidden["upstream_request"].is_null());
    let body: Value =
        serde_json::from_str(forbidden["local_reply"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["request_id"], "r-2");

    let suspended = &results["suspended"];
    assert_eq!(suspended["local_reply"]["details"], "mcp_rule_deny");
    assert_eq!(decision(suspended)["rule"], "deny-suspended");

    let anonymous = &results["no-token"];
    assert_eq!(anonymous["local_reply"]["status"], 401);
    assert_eq!(anonymous["local_reply"]["details"], "mcp_missing_token");

    let binary = &results["mcp-scope"];
    assert_eq!(decision(binary)["rule"], "mcp-read-tools");
    assert_eq!(decision(binary)["mcp_target"], "get_weather");
    assert_eq!(
        binary["response"]["body"], "raw a@example.com",
        "types the bundle lists as safe (image/*) pass untouched"
    );
    let decided: u64 = binary["metrics"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("mcp_decisions_total."))
        .filter_map(|(_, v)| v.as_u64())
        .sum();
    assert_eq!(decided, 5);

    assert_eq!(errors.len(), 2, "{errors:?}");
    assert_eq!(errors[0]["id"], "broken-line");
    assert_eq!(errors[1]["line"], 7);
    assert!(errors[1]["error"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
}
