//! Attacks on routing and rate limits together: the holes found by
//! reading the merged flow, each pinned by a test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::{MemoryHost, SharedStore};
use mcp_guard_flow::token_exchange::CalloutAnswer;
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde_json::{json, Value};

const NOW_MS: u64 = 1_800_000_000_000;

/// Routes with a fallback and a token budget over every chat.
fn active(pii: Value) -> Arc<ActivePolicy> {
    let bundle = json!({
        "name": "t", "version": 1,
        "rules": [{"id": "chat", "effect": "allow"}],
        "routes": {"rules": [
            {"id": "primary", "cluster": "llm-private", "fallback": "llm-default"}
        ]},
        "limits": {"rate": [
            {"id": "sub-tokens", "tokens": 1500, "per": "hour", "by": {"claims": ["sub"]}}
        ]},
        "pii": pii
    });
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn host(store: &SharedStore) -> MemoryHost {
    let mut host = MemoryHost::at(NOW_MS);
    host.shared = store.clone();
    host.set_claims("jwt_payload", &json!({"sub": "mallory"}));
    host.request.headers = vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/v1/chat/completions".into()),
        (":authority".into(), "api.local".into()),
        ("x-request-id".into(), "r1".into()),
        ("content-type".into(), "application/json".into()),
    ];
    host
}

/// A chat whose primary answers `primary_status`; when it falls back,
/// the fallback answers `fallback`. Returns the host after the log.
fn chat_falling_back(
    active: &Arc<ActivePolicy>,
    store: &SharedStore,
    fallback: &CalloutAnswer,
) -> MemoryHost {
    let mut h = host(store);
    let mut ex = Exchange::new(Some(Arc::clone(active)));
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
    h.request.body = br#"{"model":"gpt-x","messages":[]}"#.to_vec();
    let size = h.request.body.len();
    if ex.on_request_body(&mut h, size, true) != Next::Continue {
        ex.on_log(&mut h, None);
        return h;
    }
    h.response.headers = vec![
        (":status".into(), "503".into()),
        ("content-type".into(), "text/plain".into()),
    ];
    assert_eq!(ex.on_response_headers(&mut h, false), Next::Pause);
    let id = h.callouts.last().unwrap().id;
    h.response.body = b"down".to_vec();
    ex.on_response_body(&mut h, 4, true);
    ex.on_callout_answer(&mut h, id, fallback);
    ex.on_log(&mut h, None);
    h
}

fn ok_answer(content_type: &str, body: &[u8]) -> CalloutAnswer {
    CalloutAnswer {
        status: Some("200".into()),
        grpc_status: None,
        body: body.to_vec(),
        headers: vec![
            (":status".into(), "200".into()),
            ("content-type".into(), content_type.into()),
        ],
    }
}

const USAGE_JSON: &[u8] =
    br#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":600,"completion_tokens":400,"total_tokens":1000}}"#;

