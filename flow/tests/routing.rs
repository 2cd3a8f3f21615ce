//! Routing by policy in the exchange flow, driven through the in-memory
//! host: the route header (client copies always out), prompt-PII and
//! tenant routes, model rewrites, the released-headers mode, and the
//! cross-cluster fallback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::token_exchange::CalloutAnswer;
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde_json::{json, Value};

const NOW_MS: u64 = 1_800_000_000_000;
const ROUTE: &str = "x-mcp-guard-cluster";
const CARD: &str = "4111 1111 1111 1111";

fn bundle(pii: Value) -> Value {
    json!({
        "name": "t", "version": 1,
        "inject": [{"claim": "tenant", "header": "x-mcp-tenant"}],
        "rules": [
            {"id": "no-cards-for-interns", "effect": "deny", "when": {
                "claims": [{"claim": "roles", "contains_any": ["intern"]}],
                "prompt_pii": ["card"]}},
            {"id": "chat", "effect": "allow", "when": {
                "methods": ["POST"], "path": {"exact": "/v1/chat"}}}
        ],
        "routes": {
            "rules": [
                {"id": "restricted-private",
                 "when": {"claims": [{"claim": "tenant", "equals": "restricted"}]},
                 "cluster": "llm-private",
                 "models": {"gpt-4o": "llama3-70b-private", "*": "llama3-8b-private"},
                 "fallback": "llm-default"},
                {"id": "cards-private", "when": {"prompt_pii": ["card"]},
                 "cluster": "llm-private",
                 "models": {"*": "llama3-8b-private"}},
                {"id": "general", "cluster": "llm-default"}
            ]
        },
        "pii": pii
    })
}

fn active_with(bundle: &Value) -> Arc<ActivePolicy> {
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn active() -> Arc<ActivePolicy> {
    active_with(&bundle(json!({"enabled": false})))
}

fn host_for(tenant: &str, extra: &[(&str, &str)]) -> MemoryHost {
    let mut host = MemoryHost::at(NOW_MS);
    host.set_claims(
        "jwt_payload",
        &json!({"sub": "alice", "tenant": tenant, "roles": ["user"]}),
    );
    host.request.headers = vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/v1/chat".into()),
        (":authority".into(), "api.local".into()),
        ("x-request-id".into(), "r1".into()),
        ("content-type".into(), "application/json".into()),
        ("content-length".into(), "10".into()),
    ];
    for (k, v) in extra {
        host.request.headers.push(((*k).into(), (*v).into()));
    }
    host
}

fn chat(model: &str, prompt: &str) -> Vec<u8> {
    json!({"model": model, "messages": [{"role": "user", "content": prompt}]})
        .to_string()
        .into_bytes()
}

fn header<'a>(host: &'a MemoryHost, name: &str) -> Vec<&'a str> {
    host.request
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Sends headers and a whole body; returns what the body callback said.
fn send(ex: &mut Exchange, host: &mut MemoryHost, body: &[u8]) -> Next {
    assert_eq!(ex.on_request_headers(host, false), Next::Pause);
    host.request.body = body.to_vec();
    ex.on_request_body(host, body.len(), true)
}

fn body_json(host: &MemoryHost) -> Value {
    serde_json::from_slice(&host.request.body).unwrap()
}

#[test]
fn a_restricted_tenant_goes_to_the_private_cluster_with_its_model_rewritten() {
    let policy = active();
    let mut host = host_for("restricted", &[]);
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(
        send(&mut ex, &mut host, &chat("gpt-4o", "hi")),
        Next::Continue
    );
    assert!(ex.forwarded());
    assert_eq!(header(&host, ROUTE), ["llm-private"]);
    assert_eq!(body_json(&host)["model"], "llama3-70b-private");
    // The body changed length: Envoy frames it itself.
    assert!(header(&host, "content-length").is_empty());
    assert_eq!(host.counts.routes, 1);
    assert_eq!(host.counts.route_cache_clears, 1);
    let record = host.record().unwrap();
    assert_eq!(
        record["route"],
        json!({"rule": "restricted-private", "cluster": "llm-private",
               "model": "llama3-70b-private", "fallback": "llm-default", "fell_back": false})
    );
    // `*` covers any other model.
    let mut host = host_for("restricted", &[]);
    let mut ex = Exchange::new(Some(active()));
    send(&mut ex, &mut host, &chat("mistral", "hi"));
    assert_eq!(body_json(&host)["model"], "llama3-8b-private");
}

