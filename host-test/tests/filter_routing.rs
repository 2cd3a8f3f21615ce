//! Routing by policy through the real `.wasm`: the route header set (and
//! Envoy asked to route again), client copies removed, models rewritten
//! in the body that reaches the upstream, prompt PII routed, the
//! released-headers mode, and the fallback replayed with the proxy's
//! HTTP call.

use mcp_guard_host_test::{Host, HttpCallResponse, Plugin, PluginOptions, Stream};
use serde_json::{json, Value};

const ROUTE: &str = "x-mcp-guard-cluster";

fn bundle() -> Value {
    json!({
        "name": "routes", "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload"},
        "inject": [{"claim": "tenant", "header": "x-mcp-tenant"}],
        "rules": [{"id": "chat", "effect": "allow", "when": {
            "methods": ["POST"], "path": {"exact": "/v1/chat"}}}],
        "routes": {"rules": [
            {"id": "restricted", "when": {"claims": [{"claim": "tenant", "equals": "restricted"}]},
             "cluster": "llm-private", "models": {"*": "llama-private"}, "fallback": "llm-default"},
            {"id": "cards", "when": {"prompt_pii": ["card"]}, "cluster": "llm-private"},
            {"id": "general", "cluster": "llm-default"}
        ]},
        "pii": {"types": ["email"]}
    })
}

fn plugin(held: bool) -> Plugin {
    let host = Host::from_env().unwrap_or_else(|e| panic!("{e}"));
    let mut config = json!({"bundle": bundle()});
    if held {
        config["headers_stop_iteration"] = json!(true);
    }
    let options = PluginOptions {
        headers_stop_iteration: held,
        ..PluginOptions::default()
    };
    host.plugin_with(config.to_string(), options)
        .expect("filter starts")
}

fn chat(plugin: &Plugin, tenant: &str, prompt: &str, extra: &[(&str, &str)]) -> Stream {
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", json!({"sub": "u", "tenant": tenant}));
    let body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt}]}).to_string();
    let len = body.len().to_string();
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/v1/chat"),
        (":authority", "api"),
        ("content-type", "application/json"),
        ("content-length", len.as_str()),
    ];
    headers.extend_from_slice(extra);
    stream.request_headers(&headers, false).unwrap();
    if stream.local_reply().is_none() {
        stream.request_body(body.as_bytes(), true).unwrap();
    }
    stream
}

fn upstream_header(stream: &Stream, name: &str) -> Vec<String> {
    let upstream = stream.upstream_request().expect("forwarded");
    upstream
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
        .collect()
}

fn upstream_body(stream: &Stream) -> Value {
    serde_json::from_slice(&stream.upstream_request().expect("forwarded").body).unwrap()
}

#[test]
fn routes_name_the_cluster_and_rewrite_the_model_in_the_real_filter() {
    let plugin = plugin(true);
    let s = chat(
        &plugin,
        "restricted",
        "hi",
        &[(ROUTE, "llm-default"), ("X-MCP-GUARD-CLUSTER", "x")],
    );
    assert_eq!(upstream_header(&s, ROUTE), ["llm-private"]);
    assert!(upstream_header(&s, "content-length").is_empty());
    assert_eq!(upstream_body(&s)["model"], "llama-private");
    assert!(s.route_cache_clears() >= 1, "Envoy must route again");
    let record: Value = serde_json::from_str(&s.filter_state()["wasm.mcp_decision"]).unwrap();
    assert_eq!(record["route"]["cluster"], "llm-private");

    let s = chat(
        &plugin,
        "acme",
        "pay with 4111 1111 1111 1111",
        &[(ROUTE, "llm-default")],
    );
    assert_eq!(upstream_header(&s, ROUTE), ["llm-private"]);
    assert_eq!(upstream_body(&s)["model"], "gpt-4o");

    let s = chat(&plugin, "acme", "hello", &[(ROUTE, "llm-private")]);
    assert_eq!(upstream_header(&s, ROUTE), ["llm-default"]);
    assert_eq!(plugin.metrics().get("mcp_routes_total").copied(), Some(3));
}

#[test]
fn a_failed_cluster_is_replayed_to_the_fallback_and_its_answer_scrubbed() {
    let plugin = plugin(true);
    let s = chat(
        &plugin,
        "restricted",
        "hi",
        &[("authorization", "Bearer client")],
    );
    assert!(s.upstream_request().is_some());
    s.response_headers(&[(":status", "503"), ("content-type", "text/plain")], false)
        .unwrap();
    let calls = s.pending_http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.upstream, "llm-default");
    let sent: Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(sent["model"], "llama-private");
    let names: Vec<&str> = call.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.contains(&"x-mcp-tenant") && !names.contains(&"authorization"),
        "{names:?}"
    );
    s.response_body(b"no healthy upstream", true).unwrap();
    s.respond_http_call(
        call.token,
        &HttpCallResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"answer":"mail bob@example.com"}"#.to_vec(),
            trailers: vec![],
        },
    )
    .unwrap();
    let reply = s
        .local_reply()
        .expect("the fallback's answer as a local reply");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, br#"{"answer":"mail [EMAIL]"}"#);
    assert_eq!(
        plugin.metrics().get("mcp_route_fallbacks_total").copied(),
        Some(1)
    );
    let record: Value = serde_json::from_str(&s.filter_state()["wasm.mcp_decision"]).unwrap();
    assert_eq!(record["route"]["fell_back"], true);
}

#[test]
fn released_headers_refuse_a_body_that_changes_the_route() {
    let plugin = plugin(false);
    let s = chat(&plugin, "acme", "card 4111 1111 1111 1111", &[]);
    let reply = s.local_reply().expect("refused");
    assert_eq!(reply.status, 503);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["reason"], "route_unavailable", "{body}");
    let upstream = s.upstream_request().expect("headers left");
    assert!(
        upstream.body.is_empty() && !upstream.complete,
        "the body never leaves"
    );

    let s = chat(&plugin, "restricted", "hi", &[]);
    assert!(s.local_reply().is_none());
    assert_eq!(upstream_header(&s, ROUTE), ["llm-private"]);
    assert_eq!(upstream_body(&s)["model"], "llama-private");
}
