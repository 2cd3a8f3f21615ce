//! Trailers, driven as Envoy 1.40 delivers them (docs/envoy-trailers.md):
//! they end the stream instead of an end-of-stream body callback; a paused
//! body is visible and replaceable there, a streamed one is not; a map is
//! gone once its callback continued.

use mcp_guard_host_test::{Action, HostError};

use super::guest::{emitted_i32, host};

const OK: i32 = 0;
const NOT_FOUND: i32 = 1;
const BAD_ARGUMENT: i32 = 2;

fn strings() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("x_t", b"x-t"),
        ("x_up", b"x-up"),
        ("x_kept", b"x-kept"),
        ("x_late", b"x-late"),
        ("x_added", b"x-added"),
        ("x_deny", b"x-deny"),
        ("content_length", b"content-length"),
        ("status", b":status"),
        ("s502", b"502"),
        ("one", b"1"),
        ("replaced", b"REPLACED"),
        ("scrubbed", b"SCRUBBED"),
        ("extra", b"EXTRA"),
        ("details", b"denied_at_trailers"),
        ("denied", b"denied"),
    ]
}

/// Holds headers and buffers both bodies; decides and rewrites everything
/// in the trailers callbacks, as a filter must when no body callback ever
/// sees `end_of_stream`.
const BUFFERED: &str = r#"
  (global $rq (mut i32) (i32.const 0))
  (global $rs (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (global.set $rq (local.get $size))
    (call $emit_i32 @eos_seen (local.get $eos))
    (call $emit_i32 @rq_trailer_in_body (call $proxy_get_header_map_value (i32.const 1) @x_t (i32.const 0) (i32.const 4)))
    (i32.const 1))
  (func (export "proxy_on_request_trailers") (param $id i32) (param $n i32) (result i32)
    (call $emit_i32 @rq_n (local.get $n))
    (drop (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (global.get $rq) (i32.const 0) (i32.const 4)))
    (call $emit_out @rq_body)
    (drop (call $proxy_get_header_map_value (i32.const 1) @x_t (i32.const 0) (i32.const 4)))
    (call $emit_out @rq_trailer)
    (call $emit_i32 @rq_set (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (global.get $rq) @replaced))
    (call $emit_i32 @rq_cl (call $proxy_remove_header_map_value (i32.const 0) @content_length))
    (call $emit_i32 @rq_add (call $proxy_add_header_map_value (i32.const 1) @x_added @one))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_response_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (global.set $rs (local.get $size))
    (i32.const 1))
  (func (export "proxy_on_response_trailers") (param $id i32) (param $n i32) (result i32)
    (drop (call $proxy_get_buffer_bytes (i32.const 1) (i32.const 0) (global.get $rs) (i32.const 0) (i32.const 4)))
    (call $emit_out @rs_body)
    (call $emit_i32 @rs_set (call $proxy_set_buffer_bytes (i32.const 1) (i32.const 0) (global.get $rs) @scrubbed))
    (call $emit_i32 @rs_status (call $proxy_replace_header_map_value (i32.const 2) @status @s502))
    (drop (call $proxy_remove_header_map_value (i32.const 2) @content_length))
    (drop (call $proxy_remove_header_map_value (i32.const 3) @x_up))
    (drop (call $proxy_add_header_map_value (i32.const 3) @x_added @one))
    (i32.const 0))
"#;

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn a_buffered_body_is_decided_and_rewritten_at_trailers() {
    let plugin = host(&strings(), BUFFERED).plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    let headers = [(":method", "POST"), (":path", "/"), ("content-length", "6")];
    assert_eq!(
        stream.request_headers(&headers, false).unwrap(),
        Action::Pause
    );
    assert_eq!(stream.request_body(b"abc", false).unwrap(), Action::Pause);
    assert_eq!(stream.request_body(b"def", false).unwrap(), Action::Pause);
    assert_eq!(emitted_i32(&plugin, "eos_seen"), 0);
    assert_eq!(
        emitted_i32(&plugin, "rq_trailer_in_body"),
        BAD_ARGUMENT,
        "no trailer map before the trailers arrive"
    );
    assert!(stream.upstream_request().is_none());
    assert!(!stream.stalled(), "trailers may still come");

    assert_eq!(
        stream.request_trailers(&[("x-t", "v")]).unwrap(),
        Action::Continue
    );
    assert_eq!(emitted_i32(&plugin, "rq_n"), 1);
    assert_eq!(plugin.shared_data("rq_body").unwrap(), b"abcdef");
    assert_eq!(plugin.shared_data("rq_trailer").unwrap(), b"v");
    for key in ["rq_set", "rq_cl", "rq_add"] {
        assert_eq!(emitted_i32(&plugin, key), OK, "{key}");
    }
    let upstream = stream.upstream_request().unwrap();
    assert!(upstream.complete);
    assert_eq!(upstream.body_text(), "REPLACED");
    assert_eq!(upstream.chunks.len(), 1);
    assert_eq!(upstream.header("content-length"), None);
    assert_eq!(upstream.trailers, pairs(&[("x-t", "v"), ("x-added", "1")]));
    assert_eq!(upstream.trailer("x-added"), Some("1"));
    assert_eq!(upstream.content_length_mismatch(), None);

    let response = [(":status", "200"), ("content-length", "11")];
    assert_eq!(
        stream.response_headers(&response, false).unwrap(),
        Action::Pause
    );
    assert_eq!(
        stream.response_body(b"jane@x.com ", false).unwrap(),
        Action::Pause
    );
    assert!(stream.client_response().is_none());
    assert_eq!(
        stream
            .response_trailers(&[("x-up", "1"), ("grpc-status", "0")])
            .unwrap(),
        Action::Continue
    );
    assert_eq!(plugin.shared_data("rs_body").unwrap(), b"jane@x.com ");
    assert_eq!(emitted_i32(&plugin, "rs_set"), OK);
    assert_eq!(emitted_i32(&plugin, "rs_status"), OK);
    let client = stream.client_response().unwrap();
    assert!(client.complete);
    assert_eq!(client.status, 502, "held headers can still change");
    assert_eq!(client.body_text(), "SCRUBBED");
    assert_eq!(client.header("content-length"), None);
    assert_eq!(
        client.trailers,
        pairs(&[("grpc-status", "0"), ("x-added", "1")])
    );
    assert_eq!(client.content_length_mismatch(), None);
    assert!(!stream.stalled());
}

/// Lets headers and bodies stream; probes what the trailers callbacks (and
/// `proxy_on_log`) can still reach.
const STREAMING: &str = r#"
  (func (export "proxy_on_request_trailers") (param $id i32) (param $n i32) (result i32)
    (call $emit_i32 @rq_get (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 0) (i32.const 4)))
    (call $emit_i32 @rq_set (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 0) @extra))
    (call $emit_i32 @rq_hdr (call $proxy_replace_header_map_value (i32.const 0) @x_late @one))
    (call $emit_i32 @rq_trl (call $proxy_add_header_map_value (i32.const 1) @x_added @one))
    (i32.const 0))
  (func (export "proxy_on_response_trailers") (param $id i32) (param $n i32) (result i32)
    (call $emit_i32 @rs_get (call $proxy_get_buffer_bytes (i32.const 1) (i32.const 0) (i32.const 1000) (i32.const 0) (i32.const 4)))
    (call $emit_i32 @rs_set (call $proxy_set_buffer_bytes (i32.const 1) (i32.const 0) (i32.const 0) @extra))
    (call $emit_i32 @rs_status (call $proxy_replace_header_map_value (i32.const 2) @status @s502))
    (call $emit_i32 @rs_trl (call $proxy_remove_header_map_value (i32.const 3) @x_up))
    (i32.const 0))
  (func (export "proxy_on_log") (param $id i32)
    (drop (call $proxy_get_header_map_value (i32.const 3) @x_kept (i32.const 0) (i32.const 4)))
    (call $emit_out @log_trailer)
    (drop (call $proxy_get_header_map_value (i32.const 2) @status (i32.const 0) (i32.const 4)))
    (call $emit_out @log_status)
    (call $emit_i32 @log_write (call $proxy_add_header_map_value (i32.const 3) @x_added @one))
    (call $emit_i32 @log_rq_trailer (call $proxy_get_header_map_value (i32.const 1) @x_t (i32.const 0) (i32.const 4))))