#[test]
fn a_prompt_with_a_card_goes_private_others_to_the_default() {
    let policy = active();
    let mut host = host_for("acme", &[]);
    let mut ex = Exchange::new(Some(policy.clone()));
    send(
        &mut ex,
        &mut host,
        &chat("gpt-4o", &format!("charge {CARD}")),
    );
    assert_eq!(header(&host, ROUTE), ["llm-private"]);
    assert_eq!(host.record().unwrap()["route"]["rule"], "cards-private");
    assert_eq!(body_json(&host)["model"], "llama3-8b-private");

    let mut host = host_for("acme", &[]);
    let mut ex = Exchange::new(Some(policy));
    send(&mut ex, &mut host, &chat("gpt-4o", "what is the weather"));
    assert_eq!(header(&host, ROUTE), ["llm-default"]);
    assert_eq!(
        body_json(&host)["model"],
        "gpt-4o",
        "no rewrite on this route"
    );
    let route = &host.record().unwrap()["route"];
    assert_eq!(route["rule"], "general");
    assert!(route.get("model").is_none() && route.get("fallback").is_none());
}

/// A card hidden by JSON escapes (`\u0034` is `4`), split across them,
/// is still a card: the prompt is read as JSON, escapes decoded.
#[test]
fn a_card_hidden_in_json_escapes_is_still_found() {
    let escaped = r#"{"model":"gpt-4o","messages":[{"role":"user","content":"pay \u0034111 1111\u0020111\u0031 1111"}]}"#;
    let mut host = host_for("acme", &[]);
    let mut ex = Exchange::new(Some(active()));
    send(&mut ex, &mut host, escaped.as_bytes());
    assert_eq!(header(&host, ROUTE), ["llm-private"]);
}

#[test]
fn prompt_pii_denies_in_access_rules_too() {
    let mut host = host_for("acme", &[]);
    host.set_claims(
        "jwt_payload",
        &json!({"sub": "ian", "tenant": "acme", "roles": ["intern"]}),
    );
    let mut ex = Exchange::new(Some(active()));
    assert_eq!(
        send(&mut ex, &mut host, &chat("gpt-4o", &format!("card {CARD}"))),
        Next::Pause
    );
    assert_eq!(host.replies[0].status, 403);
    assert_eq!(host.record().unwrap()["rule"], "no-cards-for-interns");
    assert!(header(&host, ROUTE).is_empty());
    assert_eq!(host.counts.routes, 0);
}

/// The client cannot pick the private cluster nor skip it: every copy of
/// the route header, in any case, goes at the request headers — on
/// denied requests too, and with no `routes` section at all.
#[test]
fn client_sent_route_headers_are_removed_whatever_their_case_or_number() {
    for tenant in ["acme", "restricted"] {
        let mut host = host_for(
            tenant,
            &[
                (ROUTE, "llm-private"),
                ("X-MCP-Guard-Cluster", "llm-default"),
                (ROUTE, "x"),
            ],
        );
        let mut ex = Exchange::new(Some(active()));
        send(&mut ex, &mut host, &chat("gpt-4o", "hello"));
        let expected = if tenant == "acme" {
            "llm-default"
        } else {
            "llm-private"
        };
        assert_eq!(header(&host, ROUTE), [expected], "{tenant}");
    }
    // Denied: no route, and no client copy either.
    let mut host = host_for("acme", &[(ROUTE, "llm-private")]);
    host.request.headers[1].1 = "/admin".into();
    let mut ex = Exchange::new(Some(active()));
    ex.on_request_headers(&mut host, true);
    assert!(header(&host, ROUTE).is_empty());
    // No routes section: the header an Envoy route may read still goes.
    let plain = active_with(&json!({"name": "p", "version": 1, "rules": [
        {"id": "all", "effect": "allow"}]}));
    let mut host = host_for("acme", &[(ROUTE, "llm-private")]);
    let mut ex = Exchange::new(Some(plain));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    assert!(header(&host, ROUTE).is_empty());
    // No policy at all: refused, and the header is gone anyway.
    let mut host = host_for("acme", &[(ROUTE, "llm-private")]);
    Exchange::new(None).on_request_headers(&mut host, true);
    assert!(header(&host, ROUTE).is_empty());
}

