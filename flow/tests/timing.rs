//! Latency accounting: the time callbacks take is added to the side they
//! belong to and recorded once per exchange.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::timing::Durations;
use mcp_guard_flow::{ActivePolicy, Exchange, Next, Side};
use serde_json::json;

/// Every clock reading moves the clock by this much: one timed callback
/// takes exactly 1 µs.
const STEP_NS: u64 = 1_000;

fn active(pii: bool) -> Arc<ActivePolicy> {
    let bundle = json!({
        "name": "t",
        "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "rules": [{"id": "tools", "effect": "allow", "when": {
            "path": {"exact": "/mcp"}, "mcp": {"tools": ["get_weather"]}}}],
        "pii": {"enabled": pii}
    });
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn host(token: bool) -> MemoryHost {
    let mut host = MemoryHost::at(1_800_000_000_000);
    host.clock_step_ns = STEP_NS;
    if token {
        host.set_claims("jwt_payload", &json!({"sub": "alice"}));
    }
    host.request.headers = vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/mcp".into()),
        (":authority".into(), "api.local".into()),
    ];
    host
}

/// Request headers and a two-chunk MCP call, each callback timed (the
/// rule reads the body, so the decision waits for its end).
fn request(ex: &mut Exchange, host: &mut MemoryHost) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_weather"}})
    .to_string()
    .into_bytes();
    let (first, rest) = body.split_at(10);
    ex.timed(host, Side::Request, |x, h| x.on_request_headers(h, false));
    host.request.body = first.to_vec();
    ex.timed(host, Side::Request, |x, h| x.on_request_body(h, 10, false));
    assert!(!ex.decided());
    host.request.body.extend_from_slice(rest);
    let n = body.len();
    ex.timed(host, Side::Request, |x, h| x.on_request_body(h, n, true));
}

/// A JSON answer in two chunks, each callback timed.
fn response(ex: &mut Exchange, host: &mut MemoryHost, body: &[u8]) {
    host.response.headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    ex.timed(host, Side::Response, |x, h| x.on_response_headers(h, false));
    let (first, rest) = body.split_at(body.len() / 2);
    host.response.body = first.to_vec();
    let n = host.response.body.len();
    let held = ex.timed(host, Side::Response, |x, h| x.on_response_body(h, n, false));
    if held == Next::Continue {
        host.response.body.clear();
    }
    host.response.body.extend_from_slice(rest);
    let n = host.response.body.len();
    ex.timed(host, Side::Response, |x, h| x.on_response_body(h, n, true));
}

#[test]
fn decision_and_scrub_time_are_recorded_once_per_exchange() {
    let mut host = host(true);
    let mut ex = Exchange::new(Some(active(true)));
    request(&mut ex, &mut host);
    assert!(ex.forwarded());
    // A request-side callback after the decision is not decision time.
    ex.timed(&mut host, Side::Request, |x, h| x.on_request_trailers(h));
    response(&mut ex, &mut host, br#"{"mail":"jane.doe@example.com"}"#);
    assert_eq!(host.counts.redactions, 1);
    ex.finish_timing(&mut host);
    ex.finish_timing(&mut host);
    assert_eq!(
        host.durations,
        vec![Durations {
            decision_us: Some(3),
            scrub_us: Some(2),
        }]
    );
}

#[test]
fn an_answer_not_read_records_no_scrub_time() {
    let mut host = host(true);
    let mut ex = Exchange::new(Some(active(false)));
    request(&mut ex, &mut host);
    response(&mut ex, &mut host, br#"{"mail":"jane.doe@example.com"}"#);
    ex.finish_timing(&mut host);
    assert_eq!(host.durations[0].decision_us, Some(3));
    assert_eq!(host.durations[0].scrub_us, None);
}

#[test]
fn a_denied_request_records_its_decision_time_and_its_reply_no_scrub_time() {
    let mut host = host(false);
    let mut ex = Exchange::new(Some(active(true)));
    let next = ex.timed(&mut host, Side::Request, |x, h| {
        x.on_request_headers(h, true)
    });
    assert_eq!(next, Next::Pause);
    assert_eq!(host.replies.len(), 1);
    // Envoy runs the local reply back through the response callbacks.
    host.response.headers = vec![(":status".into(), "401".into())];
    ex.timed(&mut host, Side::Response, |x, h| {
        x.on_response_headers(h, false)
    });
    host.response.body = host.replies[0].body.clone();
    let n = host.response.body.len();
    ex.timed(&mut host, Side::Response, |x, h| {
        x.on_response_body(h, n, true)
    });
    ex.finish_timing(&mut host);
    assert_eq!(
        host.durations,
        vec![Durations {
            decision_us: Some(1),
            scrub_us: None,
        }]
    );
}

#[test]
fn a_stream_reset_before_the_decision_records_no_decision_time() {
    let mut host = host(true);
    let mut ex = Exchange::new(Some(active(true)));
    ex.timed(&mut host, Side::Request, |x, h| {
        x.on_request_headers(h, false)
    });
    assert!(!ex.decided());
    ex.finish_timing(&mut host);
    assert_eq!(host.durations, vec![Durations::default()]);
}
