//! Policy features through the real `.wasm`: MCP tool rules, batches, list
//! filtering, models, tenant relations, header injection and stripping,
//! body limits and dry runs.

use mcp_guard_host_test::{Host, Plugin, Stream};
use serde_json::{json, Value};

fn bundle() -> Value {
    json!({
        "name": "mcp", "version": 1,
        "inject": [
            {"claim": "sub", "header": "x-mcp-subject"},
            {"claim": "tenant", "header": "x-mcp-tenant"},
            {"claim": "roles", "header": "x-mcp-roles"}
        ],
        "limits": {"max_request_body_bytes": 2048},
        "attributes": {"model_header": "x-model"},
        "rules": [
            {"id": "mcp-basics", "effect": "allow",
             "when": {"path": {"exact": "/mcp"}, "mcp": {"methods": ["initialize", "tools/list"]}}},
            {"id": "support-tools", "effect": "allow",
             "when": {"path": {"exact": "/mcp"}, "claims": [{"claim": "roles", "contains_any": ["support"]}],
                      "mcp": {"tools": ["search_customers", "get_weather"]}}},
            {"id": "weather-for-all", "effect": "allow", "when": {"mcp": {"tools": ["get_weather"]}}},
            {"id": "no-delete", "effect": "deny", "when": {"mcp": {"tools": ["delete_*"]}}},
            {"id": "small-models", "effect": "allow",
             "when": {"path": {"exact": "/v1/chat/completions"}, "models": ["small-*"]}},
            {"id": "own-tenant-files", "effect": "allow",
             "when": {"path": {"template": "/tenants/{tenant}/files/{file*}"},
                      "relations": [{"claim": "tenant", "equals_path": "tenant"}]}},
            {"id": "shadow-block-bob", "effect": "deny", "dry_run": true,
             "when": {"claims": [{"claim": "sub", "equals": "bob"}]}}
        ]
    })
}

fn plugin_for(bundle: Value) -> Plugin {
    Host::from_env()
        .unwrap_or_else(|e| panic!("{e}"))
        .plugin(json!({ "bundle": bundle, "headers_stop_iteration": true }).to_string())
        .expect("filter starts")
}

fn alice() -> Value {
    json!({"sub": "alice", "tenant": "acme", "roles": ["support", "dev"]})
}

/// Sends a POST with a JSON body through a new stream.
fn post(
    plugin: &Plugin,
    claims: Value,
    path: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> Stream {
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", claims);
    let mut headers = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", "mcp.local"),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(extra);
    stream.request_headers(&headers, false).unwrap();
    let text = body.to_string();
    let (a, b) = text.as_bytes().split_at(text.len() / 2);
    stream.request_body(a, false).unwrap();
    stream.request_body(b, true).unwrap();
    stream
}

fn call(id: u64, tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": {}}})
}

fn decision(stream: &Stream) -> Value {
    serde_json::from_str(&stream.filter_state()["wasm.mcp_decision"]).unwrap()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn an_allowed_tool_call_reaches_the_upstream_with_injected_identity() {
    let plugin = plugin_for(bundle());
    let body = call(1, "search_customers");
    let forged = [("x-mcp-subject", "admin"), ("x-mcp-tenant", "globex")];
    let stream = post(&plugin, alice(), "/mcp", &body, &forged);
    assert!(stream.local_reply().is_none(), "{:?}", stream.local_reply());
    let upstream = stream.upstream_request().expect("reached upstream");
    assert_eq!(
        serde_json::from_slice::<Value>(&upstream.body).unwrap(),
        body,
        "body passes unchanged"
    );
    assert_eq!(
        header(&upstream.headers, "x-mcp-subject"),
        Some("alice"),
        "client copy replaced"
    );
    assert_eq!(header(&upstream.headers, "x-mcp-tenant"), Some("acme"));
    assert_eq!(
        header(&upstream.headers, "x-mcp-roles"),
        Some("support,dev")
    );
    assert_eq!(
        upstream
            .headers
            .iter()
            .filter(|(k, _)| k == "x-mcp-subject")
            .count(),
        1
    );
    let d = decision(&stream);
    assert_eq!(
        (
            d["rule"].as_str(),
            d["mcp_method"].as_str(),
            d["mcp_target"].as_str()
        ),
        (
            Some("support-tools"),
            Some("tools/call"),
            Some("search_customers")
        )
    );
}

#[test]
fn forged_identity_headers_are_stripped_even_without_the_claim() {
    let plugin = plugin_for(bundle());
    let stream = post(
        &plugin,
        json!({"sub": "carol"}),
        "/mcp",
        &call(1, "get_weather"),
        &[("x-mcp-tenant", "acme"), ("x-mcp-roles", "admin")],
    );
    let upstream = stream.upstream_request().expect("weather is for all");
    assert_eq!(header(&upstream.headers, "x-mcp-tenant"), None);
    assert_eq!(header(&upstream.headers, "x-mcp-roles"), None);
}

#[test]
fn a_denied_tool_call_names_the_rule_and_the_tool() {
    let plugin = plugin_for(bundle());
    let stream = post(&plugin, alice(), "/mcp", &call(1, "delete_customer"), &[]);
    let reply = stream.local_reply().expect("denied");
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (403, "mcp_rule_deny")
    );
    assert!(stream.upstream_request().is_none());
    let d = decision(&stream);
    assert_eq!(
        (d["rule"].as_str(), d["mcp_target"].as_str()),
        (Some("no-delete"), Some("delete_customer"))
    );
}

#[test]
fn every_call_of_a_batch_must_be_allowed() {
    let plugin = plugin_for(bundle());
    let ok = json!([call(1, "search_customers"), call(2, "get_weather")]);
    let stream = post(&plugin, alice(), "/mcp", &ok, &[]);
    assert!(stream.local_reply().is_none());
    assert_eq!(decision(&stream)["mcp_calls"], 2);

    let mixed = json!([call(1, "search_customers"), call(2, "delete_customer")]);
    let stream = post(&plugin, alice(), "/mcp", &mixed, &[]);
    assert_eq!(stream.local_reply().unwrap().status, 403);
    assert_eq!(decision(&stream)["rule"], "no-delete");

    let stream = post(&plugin, alice(), "/mcp", &json!([]), &[]);
    let reply = stream.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (400, "mcp_invalid_body")
    );
}