#[test]
fn route_headers_in_trailers_are_removed() {
    let mut host = host_for("acme", &[]);
    let mut ex = Exchange::new(Some(active()));
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Pause);
    host.request.body = chat("gpt-4o", "hello");
    let n = host.request.body.len();
    assert_eq!(ex.on_request_body(&mut host, n, false), Next::Pause);
    host.request.trailers = vec![(ROUTE.into(), "llm-private".into())];
    assert_eq!(ex.on_request_trailers(&mut host), Next::Continue);
    assert!(host.request.trailers.is_empty());
    assert_eq!(header(&host, ROUTE), ["llm-default"]);
}

/// `model` tricks: an escaped key is the same member (rewritten), a
/// duplicate is refused before routing, a non-string model is refused.
#[test]
fn model_tricks_are_rewritten_or_refused() {
    let escaped = br#"{"mod\u0065l":"gpt-4o","messages":[]}"#;
    let mut host = host_for("restricted", &[]);
    let mut ex = Exchange::new(Some(active()));
    assert_eq!(send(&mut ex, &mut host, escaped), Next::Continue);
    assert_eq!(body_json(&host)["model"], "llama3-70b-private");
    for (body, status) in [
        (&br#"{"model":"gpt-4o","mod\u0065l":"gpt-4o"}"#[..], 400),
        (br#"{"model":"gpt-4o","Model":"x"}"#, 400),
        (br#"{"model":["gpt-4o"]}"#, 400),
    ] {
        let mut host = host_for("restricted", &[]);
        let mut ex = Exchange::new(Some(active()));
        assert_eq!(send(&mut ex, &mut host, body), Next::Pause);
        assert_eq!(
            host.replies[0].status,
            status,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(header(&host, ROUTE).is_empty());
    }
    // Too large: refused before anything is read.
    let mut host = host_for("restricted", &[]);
    let mut ex = Exchange::new(Some(active()));
    let huge = chat("gpt-4o", &"a".repeat(2 * 1024 * 1024));
    assert_eq!(send(&mut ex, &mut host, &huge), Next::Pause);
    assert_eq!(host.replies[0].status, 413);
}

#[test]
fn the_model_header_is_rewritten_with_the_body() {
    let mut b = bundle(json!({"enabled": false}));
    b["attributes"] = json!({"model_header": "x-model"});
    let policy = active_with(&b);
    let mut host = host_for("restricted", &[("x-model", "gpt-4o")]);
    let mut ex = Exchange::new(Some(policy));
    send(&mut ex, &mut host, &chat("gpt-4o", "hi"));
    assert_eq!(header(&host, "x-model"), ["llama3-70b-private"]);
    assert_eq!(body_json(&host)["model"], "llama3-70b-private");
}

/// Prompt scrubbing runs on the rewritten body: both apply.
#[test]
fn rewriting_and_prompt_scrubbing_compose() {
    let policy = active_with(&bundle(json!({"scrub_requests": true, "types": ["email"]})));
    let mut host = host_for("restricted", &[]);
    let mut ex = Exchange::new(Some(policy));
    send(&mut ex, &mut host, &chat("gpt-4o", "mail bob@example.com"));
    let body = body_json(&host);
    assert_eq!(body["model"], "llama3-70b-private");
    assert_eq!(body["messages"][0]["content"], "mail [EMAIL]");
}

// ---- released headers (Istio) ----

fn released() -> Exchange {
    Exchange::new(Some(active())).with_held_headers(false)
}

#[test]
fn released_headers_carry_the_header_route_and_the_body_must_agree() {
    // Restricted tenant: claims decide at the headers, the body agrees.
    let mut host = host_for("restricted", &[(ROUTE, "llm-default")]);
    let mut ex = released();
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Continue);
    assert_eq!(
        header(&host, ROUTE),
        ["llm-private"],
        "set before they leave"
    );
    assert!(
        header(&host, "content-length").is_empty(),
        "a rewrite can be framed"
    );
    host.request.body = chat("gpt-4o", "hi");
    let n = host.request.body.len();
    assert_eq!(ex.on_request_body(&mut host, n, true), Next::Continue);
    assert!(ex.forwarded());
    assert_eq!(body_json(&host)["model"], "llama3-70b-private");
    assert_eq!(host.record().unwrap()["route"]["cluster"], "llm-private");

    // A general tenant whose prompt holds a card: the headers went to the
    // default cluster, the body wants the private one: refused, 503, the
    // body never leaves.
    let mut host = host_for("acme", &[]);
    let mut ex = released();
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Continue);
    assert_eq!(header(&host, ROUTE), ["llm-default"]);
    let body = chat("gpt-4o", &format!("card {CARD}"));
    host.request.body = body.clone();
    assert_eq!(ex.on_request_body(&mut host, body.len(), true), Next::Pause);
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 503);
    let record = host.record().unwrap();
    assert_eq!(record["reason"], "route_unavailable");
    assert_eq!(
        record["details"]
            .as_str()
            .unwrap_or("route_needs_held_headers"),
        "route_needs_held_headers"
    );
    assert_eq!(host.counts.routes, 0);

    // No card: the same route, forwarded.
    let mut host = host_for("acme", &[]);
    let mut ex = released();
    ex.on_request_headers(&mut host, false);
    host.request.body = chat("gpt-4o", "hello");
    let n = host.request.body.len();
    assert_eq!(ex.on_request_body(&mut host, n, true), Next::Continue);
    assert_eq!(host.counts.routes, 1);
}

#[test]
fn released_headers_with_a_model_header_cannot_be_rewritten() {
    let mut b = bundle(json!({"enabled": false}));
    b["attributes"] = json!({"model_header": "x-model"});
    let policy = active_with(&b);
    let mut host = host_for("restricted", &[("x-model", "gpt-4o")]);
    let mut ex = Exchange::new(Some(policy)).with_held_headers(false);
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Continue);
    host.request.body = chat("gpt-4o", "hi");
    let n = host.request.body.len();
    assert_eq!(ex.on_request_body(&mut host, n, true), Next::Pause);
    assert_eq!(host.replies[0].status, 503);
}

