//! `mcp-guard audit verify` and `audit query` as a user runs them: a
//! generated access log, checkpoints countersigned by a real control
//! service on loopback, the exit codes and the `file:line` findings.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use mcp_guard_control::{BundleStore, CheckpointBook, CheckpointLimits, Options};
use mcp_guard_engine::audit::{Checkpoint, DecisionChain};
use mcp_guard_engine::signing::{self, SigningKey};
use serde_json::Value;

fn mcp_guard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        // The services in these tests listen on plain http (loopback).
        .env("MCP_GUARD_ALLOW_PLAIN_HTTP", "1")
        .args(args)
        .output()
        .expect("binary runs")
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The service, with a handle on its checkpoint book.
fn start(book: Arc<CheckpointBook>) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let options = Options {
        jwks_refresh: None,
        checkpoints: Some(book),
        ..Options::default()
    };
    runtime.spawn(mcp_guard_control::serve_with(
        listener,
        Arc::new(BundleStore::new()),
        options,
        std::future::pending(),
    ));
    (format!("http://{addr}"), runtime)
}

/// 12 records over two chains, Envoy JSON lines for one, plain for the
/// other, `-` between; returns the lines and both heads.
fn log() -> (Vec<String>, Vec<Checkpoint>) {
    let mut a = DecisionChain::new("envoy-1/w0/aa11");
    let mut b = DecisionChain::new("envoy-1/w1/aa11");
    let mut lines = Vec::new();
    for i in 0..12u64 {
        let decision = if i % 3 == 0 { "deny" } else { "allow" };
        let open = format!(
            "{{\"decision\":\"{decision}\",\"reason\":\"r\",\"rule\":null,\"sub\":\"user-{}\",\"peer\":\"p\",\"policy\":\"demo\",\"version\":1,\"model\":\"m\",\"mcp_method\":\"tools/call\",\"mcp_target\":\"tool_{}\",\"status\":200,\"ts\":{}",
            i % 2,
            i % 4,
            1_767_225_600_000 + i * 60_000
        );
        if i % 2 == 0 {
            lines.push(format!("{{\"code\":200,\"mcp\":{}}}", a.seal(&open)));
        } else {
            lines.push(b.seal(&open));
            lines.push("-".into());
        }
    }
    let heads = [a, b]
        .iter()
        .map(|c| Checkpoint::from_head(c.head()).expect("head"))
        .collect();
    (lines, heads)
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").expect("write log");
}

#[test]
fn verify_and_query() {
    let key = SigningKey::from_bytes(&[5u8; 32]);
    let key_b64 = signing::public_key_base64(&key.verifying_key());
    let book = Arc::new(CheckpointBook::in_memory(
        key.clone(),
        CheckpointLimits::default(),
    ));
    let (server, _runtime) = start(Arc::clone(&book));
    let dir = std::env::temp_dir().join(format!("mcp-guard-cli-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (lines, heads) = log();
    let log_path = dir.join("access.log");
    write(&log_path, &lines);
    let log_file = log_path.to_string_lossy().into_owned();
    for head in &heads {
        book.submit(head, 1_767_226_400_000).expect("countersigned");
    }

    // Clean, checkpoints fetched: the key is trust on first use.
    let o = mcp_guard(&["audit", "verify", &log_file, "--server", &server]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("trust on first use"), "{}", out(&o));
    assert!(out(&o).contains("OK: 2 chain(s), 2 trusted checkpoint(s), 0 finding(s)"));
    assert!(out(&o).contains("chain envoy-1/w0/aa11: seq 1..=6, 6 records, checkpoint at seq 6"));

    // Pinned key, checkpoints from a saved file.
    let saved = dir.join("checkpoints.json");
    let listed: Vec<String> = book
        .list(None)
        .iter()
        .map(|c| serde_json::to_string(c).expect("json"))
        .collect();
    write(&saved, &listed);
    let saved = saved.to_string_lossy().into_owned();
    let o = mcp_guard(&[
        "audit",
        "verify",
        &log_file,
        "--checkpoints",
        &saved,
        "--key",
        &key_b64,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(!out(&o).contains("trust on first use"));

    // A wrong pinned key: the checkpoints do not verify.
    let other = signing::public_key_base64(&SigningKey::from_bytes(&[6u8; 32]).verifying_key());
    let o = mcp_guard(&[
        "audit", "verify", &log_file, "--server", &server, "--key", &other,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("bad checkpoint"), "{}", out(&o));

    // One byte edited on line 4 (chain a, seq 2): found with file and line.
    let mut edited = lines.clone();
    assert!(edited[3].contains("user-0"));
    edited[3] = edited[3].replacen("user-0", "user-9", 1);
    write(&log_path, &edited);
    let o = mcp_guard(&[
        "audit", "verify", &log_file, "--server", &server, "--key", &key_b64,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains(&format!(
            "{log_file}:4: edited: chain envoy-1/w0/aa11 seq 2"
        )),
        "{}",
        out(&o)
    );

    // The last line dropped: truncated before the checkpoint.
    write(&log_path, &lines[..lines.len() - 2]);
    let o = mcp_guard(&["audit", "verify", &log_file, "--server", &server, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let report: Value = serde_json::from_slice(&o.stdout).expect("json report");
    assert_eq!(report["ok"], false);
    assert_eq!(report["findings"][0]["kind"], "truncated");
    assert_eq!(report["findings"][0]["chain"], "envoy-1/w1/aa11");

    // A conflicting post for a chain in the logs is reported.
    write(&log_path, &lines);
    let mut forged = heads[0].clone();
    forged.hash = "0".repeat(64);
    assert!(book.submit(&forged, 1).is_err());
    let o = mcp_guard(&["audit", "verify", &log_file, "--server", &server]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("checkpoint conflict: chain envoy-1/w0/aa11 seq 6"));

    // The oldest lines rotated away: a finding unless --rotated.
    write(&log_path, &lines[6..]);
    let o = mcp_guard(&["audit", "verify", &log_file]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("dropped"), "{}", out(&o));
    let o = mcp_guard(&["audit", "verify", &log_file, "--rotated"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("its own hash unprovable"), "{}", out(&o));
    write(&log_path, &lines);

    // Bad input: exit 2.
    for bad in [
        vec!["audit", "verify", &log_file, "--checkpoints", &saved],
        vec!["audit", "verify", "/nonexistent/access.log"],
        vec![
            "audit",
            "verify",
            &log_file,
            "--checkpoints",
            &log_file,
            "--key",
            &key_b64,
        ],
        vec![
            "audit",
            "verify",
            &log_file,
            "--server",
            &server,
            "--key",
            "not-a-key",
        ],
        vec!["audit", "query", &log_file, "--since", "last tuesday"],
    ] {
        let o = mcp_guard(&bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}: {}", out(&o));
    }

    // Query.
    let o = mcp_guard(&["audit", "query", &log_file, "--decision", "deny", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let records: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r["decision"] == "deny"));
    let o = mcp_guard(&[
        "audit",
        "query",
        &log_file,
        "--sub",
        "user-1",
        "--tool",
        "tool_1",
        "--since",
        "2026-01-01T00:01:00Z",
        "--until",
        "2026-01-01T00:06:00Z",
    ]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    // i = 1 and 5 have sub user-1 and tool_1; ts minute 1 and 5.
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.starts_with("2026-01-01T00:01:00.000Z allow sub=user-1 tool=tool_1"));
    let _ = std::fs::remove_dir_all(&dir);
}