#[test]
fn tools_list_answers_only_show_tools_the_caller_may_call() {
    let plugin = plugin_for(bundle());
    let stream = post(
        &plugin,
        json!({"sub": "carol", "roles": ["dev"]}),
        "/mcp",
        &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}),
        &[],
    );
    assert!(stream.local_reply().is_none());
    stream
        .response_headers(
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        )
        .unwrap();
    let answer = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": [
        {"name": "search_customers", "description": "find jane@example.com"},
        {"name": "get_weather"},
        {"name": "delete_customer"}]}});
    stream
        .response_body(answer.to_string().as_bytes(), true)
        .unwrap();
    let seen: Value = serde_json::from_str(&stream.client_response().unwrap().body_text()).unwrap();
    let names: Vec<&str> = seen["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["get_weather"]);
    assert_eq!(decision(&stream)["mcp_hidden"], 2);

    let support = post(
        &plugin,
        alice(),
        "/mcp",
        &json!({"jsonrpc": "2.0", "id": 8, "method": "tools/list"}),
        &[],
    );
    support
        .response_headers(
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        )
        .unwrap();
    let answer = answer.to_string().replace("\"id\":7", "\"id\":8");
    support.response_body(answer.as_bytes(), true).unwrap();
    let seen: Value =
        serde_json::from_str(&support.client_response().unwrap().body_text()).unwrap();
    assert_eq!(
        seen["result"]["tools"].as_array().unwrap().len(),
        2,
        "support sees search + weather"
    );
    assert_eq!(
        seen["result"]["tools"][0]["description"], "find [EMAIL]",
        "and PII is still scrubbed"
    );
}

#[test]
fn models_come_from_the_body_or_the_model_header() {
    let plugin = plugin_for(bundle());
    let chat = |model: &str| json!({"model": model, "messages": []});
    let small = post(
        &plugin,
        alice(),
        "/v1/chat/completions",
        &chat("small-7b"),
        &[],
    );
    assert!(small.local_reply().is_none());
    assert_eq!(decision(&small)["model"], "small-7b");
    let big = post(
        &plugin,
        alice(),
        "/v1/chat/completions",
        &chat("huge-400b"),
        &[("x-model", "small-7b")],
    );
    // The upstream may read either: a header that contradicts the body
    // is refused rather than one of them trusted.
    assert_eq!(
        big.local_reply().unwrap().status,
        400,
        "a model header that contradicts the body is refused"
    );
    let headed = post(
        &plugin,
        alice(),
        "/v1/chat/completions",
        &json!({"messages": []}),
        &[("x-model", "small-1b")],
    );
    assert!(headed.local_reply().is_none());
}

#[test]
fn oversized_bodies_get_413() {
    let plugin = plugin_for(bundle());
    let big = json!({"model": "small-1", "messages": [{"content": "x".repeat(4096)}]});
    let stream = post(&plugin, alice(), "/v1/chat/completions", &big, &[]);
    let reply = stream.local_reply().expect("refused");
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (413, "mcp_body_too_large")
    );
    assert!(stream.upstream_request().is_none());
}

#[test]
fn tenants_only_reach_their_own_paths() {
    let plugin = plugin_for(bundle());
    let get = |path: &str| {
        let stream = plugin.stream().unwrap();
        stream.set_jwt_payload("jwt_payload", alice());
        stream
            .request_headers(
                &[(":method", "GET"), (":path", path), (":authority", "h")],
                true,
            )
            .unwrap();
        stream.local_reply().map(|r| r.status)
    };
    assert_eq!(get("/tenants/acme/files/report.pdf"), None);
    assert_eq!(get("/tenants/globex/files/report.pdf"), Some(403));
}

#[test]
fn dry_run_rules_are_logged_and_traffic_passes() {
    let plugin = plugin_for(bundle());
    let stream = post(
        &plugin,
        json!({"sub": "bob"}),
        "/mcp",
        &call(1, "get_weather"),
        &[],
    );
    assert!(stream.local_reply().is_none());
    let d = decision(&stream);
    assert_eq!(d["decision"], "allow");
    assert_eq!(d["dry_run"]["rule"], "shadow-block-bob");
    assert_eq!(d["dry_run"]["decision"], "deny");
}

#[test]
fn a_dry_run_bundle_passes_everything_and_records_the_real_outcome() {
    let mut b = bundle();
    b["dry_run"] = json!(true);
    let plugin = plugin_for(b);
    let stream = post(&plugin, alice(), "/mcp", &call(1, "delete_customer"), &[]);
    assert!(stream.local_reply().is_none(), "dry run never blocks");
    let d = decision(&stream);
    assert_eq!(
        (d["decision"].as_str(), d["reason"].as_str()),
        (Some("allow"), Some("dry_run"))
    );
    assert_eq!(d["dry_run"]["rule"], "no-delete");

    let anonymous = plugin.stream().unwrap();
    anonymous
        .request_headers(
            &[(":method", "GET"), (":path", "/x"), (":authority", "h")],
            true,
        )
        .unwrap();
    assert!(anonymous.local_reply().is_none());
    assert_eq!(decision(&anonymous)["dry_run"]["reason"], "missing_token");
}