const USAGE_SSE: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
data: {\"choices\":[],\"usage\":{\"total_tokens\":1000}}\n\n\
data: [DONE]\n\n";

/// Hole: the fallback's answer was never metered (metering started at
/// the primary's response headers, after the fallback branch returned),
/// so a primary that fails (or is made to fail) gave unlimited tokens.
#[test]
fn a_fallback_answer_is_charged_against_the_token_budget() {
    for (pii, ct, body) in [
        (json!({"enabled": false}), "application/json", USAGE_JSON),
        (json!({"enabled": false}), "text/event-stream", USAGE_SSE),
        (
            json!({"enabled": true, "types": ["email"]}),
            "application/json",
            USAGE_JSON,
        ),
        (
            json!({"enabled": true, "types": ["email"]}),
            "text/event-stream",
            USAGE_SSE,
        ),
    ] {
        let a = active(pii);
        let store = SharedStore::default();
        let h = chat_falling_back(&a, &store, &ok_answer(ct, body));
        assert_eq!(h.replies.last().unwrap().status, 200, "{ct}");
        assert_eq!(h.record().unwrap()["route"]["fell_back"], true);
        assert_eq!(
            h.rate_limit_counts.2, 1000,
            "fallback tokens charged ({ct})"
        );
        assert_eq!(h.record().unwrap()["limit"]["charged_tokens"], 1000);
        // 1000 of 1500: one more goes; then the budget is spent.
        let h = chat_falling_back(&a, &store, &ok_answer(ct, body));
        assert_eq!(h.replies.last().unwrap().status, 200);
        let h = chat_falling_back(&a, &store, &ok_answer(ct, body));
        assert_eq!(h.replies.last().unwrap().status, 429, "{ct}");
    }
}

/// A fallback answer without usage is estimated, like any 2xx answer.
#[test]
fn a_fallback_answer_without_usage_is_estimated() {
    let a = active(json!({"enabled": false}));
    let store = SharedStore::default();
    let h = chat_falling_back(&a, &store, &ok_answer("application/json", &[b'x'; 2999]));
    assert_eq!(h.replies.last().unwrap().status, 200);
    assert!(h.rate_limit_counts.2 >= 1000, "{}", h.rate_limit_counts.2);
}

/// A budget keyed by model behind a route that rewrites every model to
/// one deployment.
fn active_model_keyed() -> Arc<ActivePolicy> {
    let bundle = json!({
        "name": "t", "version": 1,
        "rules": [{"id": "chat", "effect": "allow"}],
        "routes": {"rules": [
            {"id": "private", "cluster": "llm-private",
             "models": {"gpt-4o": "llama3-70b", "*": "llama3-8b"}}
        ]},
        "limits": {"rate": [
            {"id": "per-model", "requests": 1, "per": "hour",
             "by": {"claims": ["sub"], "model": true}}
        ]},
        "pii": {"enabled": false}
    });
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

/// Sends one chat naming `model`; the reply status (200 when forwarded)
/// and the model the upstream got.
fn chat_model(a: &Arc<ActivePolicy>, store: &SharedStore, model: &str) -> (u32, Option<String>) {
    let mut h = host(store);
    let mut ex = Exchange::new(Some(Arc::clone(a)));
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
    h.request.body = json!({"model": model, "messages": []})
        .to_string()
        .into_bytes();
    let size = h.request.body.len();
    let next = ex.on_request_body(&mut h, size, true);
    if let Some(r) = h.replies.last() {
        return (r.status, None);
    }
    assert_eq!(next, Next::Continue);
    let sent: Value = serde_json::from_slice(&h.request.body).unwrap();
    (200, sent["model"].as_str().map(str::to_owned))
}

/// Hole: `by.model` keyed the model the client named, before the
/// route's rewrite; behind a `*` rewrite every made-up model name was a
/// fresh budget for the same deployment (and a new shared-data key).
#[test]
fn a_budget_keyed_by_model_counts_the_model_the_upstream_gets() {
    let a = active_model_keyed();
    let store = SharedStore::default();
    assert_eq!(
        chat_model(&a, &store, "made-up-1"),
        (200, Some("llama3-8b".into()))
    );
    assert_eq!(
        chat_model(&a, &store, "made-up-2").0,
        429,
        "same deployment, same budget"
    );
    assert_eq!(chat_model(&a, &store, "MADE-UP-3").0, 429);
    // The aliased model is another deployment: its own budget.
    assert_eq!(
        chat_model(&a, &store, "gpt-4o"),
        (200, Some("llama3-70b".into()))
    );
    assert_eq!(chat_model(&a, &store, "gpt-4o").0, 429);
}

/// A request limit on one tool, and one keyed by tool.
fn active_tools() -> Arc<ActivePolicy> {
    let bundle = json!({
        "name": "t", "version": 1,
        "rules": [{"id": "tools", "effect": "allow", "when": {"mcp": {"tools": ["*"]}}}],
        "limits": {"rate": [
            {"id": "expensive", "requests": 2, "per": "hour", "by": {"claims": ["sub"]},
             "when": {"mcp": {"tools": ["expensive"]}}},
            {"id": "per-tool", "requests": 3, "per": "hour",
             "by": {"claims": ["sub"], "tool": true}}
        ]},
        "pii": {"enabled": false}
    });
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn mcp(a: &Arc<ActivePolicy>, store: &SharedStore, body: &Value) -> u32 {
    let mut h = host(store);
    h.request.headers[1].1 = "/mcp".into();
    let mut ex = Exchange::new(Some(Arc::clone(a)));
    ex.on_request_headers(&mut h, false);
    if let Some(r) = h.replies.last() {
        return r.status;
    }
    h.request.body = body.to_string().into_bytes();
    let size = h.request.body.len();
    ex.on_request_body(&mut h, size, true);
    h.replies.last().map_or(200, |r| r.status)
}

fn call(id: u32, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool}})
}

