//! Body buffering and flow control, Envoy style.

use std::time::Duration;

use mcp_guard_host_test::{Action, HostError};

use super::guest::host;

/// Pauses headers, buffers the body until the end, then rewrites it.
const BUFFER_THEN_REWRITE: &str = r#"
  (global $calls (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store (i32.add (i32.const 300) (i32.mul (global.get $calls) (i32.const 4))) (local.get $size))
    (call $emit @sizes (i32.const 304) (i32.mul (global.get $calls) (i32.const 4)))
    (if (result i32) (local.get $eos)
      (then
        (drop (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
        (call $emit_out @seen)
        (drop (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 2) (i32.const 3) (i32.const 0) (i32.const 4)))
        (call $emit_out @window)
        (drop (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (local.get $size) @rewritten))
        (i32.const 0))
      (else (i32.const 1))))
  (func (export "proxy_on_response_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (if (result i32) (local.get $eos)
      (then
        (drop (call $proxy_set_buffer_bytes (i32.const 1) (i32.const 0) (i32.const 0) @prefix))
        (i32.const 0))
      (else (i32.const 1))))
"#;

fn sizes(plugin: &mcp_guard_host_test::Plugin) -> Vec<u32> {
    plugin
        .shared_data("sizes")
        .unwrap()
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn buffered_bodies_accumulate_and_are_released_once() {
    let plugin = host(
        &[("rewritten", b"REWRITTEN"), ("prefix", b">>")],
        BUFFER_THEN_REWRITE,
    )
    .plugin(b"")
    .unwrap();
    let stream = plugin.stream().unwrap();
    assert_eq!(
        stream.request_headers(&[(":path", "/")], false).unwrap(),
        Action::Pause
    );
    assert_eq!(stream.request_body(b"ab", false).unwrap(), Action::Pause);
    assert_eq!(stream.request_body(b"cd", false).unwrap(), Action::Pause);
    assert_eq!(sizes(&plugin), vec![2, 4]);
    assert!(
        stream.upstream_request().is_none(),
        "held headers do not leave"
    );
    assert!(!stream.stalled(), "more data may still come");
    assert_eq!(stream.request_body(b"ef", true).unwrap(), Action::Continue);
    assert_eq!(sizes(&plugin), vec![2, 4, 6]);
    assert_eq!(plugin.shared_data("seen").unwrap(), b"abcdef");
    assert_eq!(plugin.shared_data("window").unwrap(), b"cde");
    let upstream = stream.upstream_request().unwrap();
    assert_eq!(upstream.body_text(), "REWRITTEN");
    assert_eq!(upstream.chunks.len(), 1);
    assert!(upstream.complete);

    stream
        .response_headers(&[(":status", "200")], false)
        .unwrap();
    assert_eq!(stream.response_body(b"one ", false).unwrap(), Action::Pause);
    assert_eq!(stream.client_response().unwrap().body, b"");
    assert_eq!(
        stream.response_body(b"two", true).unwrap(),
        Action::Continue
    );
    let response = stream.client_response().unwrap();
    assert_eq!(response.body_text(), ">>one two");
    assert_eq!(response.chunks, vec![b">>one two".to_vec()]);
    assert!(response.complete);
}

#[test]
fn paused_headers_go_with_the_first_continued_chunk() {
    let plugin = host(
        &[],
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))"#,
    )
    .plugin(b"")
    .unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/")], false).unwrap();
    assert!(stream.upstream_request().is_none());
    assert_eq!(stream.request_body(b"ab", false).unwrap(), Action::Continue);
    let upstream = stream.upstream_request().unwrap();
    assert_eq!(upstream.chunks, vec![b"ab".to_vec()]);
    assert!(!upstream.complete);
    stream.request_body(b"cd", true).unwrap();
    let upstream = stream.upstream_request().unwrap();
    assert_eq!(upstream.chunks, vec![b"ab".to_vec(), b"cd".to_vec()]);
    assert!(upstream.complete);
}

#[test]
fn data_held_at_end_of_stream_is_reported_stalled() {
    let plugin = host(
        &[],
        r#"(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 1))"#,
    )
    .plugin(b"")
    .unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/")], false).unwrap();
    stream.request_body(b"abc", true).unwrap();
    assert!(stream.stalled());
    let upstream = stream.upstream_request().unwrap();
    assert!(upstream.body.is_empty() && !upstream.complete);

    let headers_only = host(
        &[],
        r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))"#,
    )
    .plugin(b"")
    .unwrap()
    .stream()
    .unwrap();
    headers_only
        .request_headers(&[(":path", "/")], true)
        .unwrap();
    assert!(headers_only.stalled());
    assert!(headers_only.upstream_request().is_none());
}

#[test]
fn continue_stream_from_another_context_resumes() {
    // The body is held until a tick resumes stream 2 via
    // set_effective_context + continue_stream.
    let plugin = host(
        &[],
        r#"
        (func (export "proxy_on_configure") (param i32 i32) (result i32)
          (drop (call $proxy_set_tick_period_milliseconds (i32.const 50)))
          (i32.const 1))
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))
        (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 1))
        (func (export "proxy_on_tick") (param i32)
          (call $emit_i32 @effective (call $proxy_set_effective_context (i32.const 2)))
          (call $emit_i32 @continued (call $proxy_continue_stream (i32.const 0))))
        "#,
    )
    .plugin(b"")
    .unwrap();
    assert_eq!(plugin.tick_period(), Some(Duration::from_millis(50)));
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/")], false).unwrap();
    stream.request_body(b"held", true).unwrap();
    assert!(stream.stalled());
    assert!(plugin.tick().unwrap());
    assert!(!stream.stalled());
    let upstream = stream.upstream_request().unwrap();
    assert_eq!(upstream.body, b"held");
    assert!(upstream.complete);
    assert_eq!(super::guest::emitted_i32(&plugin, "effective"), 0);
    assert_eq!(super::guest::emitted_i32(&plugin, "continued"), 0);
}

#[test]
fn out_of_order_driving_is_refused() {
    let plugin = host(&[], "").plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    let sequence = |r: Result<Action, HostError>| matches!(r, Err(HostError::Sequence { .. }));
    assert!(sequence(stream.request_body(b"x", true)));
    assert!(sequence(stream.response_headers(&[], true)));
    stream.request_headers(&[(":path", "/")], true).unwrap();
    assert!(sequence(stream.request_headers(&[(":path", "/")], true)));
    assert!(sequence(stream.request_body(b"late", true)));
    stream.finish().unwrap();
    assert!(sequence(stream.response_headers(&[], true)));
}

#[test]
fn interleaved_streams_keep_their_own_state() {
    let plugin = host(
        &[],
        r#"(func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 1))"#,
    )
    .plugin(b"")
    .unwrap();
    let a = plugin.stream().unwrap();
    let b = plugin.stream().unwrap();
    a.request_headers(&[(":path", "/a")], false).unwrap();
    b.request_headers(&[(":path", "/b")], false).unwrap();
    a.request_body(b"aaa", false).unwrap();
    b.request_body(b"b", false).unwrap();
    assert_eq!(a.upstream_request().unwrap().header(":path"), Some("/a"));
    assert_eq!(b.upstream_request().unwrap().header(":path"), Some("/b"));
    a.finish().unwrap();
    b.request_body(b"b", true).unwrap();
    assert!(b.stalled());
}
