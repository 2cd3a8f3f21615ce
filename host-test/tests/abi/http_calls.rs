//! HTTP calls: dispatch, answer, failure, timeout, cancellation.

use std::time::Duration;

use mcp_guard_host_test::{pairs, HostError, HttpCallResponse, PluginOptions};

use super::guest::{emitted_i32, host};

/// Pauses the request on an authorisation call; resumes on an answer,
/// replies 503 on a failure.
const AUTHZ: &str = r#"
  (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (call $emit_i32 @dispatch_status
      (call $proxy_http_call @cluster @headers @body (i32.const 0) (i32.const 0) (i32.const 5000) (i32.const 8)))
    (call $emit_i32 @token (i32.load (i32.const 8)))
    (i32.const 1))
  (func (export "proxy_on_http_call_response") (param $ctx i32) (param $token i32) (param $nh i32) (param $nb i32) (param $nt i32)
    (call $emit_i32 @cb_ctx (local.get $ctx))
    (call $emit_i32 @cb_token (local.get $token))
    (call $emit_i32 @cb_headers (local.get $nh))
    (call $emit_i32 @cb_body (local.get $nb))
    (if (local.get $nh)
      (then
        (drop (call $proxy_get_header_map_value (i32.const 6) @status_name (i32.const 0) (i32.const 4)))
        (call $emit_out @cb_status)
        (drop (call $proxy_get_buffer_bytes (i32.const 4) (i32.const 0) (local.get $nb) (i32.const 0) (i32.const 4)))
        (call $emit_out @cb_body_text)
        (drop (call $proxy_continue_stream (i32.const 0))))
      (else
        (drop (call $proxy_send_local_response (i32.const 503) @unavailable (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1))))))
  (func (export "proxy_on_request_body") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    ;; outside the callback the call response is gone
    (call $emit_i32 @late_body (call $proxy_get_buffer_bytes (i32.const 4) (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 4)))
    (call $emit_i32 @late_headers (call $proxy_get_header_map_pairs (i32.const 6) (i32.const 0) (i32.const 4)))
    (i32.const 0))
"#;

fn guest() -> mcp_guard_host_test::Host {
    let headers = pairs::encode(&[
        (":method", "POST"),
        (":path", "/check"),
        (":authority", "authz"),
    ]);
    host(
        &[
            ("cluster", b"authz-cluster"),
            ("headers", &headers),
            ("body", b"payload"),
            ("status_name", b":status"),
            ("unavailable", b"authz_unavailable"),
        ],
        AUTHZ,
    )
}

#[test]
fn an_answered_call_resumes_the_request() {
    let plugin = guest().plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/mcp")], false).unwrap();
    assert_eq!(emitted_i32(&plugin, "dispatch_status"), 0);
    let calls = plugin.pending_http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.token as i32, emitted_i32(&plugin, "token"));
    assert_eq!(call.context_id, stream.id());
    assert_eq!(call.upstream, "authz-cluster");
    assert_eq!(call.header(":path"), Some("/check"));
    assert_eq!(call.body, b"payload");
    assert_eq!(call.timeout, Duration::from_secs(5));
    assert_eq!(stream.pending_http_calls(), calls);
    assert!(stream.upstream_request().is_none());

    let answer = HttpCallResponse::new(200, "ok").header("x-a", "1");
    plugin.respond_http_call(call.token, &answer).unwrap();
    assert_eq!(emitted_i32(&plugin, "cb_ctx"), stream.id() as i32);
    assert_eq!(emitted_i32(&plugin, "cb_token"), call.token as i32);
    assert_eq!(emitted_i32(&plugin, "cb_headers"), 2);
    assert_eq!(emitted_i32(&plugin, "cb_body"), 2);
    assert_eq!(plugin.shared_data("cb_status").unwrap(), b"200");
    assert_eq!(plugin.shared_data("cb_body_text").unwrap(), b"ok");
    assert!(plugin.pending_http_calls().is_empty());
    let upstream = stream.upstream_request().unwrap();
    assert_eq!(upstream.header(":path"), Some("/mcp"));
    assert!(!upstream.complete);

    stream.request_body(b"x", true).unwrap();
    assert_eq!(
        emitted_i32(&plugin, "late_body"),
        1,
        "NotFound outside the callback"
    );
    assert_eq!(
        emitted_i32(&plugin, "late_headers"),
        2,
        "BadArgument outside the callback"
    );
    assert!(stream.upstream_request().unwrap().complete);
    assert!(matches!(
        plugin.respond_http_call(call.token, &answer),
        Err(HostError::UnknownHttpCall(_))
    ));
}

#[test]
fn a_failed_call_is_delivered_without_headers_or_body() {
    let plugin = guest().plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/mcp")], true).unwrap();
    let token = stream.pending_http_calls()[0].token;
    stream.fail_http_call(token).unwrap();
    assert_eq!(emitted_i32(&plugin, "cb_headers"), 0);
    assert_eq!(emitted_i32(&plugin, "cb_body"), 0);
    assert_eq!(stream.local_reply().unwrap().status, 503);
    assert_eq!(stream.client_response().unwrap().status, 503);
    assert!(stream.upstream_request().is_none());
}

#[test]
fn calls_time_out_when_the_clock_passes_their_deadline() {
    let plugin = guest().plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/mcp")], true).unwrap();
    plugin.advance(Duration::from_millis(4999)).unwrap();
    assert_eq!(plugin.pending_http_calls().len(), 1);
    plugin.advance(Duration::from_millis(1)).unwrap();
    assert!(plugin.pending_http_calls().is_empty());
    assert_eq!(stream.local_reply().unwrap().details, "authz_unavailable");
    assert_eq!(plugin.http_call_history().len(), 1);
}

#[test]
fn finishing_a_stream_cancels_its_calls() {
    let plugin = guest().plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/mcp")], true).unwrap();
    let token = plugin.pending_http_calls()[0].token;
    stream.finish().unwrap();
    assert!(plugin.pending_http_calls().is_empty());
    assert!(matches!(
        plugin.fail_http_call(token),
        Err(HostError::UnknownHttpCall(_))
    ));
}

#[test]
fn unknown_clusters_and_missing_pseudo_headers_are_refused() {
    let options = PluginOptions {
        known_clusters: Some(vec!["other".into()]),
        ..PluginOptions::default()
    };
    let plugin = guest().plugin_with(b"", options).unwrap();
    plugin
        .stream()
        .unwrap()
        .request_headers(&[(":path", "/")], true)
        .unwrap();
    assert_eq!(emitted_i32(&plugin, "dispatch_status"), 2);
    assert!(plugin.pending_http_calls().is_empty());

    let headers = pairs::encode(&[(":method", "GET"), (":path", "/")]);
    let plugin = host(
        &[("cluster", b"c"), ("headers", &headers), ("body", b"")],
        AUTHZ_NO_CALLBACK,
    )
    .plugin(b"")
    .unwrap();
    plugin
        .stream()
        .unwrap()
        .request_headers(&[(":path", "/")], true)
        .unwrap();
    assert_eq!(emitted_i32(&plugin, "dispatch_status"), 2);
}

const AUTHZ_NO_CALLBACK: &str = r#"
  (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (call $emit_i32 @dispatch_status
      (call $proxy_http_call @cluster @headers @body (i32.const 0) (i32.const 0) (i32.const 5000) (i32.const 8)))
    (i32.const 0))
"#;
