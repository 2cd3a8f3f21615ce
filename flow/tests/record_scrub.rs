//! The sealed decision record carries no personal data the bundle's
//! scanner finds in any client-chosen member: the caller picks its
//! request id and its MCP method as freely as its path or tool name.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::audit::DecisionChain;
use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::{ActivePolicy, Exchange};
use serde_json::json;

const EMAIL: &str = "jane.doe@example.com";

fn policy() -> Arc<ActivePolicy> {
    let bundle = json!({
        "name": "t",
        "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "rules": [
            {"id": "tools", "effect": "allow", "when": {
                "path": {"prefix": "/mcp"}, "mcp": {"tools": ["get_weather"]}}}
        ],
        "pii": {"enabled": true}
    });
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

/// Runs one request (headers and body) and logs it; the sealed record.
fn logged(path: &str, request_id: &str, body: &[u8]) -> String {
    let mut host = MemoryHost::at(1_800_000_000_000);
    host.set_claims("jwt_payload", &json!({"sub": "alice"}));
    host.request.headers = vec![
        (":method".into(), "POST".into()),
        (":path".into(), path.into()),
        (":authority".into(), "api.local".into()),
        ("x-request-id".into(), request_id.into()),
    ];
    let mut ex = Exchange::new(Some(policy()));
    ex.on_request_headers(&mut host, false);
    host.request.body = body.to_vec();
    ex.on_request_body(&mut host, body.len(), true);
    let mut chain = DecisionChain::new("n1");
    ex.on_log(&mut host, Some(&mut chain));
    host.records.last().cloned().expect("a sealed record")
}

#[test]
fn no_client_chosen_member_carries_an_email_into_the_log() {
    let call = |method: &str, tool: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": {"name": tool}})
            .to_string()
            .into_bytes()
    };
    for (path, request_id, body) in [
        // Already scrubbed: path and tool name (the control case).
        (
            format!("/mcp/{EMAIL}"),
            "r1".to_string(),
            call("tools/call", EMAIL),
        ),
        // The request id is the caller's header.
        (
            "/mcp".into(),
            EMAIL.into(),
            call("tools/call", "get_weather"),
        ),
        // So is the JSON-RPC method.
        ("/mcp".into(), "r1".into(), call(EMAIL, "get_weather")),
    ] {
        let record = logged(&path, &request_id, &body);
        assert!(record.contains("\"hash\""), "{record}");
        assert!(!record.contains(EMAIL), "{record}");
    }
}
