//! Requests that announce their MCP call in `Mcp-Method` / `Mcp-Name`
//! (MCP 2026-07-28): decided at the headers when the call is all the
//! rules read, and refused with `header_mismatch` whenever the body does
//! not make exactly the announced call.

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

fn bundle(models: bool) -> Value {
    let mut rules = vec![
        json!({"id": "no-delete", "effect": "deny", "when": {"mcp": {"tools": ["delete_all"]}}}),
        json!({"id": "tools", "effect": "allow", "when": {
            "path": {"exact": "/mcp"}, "mcp": {"tools": ["safe_tool"]}}}),
        json!({"id": "session", "effect": "allow", "when": {
            "path": {"exact": "/mcp"}, "mcp": {"methods": ["tools/list", "initialize"]}}}),
    ];
    if models {
        rules.push(json!({"id": "chat", "effect": "allow", "when": {
            "path": {"exact": "/v1/chat"}, "models": ["demo-*"]}}));
    }
    json!({
        "name": "t",
        "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "limits": {"max_request_body_bytes": 4096},
        "rules": rules,
    })
}

fn exchange(models: bool) -> Exchange {
    let policy = Policy::compile(bundle(models).to_string().as_bytes()).unwrap();
    Exchange::new(Some(Arc::new(ActivePolicy::new(policy, None))))
}

fn host(extra: &[(&str, &str)]) -> MemoryHost {
    let mut host = MemoryHost::at(NOW_MS);
    host.set_claims("jwt_payload", &json!({"sub": "alice"}));
    let mut headers = vec![
        (":method".to_string(), "POST".to_string()),
        (":path".to_string(), "/mcp".to_string()),
        (":authority".to_string(), "api.local".to_string()),
        ("x-request-id".to_string(), "r1".to_string()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    host.request.headers = headers;
    host
}

fn tool_call(name: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name}})
        .to_string()
        .into_bytes()
}

/// Header pairs as sent.
type Headers<'a> = &'a [(&'a str, &'a str)];

const SAFE: [(&str, &str); 2] = [("mcp-method", "tools/call"), ("mcp-name", "safe_tool")];

/// Feeds a body in two chunks as Envoy does while the flow holds it
/// (each callback sees all bytes so far), ending with `end_of_stream` or
/// with trailers. Returns the last callback's answer.
fn feed(ex: &mut Exchange, host: &mut MemoryHost, body: &[u8], trailers: bool) -> Next {
    let half = body.len() / 2;
    host.request.body = body[..half].to_vec();
    let first = ex.on_request_body(host, half, false);
    assert_eq!(first, Next::Pause, "the body is held until it ends");
    host.request.body = body.to_vec();
    if trailers {
        assert_eq!(ex.on_request_body(host, body.len(), false), Next::Pause);
        host.request.trailers = vec![("x-checksum".into(), "1".into())];
        ex.on_request_trailers(host)
    } else {
        ex.on_request_body(host, body.len(), true)
    }
}

fn reply_json(host: &MemoryHost) -> Value {
    assert_eq!(host.replies.len(), 1, "exactly one local reply");
    serde_json::from_slice(&host.replies[0].body).unwrap()
}

fn assert_mismatch(host: &MemoryHost, detail: &str, id: Option<i64>) {
    let reply = &host.replies[0];
    assert_eq!(reply.status, 400);
    let body = reply_json(host);
    assert_eq!(body["jsonrpc"], "2.0");
    assert_eq!(body["error"]["code"], -32020);
    assert_eq!(body["error"]["data"]["detail"], detail, "{body}");
    match id {
        Some(id) => assert_eq!(body["id"], id),
        None => assert!(body.get("id").is_none()),
    }
    let record = host.record().unwrap();
    assert_eq!(record["reason"], "header_mismatch");
}