/// A dry-run bundle lets denials through, never a route it cannot take.
#[test]
fn dry_run_does_not_soften_a_route_refusal() {
    let mut b = bundle(json!({"enabled": false}));
    b["dry_run"] = json!(true);
    let policy = active_with(&b);
    let mut host = host_for("acme", &[]);
    let mut ex = Exchange::new(Some(policy)).with_held_headers(false);
    ex.on_request_headers(&mut host, false);
    let body = chat("gpt-4o", &format!("card {CARD}"));
    host.request.body = body.clone();
    assert_eq!(ex.on_request_body(&mut host, body.len(), true), Next::Pause);
    assert_eq!(host.replies[0].status, 503);
}

// ---- fallback ----

fn answer(status: &str, content_type: &str, body: &[u8]) -> CalloutAnswer {
    CalloutAnswer {
        grpc_status: None,
        status: Some(status.into()),
        body: body.to_vec(),
        headers: vec![
            (":status".into(), status.into()),
            ("content-type".into(), content_type.into()),
        ],
    }
}

/// A restricted request forwarded to the private cluster, whose answer
/// is now at the response headers with `status`.
fn forwarded_restricted(pii: Value, status: &str) -> (Exchange, MemoryHost, Next) {
    let policy = active_with(&bundle(pii));
    let mut host = host_for("restricted", &[("authorization", "Bearer client")]);
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(
        send(&mut ex, &mut host, &chat("gpt-4o", "hi")),
        Next::Continue
    );
    host.response.headers = vec![
        (":status".into(), status.into()),
        ("content-type".into(), "application/json".into()),
    ];
    let next = ex.on_response_headers(&mut host, false);
    (ex, host, next)
}

