//! Local replies pass through the filter's own response callbacks.

use mcp_guard_host_test::{pairs, Action};

use super::guest::{emitted_i32, host};

const DENY_ON_REQUEST: &str = r#"
  (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (call $emit_i32 @send_status
      (call $proxy_send_local_response (i32.const 403) @details @body @headers (i32.const -1)))
    (i32.const 1))
  (func (export "proxy_on_response_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (call $emit_i32 @response_eos (local.get $eos))
    (drop (call $proxy_add_header_map_value (i32.const 2) @seen @yes))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (call $emit_i32 @body_size (local.get $size))
    (call $emit_i32 @body_eos (local.get $eos))
    (i32.const 0))
"#;

#[test]
fn a_request_denied_locally_never_reaches_upstream() {
    let headers = pairs::encode(&[("x-reason", "policy")]);
    let plugin = host(
        &[
            ("details", b"mcp_guard_denied"),
            ("body", b"denied"),
            ("headers", &headers),
            ("seen", b"x-seen"),
        ],
        DENY_ON_REQUEST,
    )
    .plugin(b"")
    .unwrap();
    let stream = plugin.stream().unwrap();
    assert_eq!(
        stream.request_headers(&[(":path", "/")], false).unwrap(),
        Action::Pause
    );
    assert_eq!(emitted_i32(&plugin, "send_status"), 0);

    let reply = stream.local_reply().unwrap();
    assert_eq!(reply.status, 403);
    assert_eq!(reply.details, "mcp_guard_denied");
    assert_eq!(reply.body_text(), "denied");
    assert_eq!(reply.header("x-reason"), Some("policy"));
    assert_eq!(reply.grpc_status, -1);

    assert!(stream.upstream_request().is_none());
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(response.header("x-reason"), Some("policy"));
    assert_eq!(response.header("x-seen"), Some("yes"));
    assert_eq!(response.header("content-length"), Some("6"));
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.body_text(), "denied");
    assert!(response.complete);
    assert_eq!(emitted_i32(&plugin, "response_eos"), 0);
    assert_eq!(emitted_i32(&plugin, "body_size"), 6);
    assert_eq!(emitted_i32(&plugin, "body_eos"), 1);

    assert_eq!(
        stream.request_body(b"more", true).unwrap(),
        Action::NotCalled
    );
    assert_eq!(
        stream.response_headers(&[], true).unwrap(),
        Action::NotCalled
    );
    assert!(!stream.stalled());
    stream.finish().unwrap();
}

#[test]
fn a_response_replaced_by_a_local_reply() {
    let plugin = host(
        &[("details", b"scrub_failed"), ("body", b"bad gateway")],
        r#"
        (func (export "proxy_on_response_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
          (call $emit_i32 @calls (i32.add (i32.const 1) (i32.load (i32.const 400))))
          (i32.store (i32.const 400) (i32.add (i32.const 1) (i32.load (i32.const 400))))
          (drop (call $proxy_send_local_response (i32.const 502) @details @body (i32.const 0) (i32.const 0) (i32.const -1)))
          (i32.const 1))
        "#,
    )
    .plugin(b"")
    .unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/")], true).unwrap();
    assert!(stream.upstream_request().unwrap().complete);
    assert_eq!(
        stream
            .response_headers(&[(":status", "200")], false)
            .unwrap(),
        Action::Pause
    );
    // Once for the upstream headers, once for the local reply's headers.
    assert_eq!(emitted_i32(&plugin, "calls"), 2);
    assert_eq!(stream.local_reply().unwrap().status, 502);
    // The reply's headers paused again, but its body callback (not
    // exported: Continue) released them with the body.
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 502);
    assert_eq!(response.body_text(), "bad gateway");
    assert!(response.complete);
    assert!(!stream.stalled());
    assert_eq!(
        stream.response_body(b"upstream", true).unwrap(),
        Action::NotCalled
    );
}

#[test]
fn a_reset_stream_gets_no_more_callbacks() {
    let plugin = host(
        &[],
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (drop (call $proxy_close_stream (i32.const 0)))
          (i32.const 1))
        "#,
    )
    .plugin(b"")
    .unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/")], false).unwrap();
    assert!(stream.was_reset());
    assert_eq!(stream.request_body(b"x", true).unwrap(), Action::NotCalled);
    assert!(!stream.stalled());
}
