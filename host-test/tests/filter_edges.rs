//! The edges of an exchange through the real `mcp_guard.wasm`: parser
//! differentials and unparseable bodies, long secrets in tiny deltas,
//! other stream shapes, MCP lists over SSE, forged header spellings and
//! labelled PII (the classes of the README's threat model that the engine
//! and flow tests cover natively, checked once more in the module).

use mcp_guard_host_test::{Host, Plugin, Stream};
use serde_json::{json, Value};

const DEMO_BUNDLE: &str = include_str!("../../policies/demo.json");

fn demo_plugin() -> Plugin {
    let bundle: Value = serde_json::from_str(DEMO_BUNDLE).unwrap();
    Host::from_env()
        .unwrap_or_else(|e| panic!("{e}"))
        .plugin(json!({ "bundle": bundle, "headers_stop_iteration": true }).to_string())
        .expect("filter starts")
}

fn bob() -> Value {
    json!({"sub": "bob", "tenant": "acme", "scope": "openid mcp:tools", "roles": ["model-user"]})
}

fn post(plugin: &Plugin, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Stream {
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", bob());
    let mut all = vec![
        (":method", "POST"),
        (":path", path),
        (":authority", "model.local"),
        ("content-type", "application/json"),
    ];
    all.extend_from_slice(headers);
    stream.request_headers(&all, false).unwrap();
    stream.request_body(body, true).unwrap();
    stream
}

fn refusal(stream: &Stream) -> (u32, Value) {
    let reply = stream.local_reply().expect("answered locally");
    (reply.status, serde_json::from_slice(&reply.body).unwrap())
}

#[test]
fn tool_calls_the_upstream_could_read_differently_are_refused() {
    let plugin = demo_plugin();
    let cases: [(&[u8], &str); 6] = [
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","name":"delete_customer"}}"#,
            "duplicate_key",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","n\u0061me":"delete_customer"}}"#,
            "duplicate_key",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather","Name":"delete_customer"}}"#,
            "case_colliding_key",
        ),
        (
            b"\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"get_weather\"}}",
            "bom",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather\ud800"}}"#,
            "lone_surrogate",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}} {"x":1}"#,
            "trailing_data",
        ),
    ];
    for (body, code) in cases {
        let stream = post(&plugin, "/mcp", &[], body);
        assert!(stream.upstream_request().is_none(), "{code}: forwarded");
        let (status, reply) = refusal(&stream);
        assert_eq!(status, 400, "{code}");
        assert_eq!(reply["reason"], "invalid_body", "{code}");
        assert_eq!(reply["detail"], code);
    }
    // The same call, written once and plainly, is allowed.
    let ok = post(
        &plugin,
        "/mcp",
        &[],
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}"#,
    );
    assert!(ok.upstream_request().is_some());
}

#[test]
fn forged_spellings_of_injected_headers_never_reach_the_upstream() {
    let plugin = demo_plugin();
    let stream = post(
        &plugin,
        "/mcp",
        &[("x_mcp_tenant", "globex"), ("X-Mcp_Subject", "root")],
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}"#,
    );
    let upstream = stream.upstream_request().expect("allowed");
    let spelled = |want: &str| -> Vec<String> {
        upstream
            .headers
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().replace('_', "-") == want)
            .map(|(_, v)| v.clone())
            .collect()
    };
    assert_eq!(spelled("x-mcp-tenant"), ["acme"]);
    assert_eq!(spelled("x-mcp-subject"), ["bob"]);
}

/// An SSE stream of chat deltas of `size` characters each.
fn chat_events(text: &str, size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(size) {
        let delta: String = piece.iter().collect();
        let chunk = json!({"choices": [{"index": 0, "delta": {"content": delta}}]});
        out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

/// The concatenated `delta.content` (or Anthropic `delta.text`) of an
/// SSE body.
fn joined(body: &str) -> String {
    body.split("\n\n")
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .or(v["delta"]["text"].as_str())
                .map(str::to_owned)
        })
        .collect()
}