"#;

#[test]
fn after_streaming_the_body_and_continued_headers_are_out_of_reach() {
    let plugin = host(&strings(), STREAMING).plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    stream
        .request_headers(&[(":method", "POST"), (":path", "/")], false)
        .unwrap();
    stream.request_body(b"abc", false).unwrap();
    stream.request_body(b"def", false).unwrap();
    let partial = stream.upstream_request().unwrap();
    assert!(!partial.complete && partial.trailers.is_empty());
    assert_eq!(
        stream.request_trailers(&[("x-t", "v")]).unwrap(),
        Action::Continue
    );
    // Envoy: nothing buffered to read, nothing to append to, headers gone;
    // the trailers themselves are editable.
    assert_eq!(emitted_i32(&plugin, "rq_get"), NOT_FOUND);
    assert_eq!(emitted_i32(&plugin, "rq_set"), BAD_ARGUMENT);
    assert_eq!(emitted_i32(&plugin, "rq_hdr"), BAD_ARGUMENT);
    assert_eq!(emitted_i32(&plugin, "rq_trl"), OK);
    let upstream = stream.upstream_request().unwrap();
    assert!(upstream.complete);
    assert_eq!(upstream.chunks, vec![b"abc".to_vec(), b"def".to_vec()]);
    assert_eq!(upstream.header("x-late"), None);
    assert_eq!(upstream.trailers, pairs(&[("x-t", "v"), ("x-added", "1")]));

    stream
        .response_headers(&[(":status", "200"), ("content-length", "5")], false)
        .unwrap();
    stream.response_body(b"hello", false).unwrap();
    assert_eq!(
        stream
            .response_trailers(&[("x-up", "1"), ("x-kept", "keep")])
            .unwrap(),
        Action::Continue
    );
    assert_eq!(emitted_i32(&plugin, "rs_get"), NOT_FOUND);
    assert_eq!(
        emitted_i32(&plugin, "rs_set"),
        BAD_ARGUMENT,
        "nothing can be appended at trailers after streaming"
    );
    assert_eq!(emitted_i32(&plugin, "rs_status"), BAD_ARGUMENT);
    assert_eq!(emitted_i32(&plugin, "rs_trl"), OK);
    let client = stream.client_response().unwrap();
    assert_eq!(client.status, 200);
    assert_eq!(client.body_text(), "hello");
    assert_eq!(client.trailers, pairs(&[("x-kept", "keep")]));
    assert_eq!(client.content_length_mismatch(), None);

    stream.finish().unwrap();
    assert_eq!(plugin.shared_data("log_trailer").unwrap(), b"keep");
    assert_eq!(plugin.shared_data("log_status").unwrap(), b"200");
    assert_eq!(emitted_i32(&plugin, "log_write"), BAD_ARGUMENT);
    assert_eq!(
        emitted_i32(&plugin, "log_rq_trailer"),
        BAD_ARGUMENT,
        "Envoy keeps no access-log copy of request trailers"
    );
}

