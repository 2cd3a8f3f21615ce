//! The replay format, through the library and through the binary.

use std::io::Write;
use std::process::{Command, Stdio};

use mcp_guard_host_test::replay::{self, ReplayOptions, ReplaySummary};
use serde_json::{json, Value};

use super::guest::{host, wat};

/// Denies requests carrying `x-deny` with a 403 and records a decision;
/// counts requests; uppercases nothing; reads the JWT subject into filter
/// state.
const GUARD: &str = r#"
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_define_metric (i32.const 0) @requests (i32.const 40)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $proxy_increment_metric (i32.load (i32.const 40)) (i64.const 1)))
    (if (i32.eqz (call $proxy_get_property @sub_path (i32.const 0) (i32.const 4)))
      (then (drop (call $proxy_set_property @subject (i32.load (i32.const 0)) (i32.load (i32.const 4))))))
    (if (result i32) (i32.eqz (call $proxy_get_header_map_value (i32.const 0) @deny (i32.const 0) (i32.const 4)))
      (then
        (drop (call $proxy_log (i32.const 3) @denied))
        (drop (call $proxy_send_local_response (i32.const 403) @details @denied (i32.const 0) (i32.const 0) (i32.const -1)))
        (i32.const 1))
      (else (i32.const 0))))
"#;

fn guard_strings() -> Vec<(&'static str, &'static [u8])> {
    vec![
        (
            "sub_path",
            b"metadata\0filter_metadata\0envoy.filters.http.jwt_authn\0jwt_payload\0sub",
        ),
        ("subject", b"subject"),
        ("deny", b"x-deny"),
        ("denied", b"denied"),
        ("details", b"mcp_guard_denied"),
    ]
}

const INPUT: &str = r#"{"id": "a", "jwt_payload": {"sub": "alice"}, "request": {"method": "POST", "path": "/mcp", "headers": {"content-type": "application/json"}, "chunks": ["{\"a\":", "1}"]}, "response": {"status": 201, "headers": {"x-up": "1"}, "body": "done"}}
{"id": "b", "request": {"method": "GET", "path": "/", "headers": {"x-deny": "1"}}}

this is not json
{"id": "c", "request": {"method": "GET", "path": "/"}, "surprise": 1}
{"id": 4, "request": {"method": "GET", "path": "/"}}
"#;

fn run_lines(input: &str) -> (ReplaySummary, Vec<Value>) {
    let plugin = host(&guard_strings(), GUARD).plugin(b"").unwrap();
    let mut out = Vec::new();
    let summary = replay::run(
        &plugin,
        &ReplayOptions::default(),
        input.as_bytes(),
        &mut out,
    )
    .unwrap();
    let lines = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (summary, lines)
}

#[test]
fn replay_runs_each_line_and_reports_bad_ones() {
    let (summary, lines) = run_lines(INPUT);
    assert_eq!(summary, ReplaySummary { ok: 3, errors: 2 });
    assert_eq!(lines.len(), 5);

    let a = &lines[0];
    assert_eq!(a["id"], "a");
    assert_eq!(a["local_reply"], Value::Null);
    assert_eq!(a["upstream_request"]["headers"][":authority"], "localhost");
    assert_eq!(a["upstream_request"]["headers"][":method"], "POST");
    assert_eq!(a["upstream_request"]["body"], "{\"a\":1}");
    assert_eq!(a["response"]["status"], 201);
    assert_eq!(a["response"]["headers"]["x-up"], "1");
    assert_eq!(a["response"]["body"], "done");
    assert_eq!(a["response"]["chunks"], json!(["done"]));
    assert_eq!(a["filter_state"], json!({"wasm.subject": "alice"}));
    assert_eq!(a["metrics"], json!({"requests": 1}));
    assert_eq!(a["stalled"], false);
    let keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    assert!(keys.contains(&"logs") && keys.contains(&"http_calls"));

    let b = &lines[1];
    assert_eq!(b["local_reply"]["status"], 403);
    assert_eq!(b["local_reply"]["body"], "denied");
    assert_eq!(b["local_reply"]["details"], "mcp_guard_denied");
    assert_eq!(b["upstream_request"], Value::Null);
    assert_eq!(b["response"]["status"], 403);
    assert_eq!(b["response"]["headers"]["content-type"], "text/plain");
    assert_eq!(b["metrics"], json!({"requests": 2}));
    assert_eq!(b["logs"], json!(["warn: denied"]));

    assert_eq!(lines[2]["line"], 4);
    assert_eq!(lines[2]["id"], Value::Null);
    assert!(lines[2]["error"]
        .as_str()
        .unwrap()
        .contains("malformed JSON"));
    assert_eq!(lines[3]["id"], "c");
    assert_eq!(lines[3]["line"], 5);
    assert!(lines[3]["error"].as_str().unwrap().contains("surprise"));

    let d = &lines[4];
    assert_eq!(d["id"], 4);
    assert_eq!(d["response"]["status"], 200);
    assert_eq!(d["response"]["body"], "");
    assert_eq!(d["metrics"], json!({"requests": 3}));
}

#[test]
fn the_replay_binary_reads_stdin_and_writes_stdout() {
    let dir = std::env::temp_dir().join(format!("mcp-guard-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = dir.join("guard.wasm");
    std::fs::write(&wasm, wat::parse_str(wat(&guard_strings(), GUARD)).unwrap()).unwrap();
    let config = dir.join("config.json");
    std::fs::write(&config, "{}").unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args([
            "--wasm",
            wasm.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(INPUT.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 5);
    assert!(stdout
        .lines()
        .next()
        .unwrap()
        .starts_with(r#"{"id":"a","local_reply":null,"upstream_request":{"#));

    let missing = Command::new(env!("CARGO_BIN_EXE_replay"))
        .args([
            "--wasm",
            "/nonexistent.wasm",
            "--config",
            config.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));

    let usage = Command::new(env!("CARGO_BIN_EXE_replay"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn replay_lines_carry_trailers_both_ways() {
    let input = r#"{"id": "t", "request": {"method": "POST", "path": "/mcp", "chunks": ["ab", "cd"], "trailers": {"x-checksum": "1"}}, "response": {"body": "ok", "trailers": {"grpc-status": ["0", "1"]}}}
{"id": "u", "request": {"method": "POST", "path": "/mcp", "trailers": {"x-deny": "1"}}}
{"id": "v", "request": {"method": "GET", "path": "/", "trailers": {":path": "/admin"}}}
"#;
    let (summary, lines) = run_lines(input);
    assert_eq!(summary, ReplaySummary { ok: 2, errors: 1 });
    let t = &lines[0];
    assert_eq!(t["upstream_request"]["body"], "abcd");
    assert_eq!(
        t["upstream_request"]["trailers"],
        json!({"x-checksum": "1"})
    );
    assert_eq!(t["response"]["body"], "ok");
    assert_eq!(
        t["response"]["trailers"],
        json!({"grpc-status": ["0", "1"]})
    );
    assert_eq!(t["stalled"], false);
    // The guard reads x-deny from the headers only: a trailer is not a header.
    let u = &lines[1];
    assert_eq!(u["local_reply"], Value::Null);
    assert_eq!(u["upstream_request"]["trailers"], json!({"x-deny": "1"}));
    assert_eq!(u["upstream_request"]["headers"].get("x-deny"), None);
    assert!(u["response"].get("trailers").is_none(), "absent when none");
    assert!(lines[2]["error"]
        .as_str()
        .unwrap()
        .contains("pseudo-headers"));
}