fn stream_answer(plugin: &Plugin, body: &[u8], network_chunk: usize) -> String {
    let stream = post(
        plugin,
        "/v1/chat/completions",
        &[],
        br#"{"model":"demo-llm","stream":true,"messages":[]}"#,
    );
    assert!(stream.upstream_request().is_some());
    stream
        .response_headers(
            &[(":status", "200"), ("content-type", "text/event-stream")],
            false,
        )
        .unwrap();
    let chunks: Vec<&[u8]> = body.chunks(network_chunk).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        stream.response_body(chunk, i + 1 == chunks.len()).unwrap();
    }
    stream.client_response().unwrap().body_text()
}

#[test]
fn long_secrets_in_tiny_deltas_are_masked_whole() {
    let plugin = demo_plugin();
    let key_body: String = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".repeat(64);
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{key_body}\n-----END PRIVATE KEY-----");
    let text = format!("here it is: {pem} done");
    for size in [1, 4, 7] {
        let out = stream_answer(&plugin, &chat_events(&text, size), 97);
        let content = joined(&out);
        assert_eq!(
            content, "here it is: [PRIVATE_KEY] done",
            "delta size {size}"
        );
        assert!(
            !out.contains("MIIEvQIBADAN"),
            "delta size {size}: key bytes leaked"
        );
    }
}

#[test]
fn anthropic_deltas_are_tracked_across_events() {
    let plugin = demo_plugin();
    let mut body = Vec::new();
    for piece in ["Write to jane.d", "oe@exam", "ple.com today"] {
        let event = json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": piece}});
        body.extend_from_slice(format!("event: content_block_delta\ndata: {event}\n\n").as_bytes());
    }
    body.extend_from_slice(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    let out = stream_answer(&plugin, &body, 13);
    assert!(!out.contains("oe@exam"), "{out}");
    assert_eq!(joined(&out), "Write to [EMAIL] today");
}

#[test]
fn mcp_list_answers_over_sse_hide_tools() {
    let plugin = demo_plugin();
    let stream = post(
        &plugin,
        "/mcp",
        &[],
        br#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#,
    );
    assert!(stream.upstream_request().is_some());
    stream
        .response_headers(
            &[(":status", "200"), ("content-type", "text/event-stream")],
            false,
        )
        .unwrap();
    let answer = json!({"jsonrpc": "2.0", "id": 3, "result": {"tools": [
        {"name": "get_weather"}, {"name": "delete_customer"}, {"name": "search_customers"}]}});
    let body = format!("event: message\ndata: {answer}\n\n");
    let (a, b) = body.as_bytes().split_at(40);
    stream.response_body(a, false).unwrap();
    stream.response_body(b, true).unwrap();
    let out = stream.client_response().unwrap().body_text();
    assert!(
        out.contains("get_weather") && out.contains("search_customers"),
        "{out}"
    );
    assert!(!out.contains("delete_customer"), "{out}");
}

#[test]
fn labelled_bare_ssns_and_noted_phones_are_scrubbed() {
    let plugin = demo_plugin();
    let stream = post(
        &plugin,
        "/v1/chat/completions",
        &[],
        br#"{"model":"demo-llm","messages":[]}"#,
    );
    stream
        .response_headers(
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        )
        .unwrap();
    let answer = br#"{"ssn":"123456789","note":"SSN: 123456789, call 269-847-2332 (verified)","order_id":"123456789"}"#;
    stream.response_body(answer, true).unwrap();
    let out: Value = serde_json::from_str(&stream.client_response().unwrap().body_text()).unwrap();
    assert_eq!(out["ssn"], "[SSN]");
    assert_eq!(out["note"], "SSN: [SSN], call [PHONE] (verified)");
    assert_eq!(out["order_id"], "123456789", "no label, no SSN");
}
