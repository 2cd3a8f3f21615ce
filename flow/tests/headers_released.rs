//! The exchange under a host that does not hold headers while a body is
//! read (an Istio `WasmPlugin`): headers go upstream before the body
//! decides, so what the headers alone settle must be settled there.

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

const NOW_MS: u64 = 1_800_000_000_000;

fn bundle(rules: Value) -> Value {
    json!({
        "name": "t", "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "inject": [{"claim": "tenant", "header": "x-mcp-tenant"}],
        "rules": rules,
        "pii": {"enabled": false}
    })
}

/// An MCP allow on `/mcp`, a model allow on `/v1/chat`, and a deny rule
/// on the MCP call: every rule reads the body, so a body decides.
fn body_rules() -> Value {
    json!([
        {"id": "no-drop", "effect": "deny", "when": {"mcp": {"tools": ["drop_*"]}}},
        {"id": "suspended", "effect": "deny", "when": {
            "claims": [{"claim": "suspended", "equals": true}]}},
        {"id": "tools", "effect": "allow", "when": {
            "methods": ["POST"], "path": {"exact": "/mcp"}, "mcp": {"tools": ["get_weather"]}}},
        {"id": "chat", "effect": "allow", "when": {
            "methods": ["POST"], "path": {"exact": "/v1/chat"}, "models": ["demo-*"],
            "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}
    ])
}

fn active(bundle: &Value) -> Arc<ActivePolicy> {
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn host_for(method: &str, path: &str, claims: &Value) -> MemoryHost {
    let mut host = MemoryHost::at(NOW_MS);
    host.set_claims("jwt_payload", claims);
    host.request.headers = vec![
        (":method".into(), method.into()),
        (":path".into(), path.into()),
        (":authority".into(), "api.local".into()),
        ("x-request-id".into(), "r1".into()),
        ("authorization".into(), "Bearer client-token".into()),
        ("x-mcp-tenant".into(), "forged".into()),
        ("content-type".into(), "application/json".into()),
    ];
    host
}

fn released(policy: &Arc<ActivePolicy>) -> Exchange {
    Exchange::new(Some(policy.clone())).with_held_headers(false)
}

fn header<'a>(host: &'a MemoryHost, name: &str) -> Option<&'a str> {
    host.request
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn tool_call(tool: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool}})
        .to_string()
        .into_bytes()
}

/// A request line no rule can allow, whatever body follows (a path no
/// allow rule names, a method the rules do not allow, a caller without
/// the claims, a deny rule on claims alone): refused at its headers,
/// which never leave. An upstream may act on a request line before it
/// reads a body; the body is only a way to delay the decision.
#[test]
fn headers_no_body_can_make_allowed_are_refused_before_they_leave() {
    let policy = active(&bundle(body_rules()));
    let user = json!({"sub": "alice", "tenant": "acme", "roles": ["model-user"]});
    let suspended = json!({"sub": "eve", "roles": ["model-user"], "suspended": true});
    let nobody = json!({"sub": "bob"});
    for (method, path, claims) in [
        ("POST", "/admin/reset", &user),
        ("DELETE", "/mcp", &user),
        ("POST", "/v1/chat", &nobody),
        ("POST", "/v1/chat", &suspended),
    ] {
        let mut host = host_for(method, path, claims);
        let mut ex = released(&policy);
        assert_eq!(
            ex.on_request_headers(&mut host, false),
            Next::Pause,
            "{method} {path} {claims}"
        );
        assert_eq!(host.replies.len(), 1, "{method} {path}");
        assert_eq!(host.replies[0].status, 403);
        assert!(ex.decided() && !ex.forwarded());
        assert_eq!(host.record().unwrap()["decision"], "deny");
        // The body that follows is held for good.
        host.request.body = tool_call("get_weather");
        let n = host.request.body.len();
        assert_eq!(ex.on_request_body(&mut host, n, true), Next::Pause);
        assert_eq!(host.replies.len(), 1);
    }
}

/// Headers some body could make allowed go on (ready for the upstream),
/// and the body decides as in the held mode, a deny rule on the MCP call
/// included.
#[test]
fn headers_a_body_may_make_allowed_go_on_and_the_body_decides() {
    let policy = active(&bundle(body_rules()));
    let user = json!({"sub": "alice", "tenant": "acme", "roles": ["model-user"]});
    for (path, body, allowed) in [
        ("/mcp", tool_call("get_weather"), true),
        ("/mcp", tool_call("drop_table"), false),
        ("/mcp", tool_call("other"), false),
        (
            "/v1/chat",
            br#"{"model":"demo-1","messages":[]}"#.to_vec(),
            true,
        ),
        (
            "/v1/chat",
            br#"{"model":"gpt","messages":[]}"#.to_vec(),
            false,
        ),
    ] {
        let mut host = host_for("POST", path, &user);
        let mut ex = released(&policy);
        assert_eq!(ex.on_request_headers(&mut host, false), Next::Continue);
        assert!(header(&host, "authorization").is_none());
        assert_eq!(header(&host, "x-mcp-tenant"), Some("acme"));
        assert!(host.replies.is_empty());
        host.request.body = body;
        let n = host.request.body.len();
        let next = ex.on_request_body(&mut host, n, true);
        assert_eq!(next == Next::Continue, allowed, "{path}");
        assert_eq!(ex.forwarded(), allowed);
    }
}

/// A dry-run bundle refuses nothing, at the headers either.
#[test]
fn a_dry_run_bundle_is_not_refused_at_the_headers() {
    let mut b = bundle(body_rules());
    b["dry_run"] = json!(true);
    let policy = active(&b);
    let mut host = host_for("POST", "/admin/reset", &json!({"sub": "bob"}));
    let mut ex = released(&policy);
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Continue);
    host.request.body = b"{}".to_vec();
    assert_eq!(ex.on_request_body(&mut host, 2, true), Next::Continue);
    assert!(ex.forwarded());
    assert_eq!(host.record().unwrap()["decision"], "allow");
}
