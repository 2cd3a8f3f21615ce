//! Tool pinning through a real Envoy with two workers, on every target:
//! the demo upstream's `/mcp/rug-pull` server shows the reviewed
//! `get_weather` on its first `tools/list` and a changed description on
//! every later one. The changed tool leaves the lists (JSON and event
//! stream), and calls to it are denied on whichever worker they land,
//! because the last advertised definition is remembered process-wide.

use mcp_guard_demo_upstream::rug_pull::{RUG_PULLED_DESCRIPTION, RUG_PULL_SESSION_HEADER};
use mcp_guard_e2e::http::{send, Reply};
use mcp_guard_e2e::prometheus;
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target};
use mcp_guard_engine::pins::tool_digest;
use serde_json::{json, Value};

/// Calls sent after the rug pull, each on its own connection; with two
/// workers, a per-worker memory would let some through (and the chance
/// that all land on one worker is 2 in 2^16).
const CALLS_AFTER_PULL: u64 = 16;

fn pin(tool: Value) -> String {
    tool_digest(tool.as_object().expect("object")).to_string()
}

/// The bundle: any `/mcp/...` call allowed, and the demo's reviewed
/// `get_weather` and `search_customers` pinned (written here in another
/// member order than the server's).
fn bundle() -> String {
    let weather = json!({"name": "get_weather", "inputSchema": {"type": "object",
        "required": ["city"], "properties": {"city": {"type": "string"}}},
        "description": "Current weather for a city."});
    let search = json!({"description": "Search the customer database by name or e-mail.",
        "name": "search_customers", "inputSchema": {"properties": {"query": {"type": "string"}},
        "required": ["query"], "type": "object"}});
    json!({
        "name": "pins",
        "version": 1,
        "rules": [{"id": "mcp", "effect": "allow", "when": {"path": {"prefix": "/mcp/"}}}],
        "pii": {"enabled": false},
        "tool_pins": {"on_change": "filter", "unobserved": "allow",
            "tools": {"get_weather": pin(weather), "search_customers": pin(search)}}
    })
    .to_string()
}

#[test]
fn rug_pulled_tools_are_hidden_and_their_calls_denied() {
    for target in target::available() {
        eprintln!(
            "rug_pulled_tools_are_hidden_and_their_calls_denied: {}",
            target.name()
        );
        on(&target);
    }
}

fn post(stack: &Stack, session: &str, accept: &str, message: &Value) -> Reply {
    let token = tokens::alice().expect("token");
    send(
        "POST",
        &stack.url("/mcp/rug-pull"),
        Some(&token),
        &[(RUG_PULL_SESSION_HEADER, session), ("accept", accept)],
        Some(&message.to_string()),
    )
    .expect("request")
}

fn list(stack: &Stack, session: &str, accept: &str) -> Reply {
    post(
        stack,
        session,
        accept,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
}

fn call(stack: &Stack, session: &str, tool: &str) -> Reply {
    post(
        stack,
        session,
        "application/json",
        &json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": tool, "arguments": {"city": "Oslo", "query": "x", "customer_id": "1"}}}),
    )
}

fn names(answer: &Value) -> Vec<String> {
    answer["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect()
}

/// Connections each of the two workers accepted so far. Envoy names the
/// listener's stats after its configured address (port 0: picked at bind).
fn worker_connections(stack: &Stack) -> [u64; 2] {
    [0, 1].map(|worker| {
        let name = format!("listener.127.0.0.1_0.worker_{worker}.downstream_cx_total");
        stack.envoy.stat(&name).unwrap_or(0)
    })
}

/// Decision records of pin denials in the access log.
fn pin_denials(stack: &Stack) -> Vec<Value> {
    stack
        .envoy
        .access_log_lines()
        .into_iter()
        .filter_map(|line| line.get("mcp").cloned())
        .filter(|r: &Value| r["reason"] == "tool_pin_mismatch")
        .collect()
}

fn on(target: &Target) {
    let stack = Stack::start(StackOptions {
        bundles: vec![("pins".into(), bundle())],
        bundle_name: "pins".into(),
        concurrency: 2,
        target: target.clone(),
        ..StackOptions::default()
    })
    .expect("stack starts");
    let session = format!("e2e-{}", target.name());
    let mismatches = || stack.stat("mcp_tool_pin_mismatch_total").unwrap_or(0);

    // The reviewed list: every tool shows, pinned ones match.
    let first = list(&stack, &session, "application/json");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(
        names(&first.json()),
        ["search_customers", "get_weather", "delete_customer"]
    );
    let allowed = call(&stack, &session, "get_weather");
    assert_eq!(allowed.status, 200, "{allowed:?}");
    assert_eq!(allowed.header("x-demo-upstream"), Some("1"));
    assert_eq!(mismatches(), 0);

    // The rug pull: `get_weather` changed; it leaves the list.
    let pulled = list(&stack, &session, "application/json");
    assert_eq!(pulled.status, 200, "{pulled:?}");
    assert_eq!(
        names(&pulled.json()),
        ["search_customers", "delete_customer"]
    );
    assert!(!pulled.body.contains(RUG_PULLED_DESCRIPTION));
    assert_eq!(mismatches(), 1);

    // Its calls are denied on every worker.
    let before = worker_connections(&stack);
    for i in 0..CALLS_AFTER_PULL {
        let denied = call(&stack, &session, "get_weather");
        assert_eq!(denied.status, 403, "call {i}: {denied:?}");
        assert_eq!(denied.json()["reason"], "tool_pin_mismatch", "{denied:?}");
        assert_eq!(denied.header("x-demo-upstream"), None);
    }
    assert_eq!(mismatches(), 1 + CALLS_AFTER_PULL);
    let denied = prometheus::scrape(&stack.envoy.admin)
        .unwrap()
        .sum("mcp_decisions_total", &[("outcome", "deny")]);
    assert!(denied >= CALLS_AFTER_PULL as f64, "{denied}");
    // Both workers took some of those calls (each request opens its own
    // connection), so the memory was read across workers.
    let after = worker_connections(&stack);
    assert!(
        after.iter().zip(before).all(|(a, b)| *a > b),
        "calls spread over workers: {before:?} -> {after:?}"
    );
    // The decision record names the tool (the access log is flushed
    // within a second or so).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let records = loop {
        let records = pin_denials(&stack);
        if records.len() as u64 >= CALLS_AFTER_PULL || std::time::Instant::now() > deadline {
            break records;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert!(!records.is_empty(), "no pin denial in the access log");
    assert!(
        records
            .iter()
            .all(|r| r["tool_pin_mismatch"] == "get_weather"),
        "{records:?}"
    );

    // Unchanged pinned and unpinned tools still work.
    assert_eq!(call(&stack, &session, "search_customers").status, 200);
    assert_eq!(call(&stack, &session, "delete_customer").status, 200);

    // The same rug pull as an event stream.
    let streamed = list(&stack, &session, "text/event-stream");
    assert_eq!(streamed.status, 200, "{streamed:?}");
    assert_eq!(streamed.header("content-type"), Some("text/event-stream"));
    let data = streamed
        .body
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .expect("an event");
    let answer: Value = serde_json::from_str(data.trim()).expect("event JSON");
    assert_eq!(names(&answer), ["search_customers", "delete_customer"]);
    assert!(!streamed.body.contains(RUG_PULLED_DESCRIPTION));
    assert_eq!(mismatches(), 2 + CALLS_AFTER_PULL);
}
