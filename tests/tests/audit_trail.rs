//! The decision trail on a real Envoy access log: every record the filter
//! seals verifies with `mcp-guard audit verify`, its chain heads are
//! countersigned by the control service, and every single-byte edit of a
//! record, every dropped line, every swap of two records of a chain and a
//! chain re-sealed from scratch are detected. The flat `json_format` keys
//! are checked on the same run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::indexing_slicing)]

use std::process::Command;
use std::time::{Duration, Instant};

use mcp_guard_e2e::http::send;
use mcp_guard_e2e::{paths, target, tokens, Stack, StackOptions, Target};
use mcp_guard_engine::audit::chain::sanitize_chain_id;
use mcp_guard_engine::audit::checkpoint::parse_list;
use mcp_guard_engine::audit::{verify_with, Countersigned, DecisionChain, LogFile, Report};
use mcp_guard_engine::signing;
use serde_json::Value;

const CHAT: &str =
    r#"{"model":"demo-llm","messages":[{"role":"user","content":"Who can I call?"}]}"#;

#[test]
fn decision_trail_on_a_real_envoy_log() {
    for target in target::available() {
        eprintln!("decision_trail_on_a_real_envoy_log: {}", target.name());
        trail_on(&target);
    }
}

fn trail_on(target: &Target) {
    let mut control_extra = serde_json::Map::new();
    control_extra.insert("checkpoint_interval_ms".into(), 100.into());
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        control_extra,
        ..StackOptions::default()
    })
    .expect("stack starts");
    let alice = tokens::alice().unwrap();
    let mallory = tokens::mallory().unwrap();
    let mut sent = 0;
    for i in 0..4 {
        let chat = |token: Option<&str>| {
            send(
                "POST",
                &stack.url(&format!("/v1/chat/completions?i={i}&session=secret")),
                token,
                &[],
                Some(CHAT),
            )
            .unwrap()
        };
        assert_eq!(chat(Some(&alice)).status, 200);
        assert_eq!(chat(Some(&mallory)).status, 403);
        assert_eq!(chat(None).status, 401);
        sent += 3;
    }

    let log = wait_for_records(&stack, sent);
    let lines: Vec<&str> = log.lines().collect();
    let records: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["mcp"].clone())
        .collect();
    records_are_complete_and_tell_who_did_what(&records);
    if matches!(target, Target::Wasm(_)) {
        // Chains are named after Envoy's node id, one per worker VM.
        assert!(records.iter().all(|r| r["chain"]
            .as_str()
            .is_some_and(|c| c.starts_with("mcp-guard-demo/"))));
    }
    flat_keys_match_the_records(&stack, &records);

    let (checkpoints, key) = wait_for_checkpoints(&stack, &records);
    let keys = [key];
    let files = |text: &str| {
        vec![LogFile {
            name: "access.log".into(),
            bytes: text.as_bytes().to_vec(),
        }]
    };
    let clean = verify_with(&files(&log), &checkpoints, &keys);
    assert!(clean.ok(), "the real log verifies: {:?}", clean.findings);
    assert!(clean.trusted_checkpoints > 0);
    for chain in &clean.chains {
        assert_eq!(chain.first_seq, 1, "{chain:?}");
        assert_eq!(
            chain.unprovable_tail, 0,
            "every record is countersigned: {chain:?}"
        );
    }
    cli_agrees(&stack, &log);

    // Every single-byte edit of every record.
    let mut edits = 0;
    for (n, line) in lines.iter().enumerate() {
        let start = line.find("\"mcp\":{").unwrap() + "\"mcp\":".len();
        let end = start + record_len(&line[start..]);
        for at in start..end {
            let mut edited: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            let mut bytes = edited[n].clone().into_bytes();
            bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
            edited[n] = String::from_utf8_lossy(&bytes).into_owned();
            let report = verify_with(&files(&(edited.join("\n") + "\n")), &checkpoints, &keys);
            assert!(
                names_line(&report, n + 1),
                "edit at byte {at} of line {} not reported: {:?}",
                n + 1,
                report.findings
            );
            edits += 1;
        }
    }
    eprintln!("  {edits} single-byte edits detected");

    // Every dropped line, and every swap of two records of one chain.
    for n in 0..lines.len() {
        let mut dropped: Vec<&str> = lines.clone();
        dropped.remove(n);
        let report = verify_with(&files(&(dropped.join("\n") + "\n")), &checkpoints, &keys);
        assert!(!report.ok(), "dropping line {} went unnoticed", n + 1);
    }
    let mut swaps = 0;
    for a in 0..lines.len() {
        let Some(b) = (a + 1..lines.len()).find(|&b| records[b]["chain"] == records[a]["chain"])
        else {
            continue;
        };
        let mut swapped = lines.clone();
        swapped.swap(a, b);
        let report = verify_with(&files(&(swapped.join("\n") + "\n")), &checkpoints, &keys);
        assert!(
            !report.ok(),
            "swapping lines {} and {} went unnoticed",
            a + 1,
            b + 1
        );
        swaps += 1;
    }
    assert!(swaps > 0);

    // An attacker who knows the algorithm turns a denial into an allow and
    // re-seals the whole chain: the chain alone verifies, the checkpoint
    // does not.
    let resealed = reseal_with_edit(&lines, &records);
    let chain_only = verify_with(&files(&resealed), &[], &[]);
    assert!(
        chain_only.ok(),
        "a re-sealed chain is consistent on its own"
    );
    let anchored = verify_with(&files(&resealed), &checkpoints, &keys);
    assert!(
        !anchored.ok(),
        "the countersigned checkpoint exposes the re-sealed chain"
    );
}

