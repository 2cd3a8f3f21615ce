//! HTTP/2 trailers through the real `mcp_guard.wasm`, delivered as Envoy
//! 1.40 does (docs/envoy-trailers.md): no body callback ever sees
//! `end_of_stream`, the trailers callback is the last one.
//!
//! Ignored until the filter decides at request trailers and finishes
//! scrubbing at response trailers: the filter at the time of writing lets a
//! forbidden request through when it carries a trailer (the trailers
//! callback continues the held request undecided) and releases an unscrubbed
//! buffered answer when upstream adds one.

use mcp_guard_host_test::{Host, Plugin, Stream};
use serde_json::{json, Value};

const DEMO_BUNDLE: &str = include_str!("../../policies/demo.json");

const CHAT_BODY: &[u8] = br#"{"model":"demo-llm","messages":[{"role":"user","content":"hi"}]}"#;

fn demo_plugin() -> Plugin {
    let bundle: Value = serde_json::from_str(DEMO_BUNDLE).unwrap();
    Host::from_env()
        .unwrap_or_else(|e| panic!("{e}"))
        .plugin(json!({ "bundle": bundle, "headers_stop_iteration": true }).to_string())
        .expect("filter starts")
}

/// A chat request whose body is split in two and ends with a trailer.
fn chat_with_trailer(plugin: &Plugin, claims: Value) -> Stream {
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", claims);
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "model.local"),
        ("content-type", "application/json"),
        ("x-request-id", "req-42"),
    ];
    stream.request_headers(&headers, false).unwrap();
    let (a, b) = CHAT_BODY.split_at(20);
    stream.request_body(a, false).unwrap();
    stream.request_body(b, false).unwrap();
    stream.request_trailers(&[("x-checksum", "1")]).unwrap();
    stream
}

#[test]
fn a_trailer_does_not_let_a_forbidden_caller_through() {
    let plugin = demo_plugin();
    let stream = chat_with_trailer(&plugin, json!({"sub": "mallory", "roles": ["viewer"]}));
    assert!(
        stream.upstream_request().is_none(),
        "a forbidden request reached upstream"
    );
    assert_eq!(stream.local_reply().expect("answered locally").status, 403);
    assert!(!stream.stalled());
}

#[test]
fn an_answer_ending_with_trailers_is_scrubbed_before_the_client_sees_it() {
    let plugin = demo_plugin();
    let claims = json!({"sub": "alice", "roles": ["model-user"], "exp": 1.9e9});
    let stream = chat_with_trailer(&plugin, claims);
    let upstream = stream.upstream_request().expect("allowed");
    assert!(upstream.complete);
    assert_eq!(upstream.body, CHAT_BODY);
    assert_eq!(upstream.trailer("x-checksum"), Some("1"));

    let answer = br#"{"choices":[{"message":{"content":"Mail jane.doe@example.com now"}}]}"#;
    let length = answer.len().to_string();
    stream
        .response_headers(
            &[
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", length.as_str()),
            ],
            false,
        )
        .unwrap();
    let (a, b) = answer.split_at(40);
    stream.response_body(a, false).unwrap();
    stream.response_body(b, false).unwrap();
    stream.response_trailers(&[("grpc-status", "0")]).unwrap();
    let client = stream.client_response().expect("answered");
    assert!(client.complete);
    assert!(
        !client.body_text().contains("jane.doe@example.com"),
        "PII leaked: {}",
        client.body_text()
    );
    assert!(client.body_text().contains("[EMAIL]"));
    assert_eq!(client.content_length_mismatch(), None);
    assert_eq!(client.trailer("grpc-status"), Some("0"));
}