/// Hole: limits saw only a batch's first call, so a batch opening with
/// any other call ran the limited tool as often as it liked, uncounted.
#[test]
fn every_call_of_a_batch_counts_against_its_limits() {
    let a = active_tools();
    let store = SharedStore::default();
    // One call alone counts once.
    assert_eq!(mcp(&a, &store, &call(1, "expensive")), 200);
    // Hidden behind a cheap first call: still counted, and the batch
    // that would pass the limit is refused whole.
    // (The refused batch's first count stays spent: fail closed.)
    let batch = json!([call(1, "cheap"), call(2, "expensive"), call(3, "expensive")]);
    assert_eq!(mcp(&a, &store, &batch), 429);
    assert_eq!(mcp(&a, &store, &call(1, "expensive")), 429, "2 of 2 spent");
    let store = SharedStore::default();
    let batch = json!([call(1, "cheap"), call(2, "expensive")]);
    assert_eq!(mcp(&a, &store, &batch), 200);
    assert_eq!(mcp(&a, &store, &batch), 200);
    assert_eq!(
        mcp(&a, &store, &batch),
        429,
        "2 of 2 spent behind cheap calls"
    );
    // Keyed by tool: each call under its own tool's key.
    let store = SharedStore::default();
    let batch = json!([
        call(1, "cheap"),
        call(2, "other"),
        call(3, "other"),
        call(4, "other")
    ]);
    assert_eq!(mcp(&a, &store, &batch), 200);
    assert_eq!(
        mcp(&a, &store, &call(1, "other")),
        429,
        "3 of 3 spent on other"
    );
    assert_eq!(mcp(&a, &store, &call(1, "cheap")), 200);
}

/// Hole: a batch of many calls under a global per-tool limit sent more
/// descriptors than the service takes (16); its refusal is "unavailable",
/// which `on_unavailable: allow` let through uncounted.
#[test]
fn a_batch_over_the_services_descriptor_bound_is_refused_even_when_unavailable_allows() {
    let bundle = json!({
        "name": "t", "version": 1,
        "rules": [{"id": "tools", "effect": "allow", "when": {"mcp": {"tools": ["*"]}}}],
        "limits": {
            "rate": [{"id": "g", "requests": 5, "per": "minute",
                      "by": {"claims": ["sub"], "tool": true}, "store": "global"}],
            "global": {"cluster": "rls", "domain": "mcp-guard", "timeout_ms": 150,
                       "on_unavailable": "allow"}
        },
        "pii": {"enabled": false}
    });
    let a = Arc::new(ActivePolicy::new(
        Policy::compile(bundle.to_string().as_bytes()).unwrap(),
        None,
    ));
    let store = SharedStore::default();
    let calls: Vec<Value> = (0..17).map(|i| call(i, "expensive")).collect();
    let mut h = host(&store);
    h.request.headers[1].1 = "/mcp".into();
    let mut ex = Exchange::new(Some(Arc::clone(&a)));
    ex.on_request_headers(&mut h, false);
    h.request.body = Value::Array(calls).to_string().into_bytes();
    let size = h.request.body.len();
    ex.on_request_body(&mut h, size, true);
    assert!(
        h.callouts.is_empty(),
        "nothing the service would refuse is sent"
    );
    assert_eq!(h.replies.last().map(|r| r.status), Some(503));
    // 16 calls fit: asked.
    let calls: Vec<Value> = (0..16).map(|i| call(i, "expensive")).collect();
    let mut h = host(&store);
    h.request.headers[1].1 = "/mcp".into();
    let mut ex = Exchange::new(Some(Arc::clone(&a)));
    ex.on_request_headers(&mut h, false);
    h.request.body = Value::Array(calls).to_string().into_bytes();
    let size = h.request.body.len();
    ex.on_request_body(&mut h, size, true);
    assert_eq!(h.callouts.len(), 1);
}

/// Hole: a client that resets its stream after the request went
/// upstream (before the answer's headers) was charged nothing, though
/// the model read (and usually answered) the prompt: big prompts,
/// dropped at once, spent the upstream for free.
#[test]
fn a_request_dropped_before_its_answer_is_charged_its_prompt() {
    let a = active(json!({"enabled": false}));
    let store = SharedStore::default();
    let mut h = host(&store);
    let mut ex = Exchange::new(Some(Arc::clone(&a)));
    ex.on_request_headers(&mut h, false);
    h.request.body = format!(
        r#"{{"model":"m","messages":[{{"role":"user","content":"{}"}}]}}"#,
        "x".repeat(3000)
    )
    .into_bytes();
    let size = h.request.body.len();
    assert_eq!(ex.on_request_body(&mut h, size, true), Next::Continue);
    // The client goes away: no answer, only the log.
    ex.on_log(&mut h, None);
    assert!(h.rate_limit_counts.2 >= 1000, "{}", h.rate_limit_counts.2);
}