#[test]
fn a_denied_call_is_answered_at_the_headers() {
    let mut ex = exchange(false);
    let mut h = host(&[("mcp-method", "tools/call"), ("mcp-name", "delete_all")]);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
    assert!(ex.decided() && !ex.forwarded());
    assert_eq!(h.replies[0].status, 403);
    assert_eq!(reply_json(&h)["rule"], "no-delete");
    // Whatever body follows is never read or released.
    h.request.body = tool_call("delete_all");
    let len = h.request.body.len();
    assert_eq!(ex.on_request_body(&mut h, len, true), Next::Pause);
    assert_eq!(
        (h.replies.len(), h.counts.denied, h.counts.allowed),
        (1, 1, 0)
    );
}

#[test]
fn an_allowed_call_goes_upstream_and_its_body_is_verified() {
    for trailers in [false, true] {
        let mut ex = exchange(false);
        let mut h = host(&SAFE);
        assert_eq!(ex.on_request_headers(&mut h, false), Next::Continue);
        assert!(ex.verifying() && !ex.forwarded());
        assert_eq!(h.counts.allowed, 0, "counted once the body agrees");
        assert_eq!(
            feed(&mut ex, &mut h, &tool_call("safe_tool"), trailers),
            Next::Continue
        );
        assert!(ex.forwarded());
        assert!(h.replies.is_empty());
        assert_eq!((h.counts.allowed, h.counts.denied), (1, 0));
        assert_eq!(h.record().unwrap()["rule"], "tools");
    }
}

#[test]
fn a_body_calling_another_tool_than_announced_is_refused() {
    let escaped =
        br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"del\u0065te_all"}}"#;
    for (body, trailers) in [
        (tool_call("delete_all"), false),
        (tool_call("delete_all"), true),
        (escaped.to_vec(), false),
    ] {
        let mut ex = exchange(false);
        let mut h = host(&SAFE);
        assert_eq!(ex.on_request_headers(&mut h, false), Next::Continue);
        assert_eq!(feed(&mut ex, &mut h, &body, trailers), Next::Pause);
        assert!(!ex.forwarded());
        assert_mismatch(&h, "name_mismatch", Some(7));
        assert_eq!((h.counts.allowed, h.counts.denied), (0, 1));
    }
}

#[test]
fn bodies_that_are_not_the_announced_single_call_are_refused() {
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let cases: [(Headers, Vec<u8>, &str, Option<i64>); 5] = [
        (
            &[("mcp-method", "tools/list")],
            format!("[{list}]").into_bytes(),
            "batch",
            Some(3),
        ),
        (
            &[("mcp-method", "tools/list")],
            br#"{"hello":"world"}"#.to_vec(),
            "not_a_call",
            None,
        ),
        (
            &[("mcp-method", "tools/list")],
            tool_call("safe_tool"),
            "method_mismatch",
            Some(7),
        ),
        (
            &SAFE,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}"#.to_vec(),
            "name_mismatch",
            Some(7),
        ),
        (
            &SAFE,
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#.to_vec(),
            "method_mismatch",
            Some(7),
        ),
    ];
    for (headers, body, detail, id) in cases {
        let mut ex = exchange(false);
        let mut h = host(headers);
        assert_eq!(
            ex.on_request_headers(&mut h, false),
            Next::Continue,
            "{detail}"
        );
        assert_eq!(feed(&mut ex, &mut h, &body, false), Next::Pause, "{detail}");
        assert_mismatch(&h, detail, id);
    }
}

#[test]
fn ambiguous_headers_are_refused_before_the_body() {
    let cases: [(Headers, &str); 7] = [
        (
            &[("mcp-method", "Tools/Call"), ("mcp-name", "safe_tool")],
            "method_mismatch",
        ),
        (
            &[("mcp-method", "tools/call "), ("mcp-name", "safe_tool")],
            "invalid_header_value",
        ),
        (
            &[("mcp-method", "tools/call"), ("mcp-name", "safe_tool\t")],
            "invalid_header_value",
        ),
        (&[("mcp-name", "safe_tool")], "name_without_method"),
        (&[("mcp-method", "tools/call")], "missing_name"),
        (
            &[("mcp-method", "tools/list"), ("mcp-name", "safe_tool")],
            "name_not_taken",
        ),
        (
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "safe_tool"),
                ("Mcp-Name", "delete_all"),
            ],
            "duplicate_header",
        ),
    ];
    for (headers, detail) in cases {
        let mut ex = exchange(false);
        let mut h = host(headers);
        assert_eq!(
            ex.on_request_headers(&mut h, false),
            Next::Pause,
            "{detail}"
        );
        assert!(ex.decided() && !ex.forwarded());
        assert_mismatch(&h, detail, None);
    }
}