/// Decides at request trailers: `x-deny` in the trailers gets a 403 local
/// reply; anything else is held until the next tick resumes it.
const GATE: &str = r#"
  (global $held (mut i32) (i32.const 0))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_set_tick_period_milliseconds (i32.const 100)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_trailers") (param $id i32) (param $n i32) (result i32)
    (if (i32.eqz (call $proxy_get_header_map_value (i32.const 1) @x_deny (i32.const 0) (i32.const 4)))
      (then
        (drop (call $proxy_send_local_response (i32.const 403) @details @denied (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 1))))
    (global.set $held (local.get $id))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (if (global.get $held)
      (then
        (drop (call $proxy_set_effective_context (global.get $held)))
        (drop (call $proxy_continue_stream (i32.const 0)))
        (global.set $held (i32.const 0)))))
"#;

#[test]
fn a_paused_trailers_callback_holds_everything_until_resume_or_reply() {
    let plugin = host(&strings(), GATE).plugin(b"").unwrap();

    let denied = plugin.stream().unwrap();
    denied
        .request_headers(&[(":method", "POST"), (":path", "/")], false)
        .unwrap();
    denied.request_body(b"payload", false).unwrap();
    assert_eq!(
        denied
            .request_trailers(&[("x-deny", "smuggled in a trailer")])
            .unwrap(),
        Action::Pause
    );
    assert!(denied.upstream_request().is_none(), "upstream saw nothing");
    assert_eq!(denied.local_reply().unwrap().status, 403);
    let client = denied.client_response().unwrap();
    assert_eq!(
        (client.status, client.body_text().as_str()),
        (403, "denied")
    );
    assert!(client.trailers.is_empty());
    assert_eq!(
        denied
            .response_headers(&[(":status", "200")], false)
            .unwrap(),
        Action::NotCalled
    );
    assert!(!denied.stalled());

    let held = plugin.stream().unwrap();
    held.request_headers(&[(":method", "POST"), (":path", "/")], false)
        .unwrap();
    held.request_body(b"payload", false).unwrap();
    assert_eq!(
        held.request_trailers(&[("x-t", "v")]).unwrap(),
        Action::Pause
    );
    assert!(held.upstream_request().is_none());
    assert!(
        held.stalled(),
        "held at the end with nothing to resume it yet"
    );
    assert!(plugin.tick().unwrap());
    let upstream = held.upstream_request().unwrap();
    assert!(upstream.complete && !held.stalled());
    assert_eq!(upstream.body_text(), "payload");
    assert_eq!(upstream.trailers, pairs(&[("x-t", "v")]));
}