#[test]
fn a_failed_private_cluster_falls_back_with_the_request_as_forwarded() {
    let (mut ex, mut host, next) = forwarded_restricted(json!({"enabled": false}), "503");
    assert_eq!(next, Next::Pause);
    assert_eq!(host.callouts.len(), 1);
    let call = host.callouts[0].clone();
    assert_eq!(call.cluster, "llm-default");
    assert_eq!(call.header(":path"), Some("/v1/chat"));
    assert_eq!(call.header(":authority"), Some("api.local"));
    assert_eq!(
        call.header("x-mcp-tenant"),
        Some("restricted"),
        "claims kept"
    );
    assert_eq!(call.header("authorization"), None, "no token passthrough");
    assert_eq!(call.header(ROUTE), None);
    assert_eq!(call.header("content-length"), None);
    let sent: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(sent["model"], "llama3-70b-private", "the body as forwarded");
    // The failed answer's body is dropped while the fallback runs.
    host.response.body = b"upstream exploded".to_vec();
    assert_eq!(ex.on_response_body(&mut host, 17, true), Next::Pause);
    assert!(host.response.body.is_empty());
    ex.on_callout_answer(
        &mut host,
        call.id,
        &answer("200", "application/json", br#"{"ok":true}"#),
    );
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 200);
    assert_eq!(host.replies[0].body, br#"{"ok":true}"#);
    assert_eq!(host.counts.route_fallbacks, 1);
    assert_eq!(host.record().unwrap()["route"]["fell_back"], true);
    // A second answer for the same call is ignored.
    ex.on_callout_answer(
        &mut host,
        call.id,
        &answer("200", "application/json", b"{}"),
    );
    assert_eq!(host.replies.len(), 1);
}

#[test]
fn a_good_answer_does_not_fall_back_and_4xx_is_an_answer() {
    for status in ["200", "404", "429"] {
        let (_, host, next) = forwarded_restricted(json!({"enabled": false}), status);
        assert_eq!(next, Next::Continue, "{status}");
        assert!(host.callouts.is_empty());
        assert_eq!(host.counts.route_fallbacks, 0);
    }
}

#[test]
fn the_fallbacks_answer_is_scrubbed_like_any_other() {
    let (mut ex, mut host, next) = forwarded_restricted(json!({"types": ["email"]}), "500");
    assert_eq!(next, Next::Pause);
    let id = host.callouts[0].id;
    ex.on_callout_answer(
        &mut host,
        id,
        &answer(
            "200",
            "application/json",
            br#"{"text":"mail bob@example.com"}"#,
        ),
    );
    assert_eq!(host.replies[0].status, 200);
    assert_eq!(host.replies[0].body, br#"{"text":"mail [EMAIL]"}"#);
    // Blocked or unreadable answers are refused, never passed.
    for (ct, body) in [
        ("application/octet-stream", &b"\x00\x01\x02binary"[..]),
        ("image/png", b"\x89PNG...."),
    ] {
        let (mut ex, mut host, _) = forwarded_restricted(json!({"types": ["email"]}), "502");
        let id = host.callouts[0].id;
        ex.on_callout_answer(&mut host, id, &answer("200", ct, body));
        assert_eq!(host.replies[0].status, 502, "{ct}");
        assert_eq!(host.counts.route_fallbacks, 0);
    }
    let (mut ex, mut host, _) = forwarded_restricted(
        json!({"types": ["email"], "actions": {"email": "block"}}),
        "500",
    );
    let id = host.callouts[0].id;
    ex.on_callout_answer(
        &mut host,
        id,
        &answer("200", "application/json", br#"{"t":"a@b.example"}"#),
    );
    assert_eq!(host.replies[0].status, 502);
    // Compressed: refused.
    let (mut ex, mut host, _) = forwarded_restricted(json!({"types": ["email"]}), "500");
    let id = host.callouts[0].id;
    let mut gz = answer("200", "application/json", b"\x1f\x8b....");
    gz.headers.push(("content-encoding".into(), "gzip".into()));
    ex.on_callout_answer(&mut host, id, &gz);
    assert_eq!(host.replies[0].status, 502);
}

#[test]
fn a_fallback_that_fails_too_is_a_502_and_oversize_is_refused() {
    let (mut ex, mut host, _) = forwarded_restricted(json!({"enabled": false}), "503");
    let id = host.callouts[0].id;
    ex.on_callout_answer(&mut host, id, &CalloutAnswer::default());
    assert_eq!(host.replies[0].status, 502);
    assert_eq!(host.record().unwrap()["route"]["fell_back"], false);

    let (mut ex, mut host, _) = forwarded_restricted(json!({"types": ["email"]}), "503");
    let id = host.callouts[0].id;
    let big = vec![b'a'; 1024 * 1024 + 1];
    ex.on_callout_answer(&mut host, id, &answer("200", "text/plain", &big));
    assert_eq!(host.replies[0].status, 502);
}

#[test]
fn a_refused_fallback_call_lets_the_failed_answer_through_checked() {
    let policy = active_with(&bundle(json!({"enabled": false})));
    let mut host = host_for("restricted", &[]);
    host.refuse_callouts = true;
    let mut ex = Exchange::new(Some(policy));
    send(&mut ex, &mut host, &chat("gpt-4o", "hi"));
    host.response.headers = vec![(":status".into(), "503".into())];
    assert_eq!(ex.on_response_headers(&mut host, false), Next::Continue);
    assert!(host.replies.is_empty());
}

#[test]
fn routes_without_fallback_never_call_out_and_released_mode_keeps_no_copy() {
    // The card route has no fallback.
    let mut host = host_for("acme", &[]);
    let mut ex = Exchange::new(Some(active()));
    send(&mut ex, &mut host, &chat("gpt-4o", &format!("card {CARD}")));
    host.response.headers = vec![(":status".into(), "500".into())];
    ex.on_response_headers(&mut host, false);
    assert!(host.callouts.is_empty());
    // Released headers: the restricted route has a fallback, but no copy
    // of the request is kept: the failed answer passes.
    let mut host = host_for("restricted", &[]);
    let mut ex = released();
    ex.on_request_headers(&mut host, false);
    host.request.body = chat("gpt-4o", "hi");
    let n = host.request.body.len();
    ex.on_request_body(&mut host, n, true);
    host.response.headers = vec![(":status".into(), "500".into())];
    ex.on_response_headers(&mut host, false);
    assert!(host.callouts.is_empty());
}

/// A JSON-RPC batch is one request to one cluster: calls that would be
/// routed apart are refused together, never split or sent to the first
/// call's cluster.
#[test]
fn a_batch_whose_calls_route_apart_is_refused() {
    let policy = active_with(&json!({
        "name": "mcp", "version": 1,
        "rules": [{"id": "tools", "effect": "allow", "when": {"mcp": {"tools": ["*"]}}}],
        "routes": {"rules": [
            {"id": "secrets", "when": {"mcp": {"tools": ["read_secret"]}}, "cluster": "mcp-vault"},
            {"id": "rest", "cluster": "mcp-default"}
        ]}
    }));
    let call = |id: u32, tool: &str| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool}});
    let mut host = host_for("acme", &[]);
    host.request.headers[1].1 = "/mcp".into();
    let mut ex = Exchange::new(Some(policy.clone()));
    let batch = json!([call(1, "get_weather"), call(2, "read_secret")]).to_string();
    assert_eq!(send(&mut ex, &mut host, batch.as_bytes()), Next::Pause);
    assert_eq!(host.replies[0].status, 503);
    assert_eq!(host.record().unwrap()["reason"], "route_unavailable");
    // Calls that agree go together.
    let mut host = host_for("acme", &[]);
    host.request.headers[1].1 = "/mcp".into();
    let mut ex = Exchange::new(Some(policy));
    let batch = json!([call(1, "read_secret"), call(2, "read_secret")]).to_string();
    assert_eq!(send(&mut ex, &mut host, batch.as_bytes()), Next::Continue);
    assert_eq!(header(&host, ROUTE), ["mcp-vault"]);
}
