//! Argument conditions and resource templates through the exchange, driven
//! natively: a call is forwarded or answered locally by its arguments, a
//! list answer still shows tools whose calls are checked on arguments, and
//! a resource URI that could resolve elsewhere is refused before any rule.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde_json::{json, Value};

fn policy() -> Arc<ActivePolicy> {
    let bundle = json!({
        "name": "args",
        "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "rules": [
            {"id": "invoices", "effect": "allow", "when": {
                "path": {"exact": "/mcp"},
                "mcp": {"tools": ["get_invoice"], "arguments": [
                    {"path": "customer_id", "in_claim": "customers"},
                    {"path": "amount", "max": 1000}]}}},
            {"id": "tenant-files", "effect": "allow", "when": {
                "path": {"exact": "/mcp"},
                "mcp": {"resource_templates": ["file:///tenants/{tenant}/{path*}"]},
                "relations": [{"claim": "tenant", "equals_capture": "tenant"}]}},
            {"id": "session", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"methods": ["tools/list"]}}}
        ]
    });
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn host_with(body: &Value) -> MemoryHost {
    let mut host = MemoryHost::at(1_800_000_000_000);
    host.set_claims(
        "jwt_payload",
        &json!({"sub": "alice", "customers": ["acme"], "tenant": "acme"}),
    );
    host.request.headers = vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/mcp".into()),
        (":authority".into(), "api.local".into()),
        ("content-type".into(), "application/json".into()),
    ];
    host.request.body = body.to_string().into_bytes();
    host
}

/// Sends one request body; returns the exchange, host and whether it was
/// forwarded.
fn send(body: Value) -> (Exchange, MemoryHost, bool) {
    let mut host = host_with(&body);
    let mut ex = Exchange::new(Some(policy()));
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Pause);
    let n = host.request.body.len();
    let next = ex.on_request_body(&mut host, n, true);
    let forwarded = next == Next::Continue && ex.forwarded();
    (ex, host, forwarded)
}

fn invoice(arguments: Value) -> (u32, Option<String>) {
    let (_, host, forwarded) = send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_invoice", "arguments": arguments}}));
    if forwarded {
        (200, None)
    } else {
        let record = host.record().unwrap();
        (
            host.replies[0].status,
            record["reason"].as_str().map(str::to_string),
        )
    }
}

#[test]
fn calls_pass_or_are_denied_by_their_arguments() {
    assert_eq!(
        invoice(json!({"customer_id": "acme", "amount": 1000})).0,
        200
    );
    assert_eq!(
        invoice(json!({"customer_id": "globex", "amount": 1})).0,
        403
    );
    assert_eq!(
        invoice(json!({"customer_id": "acme", "amount": 1001})).0,
        403
    );
    assert_eq!(invoice(json!({"customer_id": "acme"})).0, 403);
    assert_eq!(
        invoice(json!({"customer_id": "acme", "amount": "1"})).0,
        403
    );
}

#[test]
fn ambiguous_arguments_are_refused_with_400() {
    let (_, host, forwarded) = send(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_invoice", "arguments": {"Customer_ID": "acme", "amount": 1}}}));
    assert!(!forwarded);
    assert_eq!(host.replies[0].status, 400);
    // A number a double misreads, as raw text.
    let mut host = host_with(&json!(null));
    host.request.body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_invoice","arguments":{"customer_id":"acme","amount":1000.0000000000000001}}}"#.to_vec();
    let mut ex = Exchange::new(Some(policy()));
    ex.on_request_headers(&mut host, false);
    let n = host.request.body.len();
    ex.on_request_body(&mut host, n, true);
    assert!(!ex.forwarded());
    assert_eq!(host.replies[0].status, 400);
}

#[test]
fn resource_reads_are_bound_to_the_callers_tenant() {
    let read = |uri: &str| {
        let (_, host, forwarded) = send(json!({"jsonrpc": "2.0", "id": 1,
            "method": "resources/read", "params": {"uri": uri}}));
        if forwarded {
            200
        } else {
            host.replies[0].status
        }
    };
    assert_eq!(read("file:///tenants/acme/q1.txt"), 200);
    assert_eq!(read("file:///tenants/globex/q1.txt"), 403);
    assert_eq!(read("file:///tenants/acme/../globex/q1.txt"), 400);
    assert_eq!(read("file:///tenants/acme/%2e%2e/globex/q1.txt"), 400);
    assert_eq!(read("FILE:///tenants/acme/q1.txt"), 400);
}

#[test]
fn list_answers_keep_tools_checked_at_call_time() {
    let (mut ex, mut host, forwarded) =
        send(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}));
    assert!(forwarded);
    host.response.headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    ex.on_response_headers(&mut host, false);
    host.response.body = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": [
        {"name": "get_invoice"}, {"name": "drop_db"}]}})
    .to_string()
    .into_bytes();
    let n = host.response.body.len();
    ex.on_response_body(&mut host, n, true);
    let text = String::from_utf8(host.response.body.clone()).unwrap();
    assert!(text.contains("get_invoice"), "{text}");
    assert!(!text.contains("drop_db"), "{text}");
}