fn sequence_error(result: Result<Action, HostError>) -> String {
    match result {
        Err(HostError::Sequence { message, .. }) => message,
        other => panic!("expected a sequence error, got {other:?}"),
    }
}

#[test]
fn trailers_follow_envoy_ordering() {
    let plugin = host(&strings(), "").plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    assert!(sequence_error(stream.request_trailers(&[("a", "1")])).contains("before headers"));
    stream
        .request_headers(&[(":method", "POST"), (":path", "/")], false)
        .unwrap();
    // No body at all: headers, then trailers (Envoy skips the empty DATA).
    assert_eq!(
        stream.request_trailers(&[("a", "1")]).unwrap(),
        Action::Continue
    );
    let upstream = stream.upstream_request().unwrap();
    assert!(upstream.complete && upstream.body.is_empty());
    assert_eq!(upstream.trailers, pairs(&[("a", "1")]));
    assert!(sequence_error(stream.request_trailers(&[("a", "2")])).contains("after end_of_stream"));
    assert!(sequence_error(stream.request_body(b"late", false)).contains("after end_of_stream"));
    assert!(sequence_error(stream.response_trailers(&[("b", "1")])).contains("before headers"));
    stream
        .response_headers(&[(":status", "200")], true)
        .unwrap();
    assert!(sequence_error(stream.response_trailers(&[("b", "1")])).contains("after end_of_stream"));

    let ended = plugin.stream().unwrap();
    ended
        .request_headers(&[(":method", "POST"), (":path", "/")], false)
        .unwrap();
    ended.request_body(b"x", true).unwrap();
    assert!(sequence_error(ended.request_trailers(&[("a", "1")])).contains("after end_of_stream"));
}

#[test]
fn a_content_length_the_body_does_not_match_is_reported() {
    let plugin = host(&strings(), "").plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    stream
        .request_headers(
            &[(":method", "POST"), (":path", "/"), ("content-length", "5")],
            false,
        )
        .unwrap();
    stream.request_body(b"abc", false).unwrap();
    assert_eq!(
        stream.upstream_request().unwrap().content_length_mismatch(),
        None,
        "not complete yet"
    );
    stream.request_trailers(&[("a", "1")]).unwrap();
    assert_eq!(
        stream.upstream_request().unwrap().content_length_mismatch(),
        Some(("5".to_string(), 3))
    );
}