/// The length of the JSON object at the start of `text`.
fn record_len(text: &str) -> usize {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    stream.next().unwrap().unwrap();
    stream.byte_offset()
}

fn names_line(report: &Report, line: usize) -> bool {
    !report.ok()
        && report
            .findings
            .iter()
            .any(|f| f.line.is_some_and(|l| l == line || l == line + 1) || f.line.is_none())
}

fn wait_for_records(stack: &Stack, count: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&stack.envoy.access_log).unwrap_or_default();
        if text.lines().count() >= count || Instant::now() > deadline {
            assert_eq!(text.lines().count(), count, "one line per request:\n{text}");
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn records_are_complete_and_tell_who_did_what(records: &[Value]) {
    for r in records {
        let status = r["status"].as_u64().unwrap();
        assert!(
            r["ts"].as_u64().is_some() && r["request_id"].is_string(),
            "{r}"
        );
        assert_eq!(r["path"], "/v1/chat/completions", "no query string: {r}");
        assert!(
            !r.to_string().contains("secret"),
            "no query string in a record: {r}"
        );
        assert_eq!(r["policy"], "demo");
        match status {
            200 => {
                assert_eq!(
                    (&r["decision"], &r["sub"]),
                    (&"allow".into(), &"alice".into())
                );
                assert_eq!(r["rule"], "model-users-chat");
                assert_eq!(r["model"], "demo-llm");
                assert!(r["redactions"]["email"].as_u64() >= Some(1), "{r}");
            }
            403 => {
                assert_eq!(
                    (&r["decision"], &r["sub"]),
                    (&"deny".into(), &"mallory".into())
                );
                assert_eq!(r["reason"], "default_deny");
                assert!(r["rule"].is_null(), "default deny names no rule: {r}");
                assert_eq!(r["details"], "mcp_default_deny");
            }
            401 => {
                assert_eq!(r["reason"], "missing_token");
                assert!(r["rule"].is_null(), "a 401 names no rule: {r}");
                assert!(r.get("sub").is_none());
            }
            other => panic!("unexpected status {other}: {r}"),
        }
    }
}

fn flat_keys_match_the_records(stack: &Stack, records: &[Value]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let flat = loop {
        let flat = stack.envoy.flat_log_lines();
        if flat.len() >= records.len() || Instant::now() > deadline {
            break flat;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    for r in records {
        let line = flat
            .iter()
            .find(|l| l["request_id"] == r["request_id"])
            .unwrap_or_else(|| panic!("no flat line for {r}"));
        let m = &line["mcp"];
        assert_eq!(m["outcome"], r["decision"], "{line}");
        assert_eq!(m["seq"], r["seq"].to_string().as_str(), "{line}");
        let rule = r["rule"].as_str().unwrap_or("-");
        assert_eq!(m["rule"], rule, "{line}");
        assert_eq!(m["sub"], r["sub"].as_str().unwrap_or("-"), "{line}");
    }
}

/// Waits until the control service countersigned the head of every chain
/// in the log; returns the checkpoints and the service's key.
fn wait_for_checkpoints(
    stack: &Stack,
    records: &[Value],
) -> (Vec<Countersigned>, signing::VerifyingKey) {
    let key_answer: Value =
        serde_json::from_str(&stack.control_get("/v1/checkpoints/key").unwrap().body).unwrap();
    let key = signing::verifying_key_from_text(key_answer["ed25519"].as_str().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = stack.control_get("/v1/checkpoints").unwrap().body;
        let checkpoints = parse_list(&body).unwrap();
        let covered = records.iter().all(|r| {
            let last = records
                .iter()
                .filter(|o| o["chain"] == r["chain"])
                .filter_map(|o| o["seq"].as_u64())
                .max();
            checkpoints
                .iter()
                .any(|c| Some(c.chain.as_str()) == r["chain"].as_str() && Some(c.seq) == last)
        });
        if covered {
            return (checkpoints, key);
        }
        assert!(
            Instant::now() < deadline,
            "chain heads not countersigned: {body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cli_agrees(stack: &Stack, log: &str) {
    let dir = stack.work_dir.join("audit");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("access.log");
    std::fs::write(&path, log).unwrap();
    let server = format!("http://127.0.0.1:{}", stack.control_port);
    let run = |file: &std::path::Path| {
        Command::new(paths::cli_path())
            // The stack's control service listens on plain http (loopback).
            .env("MCP_GUARD_ALLOW_PLAIN_HTTP", "1")
            .args(["audit", "verify"])
            .arg(file)
            .args(["--server", &server])
            .output()
            .expect("the CLI runs")
    };
    let ok = run(&path);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    let edited = dir.join("edited.log");
    std::fs::write(
        &edited,
        log.replacen("\"decision\":\"deny\"", "\"decision\":\"allow\"", 1),
    )
    .unwrap();
    let caught = run(&edited);
    assert_eq!(caught.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&caught.stdout).contains("edited"));
}

/// The log with the first denial of one chain turned into an allow and
/// that chain re-sealed from its genesis, as an attacker with write access
/// to the log would.
fn reseal_with_edit(lines: &[&str], records: &[Value]) -> String {
    let victim = records
        .iter()
        .position(|r| r["decision"] == "deny")
        .unwrap();
    let chain_id = records[victim]["chain"].as_str().unwrap().to_owned();
    assert_eq!(sanitize_chain_id(&chain_id), chain_id);
    let mut chain = DecisionChain::new(&chain_id);
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        if records[n]["chain"] != chain_id.as_str() {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let start = line.find("\"mcp\":{").unwrap() + "\"mcp\":".len();
        let end = start + record_len(&line[start..]);
        let record = &line[start..end];
        let open = &record[..record.find(",\"chain\":").unwrap()];
        let open = if n == victim {
            open.replacen("\"decision\":\"deny\"", "\"decision\":\"allow\"", 1)
        } else {
            open.to_owned()
        };
        out.push_str(&line[..start]);
        out.push_str(&chain.seal(&open));
        out.push_str(&line[end..]);
        out.push('\n');
    }
    out
}