#[test]
fn an_announced_call_without_a_body_is_refused() {
    let mut ex = exchange(false);
    let mut h = host(&[("mcp-method", "tools/list")]);
    assert_eq!(ex.on_request_headers(&mut h, true), Next::Pause);
    assert_mismatch(&h, "not_a_call", None);
}

#[test]
fn duplicate_json_keys_are_refused_as_invalid_bodies() {
    let twice =
        br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"safe_tool","name":"delete_all"}}"#;
    let mut ex = exchange(false);
    let mut h = host(&SAFE);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Continue);
    assert_eq!(feed(&mut ex, &mut h, twice, false), Next::Pause);
    let body = reply_json(&h);
    assert_eq!(h.replies[0].status, 400);
    assert_eq!(
        (body["reason"].as_str(), body["detail"].as_str()),
        (Some("invalid_body"), Some("duplicate_key"))
    );
}

#[test]
fn a_body_over_the_limit_is_refused_after_the_headers() {
    let mut ex = exchange(false);
    let mut h = host(&SAFE);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Continue);
    h.request.body = vec![b' '; 3000];
    assert_eq!(ex.on_request_body(&mut h, 3000, false), Next::Pause);
    h.request.body = vec![b' '; 5000];
    assert_eq!(ex.on_request_body(&mut h, 5000, false), Next::Pause);
    assert_eq!(h.replies[0].status, 413);
    assert!(!ex.forwarded());
    // Later chunks are dropped with the request.
    assert_eq!(ex.on_request_body(&mut h, 6000, true), Next::Pause);
    assert_eq!(h.replies.len(), 1);
}

#[test]
fn compressed_bodies_are_refused_rather_than_guessed() {
    let mut ex = exchange(false);
    let mut h = host(&[SAFE[0], SAFE[1], ("content-encoding", "gzip")]);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
    assert_eq!(h.replies[0].status, 400);
    assert_eq!(reply_json(&h)["detail"], "compressed_request");
}

#[test]
fn an_answer_before_the_body_was_verified_is_refused() {
    let mut ex = exchange(false);
    let mut h = host(&SAFE);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Continue);
    h.response.headers = vec![(":status".into(), "200".into())];
    assert_eq!(ex.on_response_headers(&mut h, false), Next::Pause);
    assert_eq!(h.replies[0].status, 502);
}

#[test]
fn rules_reading_the_model_keep_the_decision_at_the_body_and_still_verify() {
    for (body, ok) in [
        (tool_call("safe_tool"), true),
        (tool_call("delete_all"), false),
    ] {
        let mut ex = exchange(true);
        let mut h = host(&SAFE);
        assert_eq!(
            ex.on_request_headers(&mut h, false),
            Next::Pause,
            "held for the body"
        );
        assert!(!ex.decided() && !ex.verifying());
        let next = feed(&mut ex, &mut h, &body, false);
        assert_eq!(next == Next::Continue, ok);
        assert_eq!(ex.forwarded(), ok);
        if !ok {
            // The header mismatch is found before the rules (which would
            // say `no-delete`).
            assert_mismatch(&h, "name_mismatch", Some(7));
        }
    }
}

#[test]
fn requests_without_mcp_headers_are_decided_at_the_body_as_before() {
    for (tool, ok) in [("safe_tool", true), ("delete_all", false)] {
        let mut ex = exchange(false);
        let mut h = host(&[("mcp-session-id", "s1")]);
        assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
        assert!(!ex.verifying());
        assert_eq!(
            feed(&mut ex, &mut h, &tool_call(tool), false) == Next::Continue,
            ok
        );
        if !ok {
            assert_eq!(h.replies[0].status, 403);
        }
    }
}

#[test]
fn base64_names_are_compared_decoded() {
    let mut ex = exchange(false);
    // "safe_tool" in the spec's sentinel encoding.
    let mut h = host(&[
        ("mcp-method", "tools/call"),
        ("mcp-name", "=?base64?c2FmZV90b29s?="),
    ]);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Continue);
    assert_eq!(
        feed(&mut ex, &mut h, &tool_call("safe_tool"), false),
        Next::Continue
    );
    assert!(ex.forwarded());
}

/// A rule on the call's arguments reads the body, so a request that
/// announces an allowed tool in its headers is still decided on the
/// arguments its body sends, never on the headers alone.
#[test]
fn argument_rules_keep_the_decision_at_the_body() {
    let mut b = bundle(false);
    b["rules"][1] = json!({"id": "tools", "effect": "allow", "when": {
        "path": {"exact": "/mcp"}, "mcp": {"tools": ["safe_tool"],
        "arguments": [{"path": "amount", "max": 1000}]}}});
    let policy = Policy::compile(b.to_string().as_bytes()).unwrap();
    assert!(!policy.body_needs().only_mcp());
    let active = Arc::new(ActivePolicy::new(policy, None));
    for (amount, ok) in [(10, true), (5000, false)] {
        let mut ex = Exchange::new(Some(Arc::clone(&active)));
        let mut h = host(&SAFE);
        assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
        assert!(!ex.decided() && !ex.verifying(), "not decided on headers");
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "safe_tool", "arguments": {"amount": amount}}})
        .to_string()
        .into_bytes();
        let next = feed(&mut ex, &mut h, &body, false);
        assert_eq!(next == Next::Continue, ok, "amount {amount}");
        assert_eq!(ex.forwarded(), ok);
    }
}

/// Attack: a resource rule decided at the headers took `Mcp-Name` as
/// sent, so `file:///public/../etc/passwd` went upstream as allowed by
/// `file:///public/*` before the body showed it. A URI outside canonical
/// form is now decided at the body, which refuses it before any byte
/// (headers included) reaches the upstream.
#[test]
fn non_canonical_resource_names_are_not_decided_at_the_headers() {
    let bundle = json!({
        "name": "t", "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "rules": [{"id": "public", "effect": "allow", "when": {
            "path": {"exact": "/mcp"}, "mcp": {"resources": ["file:///public/*"]}}}]
    });
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    let active = Arc::new(ActivePolicy::new(policy, None));
    let read = |uri: &str| {
        json!({"jsonrpc": "2.0", "id": 7, "method": "resources/read", "params": {"uri": uri}})
            .to_string()
            .into_bytes()
    };
    // Canonical: decided at the headers as before.
    let mut ex = Exchange::new(Some(Arc::clone(&active)));
    let mut h = host(&[
        ("mcp-method", "resources/read"),
        ("mcp-name", "file:///public/a"),
    ]);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Continue);
    // Dot segments: held, then refused at the body.
    let uri = "file:///public/../etc/passwd";
    let mut ex = Exchange::new(Some(Arc::clone(&active)));
    let mut h = host(&[("mcp-method", "resources/read"), ("mcp-name", uri)]);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
    let body = read(uri);
    h.request.body = body.clone();
    ex.on_request_body(&mut h, body.len(), true);
    assert!(!ex.forwarded());
    assert_eq!(h.replies.len(), 1);
    assert_eq!(h.replies[0].status, 400);
    assert_eq!(h.record().unwrap()["reason"], "invalid_request");
}

/// Revision 2026-07-28 requires `Mcp-Method` on every request: a POST of
/// that revision without it is refused at the headers, as its server
/// would refuse it; an older revision's POST is decided on its body.
#[test]
fn a_2026_request_without_mcp_method_is_refused() {
    let mut ex = exchange(false);
    let mut h = host(&[("mcp-protocol-version", "2026-07-28")]);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
    assert!(ex.decided() && !ex.forwarded());
    assert_mismatch(&h, "missing_method", None);

    let mut ex = exchange(false);
    let mut h = host(&[("mcp-protocol-version", "2025-11-25")]);
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
    assert!(!ex.decided(), "held for the body");
    assert_eq!(
        feed(&mut ex, &mut h, &tool_call("safe_tool"), false),
        Next::Continue
    );
    assert!(ex.forwarded());
}
