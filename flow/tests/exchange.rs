//! The exchange state machine driven natively through an in-memory host:
//! every way a request or answer can end (body end, trailers, resets,
//! callbacks out of order) is decided or refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::{deliver_response_body, MemoryHost};
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde_json::{json, Value};

const NOW_MS: u64 = 1_800_000_000_000;

fn bundle(extra_pii: Value) -> Value {
    let mut pii = json!({"enabled": true});
    if let (Some(p), Some(extra)) = (pii.as_object_mut(), extra_pii.as_object()) {
        for (k, v) in extra {
            p.insert(k.clone(), v.clone());
        }
    }
    json!({
        "name": "t",
        "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "attributes": {"model_header": "x-model"},
        "inject": [{"claim": "tenant", "header": "x-mcp-tenant"}],
        "rules": [
            {"id": "tools", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"tools": ["get_weather"]}}},
            {"id": "session", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"methods": ["tools/list", "initialize"]}}},
            {"id": "chat", "effect": "allow", "when": {
                "path": {"exact": "/v1/chat"}, "models": ["demo-*"]}},
            {"id": "plain", "effect": "allow", "when": {"path": {"prefix": "/plain/"}}}
        ],
        "pii": pii
    })
}

fn active(bundle: &Value) -> Arc<ActivePolicy> {
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn host_for(path: &str, extra: &[(&str, &str)]) -> MemoryHost {
    let mut host = MemoryHost::at(NOW_MS);
    host.set_claims("jwt_payload", &json!({"sub": "alice", "tenant": "acme"}));
    let mut headers = vec![
        (":method".to_string(), "POST".to_string()),
        (":path".to_string(), path.to_string()),
        (":authority".to_string(), "api.local".to_string()),
        ("x-request-id".to_string(), "r1".to_string()),
    ];
    headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    host.request.headers = headers;
    host
}

fn call(tool: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool}})
        .to_string()
        .into_bytes()
}

/// How a request body reaches the filter.
#[derive(Debug, Clone, Copy)]
enum Ending {
    /// The last body chunk has `end_of_stream`.
    BodyEnd,
    /// Trailers follow the last chunk (HTTP/2).
    Trailers,
}

/// Sends a request through the exchange as Envoy would: body chunks
/// accumulate while the flow pauses. Returns whether it was forwarded.
fn send_request(
    ex: &mut Exchange,
    host: &mut MemoryHost,
    body: &[u8],
    cuts: &[usize],
    ending: Ending,
) -> bool {
    if body.is_empty() && matches!(ending, Ending::BodyEnd) {
        return ex.on_request_headers(host, true) == Next::Continue && ex.forwarded();
    }
    let mut paused = ex.on_request_headers(host, false) == Next::Pause;
    let mut start = 0;
    let mut pieces: Vec<&[u8]> = Vec::new();
    for &cut in cuts {
        let cut = cut.min(body.len());
        if cut > start {
            pieces.push(&body[start..cut]);
            start = cut;
        }
    }
    pieces.push(&body[start..]);
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate() {
        if !paused {
            host.request.body.clear();
        }
        host.request.body.extend_from_slice(piece);
        let eos = i == last && matches!(ending, Ending::BodyEnd);
        let size = host.request.body.len();
        paused = ex.on_request_body(host, size, eos) == Next::Pause;
        if !paused && !ex.forwarded() {
            panic!("body released without a decision");
        }
    }
    if matches!(ending, Ending::Trailers) {
        paused = ex.on_request_trailers(host) == Next::Pause;
    }
    !paused && ex.forwarded()
}

/// A small deterministic generator for property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn trailers_end_the_body_and_the_decision_is_taken_there() {
    let policy = active(&bundle(json!({})));
    for (tool, allowed) in [("get_weather", true), ("delete_customer", false)] {
        let mut host = host_for("/mcp", &[("content-type", "application/json")]);
        let mut ex = Exchange::new(Some(policy.clone()));
        let forwarded = send_request(&mut ex, &mut host, &call(tool), &[7], Ending::Trailers);
        assert_eq!(forwarded, allowed, "{tool}");
        assert!(ex.decided());
        assert_eq!(host.replies.len(), usize::from(!allowed));
        if !allowed {
            assert_eq!(host.replies[0].status, 403);
        }
    }
}

#[test]
fn any_chunking_and_ending_gives_the_whole_body_decision() {
    let policy = active(&bundle(json!({})));
    let bodies: Vec<(Vec<u8>, bool)> =
        vec![
        (call("get_weather"), true),
        (call("delete_customer"), false),
        (b"[".to_vec(), false),
        (json!([{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}},
                {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"drop_db"}}])
            .to_string()
            .into_bytes(), false),
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..400 {
        let (body, expected) = &bodies[rng.below(bodies.len())];
        let mut cuts: Vec<usize> = (0..rng.below(6))
            .map(|_| rng.below(body.len() + 1))
            .collect();
        cuts.sort_unstable();
        let ending = if rng.below(2) == 0 {
            Ending::BodyEnd
        } else {
            Ending::Trailers
        };
        let mut host = host_for("/mcp", &[("content-type", "application/json")]);
        let mut ex = Exchange::new(Some(policy.clone()));
        let forwarded = send_request(&mut ex, &mut host, body, &cuts, ending);
        assert_eq!(forwarded, *expected, "cuts {cuts:?} {ending:?}");
        assert!(ex.decided());
        assert!(host.replies.len() <= 1, "one reply at most");
        assert_eq!(host.replies.is_empty(), *expected);
    }
}

#[test]
fn a_reset_before_the_body_ends_forwards_nothing() {
    let policy = active(&bundle(json!({})));
    let mut host = host_for("/mcp", &[]);
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Pause);
    host.request.body = call("get_weather")[..10].to_vec();
    assert_eq!(ex.on_request_body(&mut host, 10, false), Next::Pause);
    // The stream is reset here: no further callback. Nothing was decided
    // and nothing was released.
    assert!(!ex.decided());
    assert!(!ex.forwarded());
    // The proxy answers itself (e.g. a timeout): passed, noted.
    host.response.headers = vec![(":status".into(), "408".into())];
    assert_eq!(ex.on_response_headers(&mut host, true), Next::Continue);
    assert_eq!(host.record().unwrap()["scrub"], "response_before_decision");
}

#[test]
fn callbacks_out_of_order_are_refused() {
    let policy = active(&bundle(json!({})));
    // A body before any headers.
    let mut host = host_for("/mcp", &[]);
    let mut ex = Exchange::new(Some(policy.clone()));
    host.request.body = call("get_weather");
    let n = host.request.body.len();
    assert_eq!(ex.on_request_body(&mut host, n, true), Next::Pause);
    assert_eq!(host.replies[0].status, 400);
    assert!(!ex.forwarded());
    // Trailers before headers.
    let mut host = host_for("/mcp", &[]);
    let mut ex = Exchange::new(Some(policy.clone()));
    assert_eq!(ex.on_request_trailers(&mut host), Next::Pause);
    assert_eq!(host.replies[0].status, 400);
    // Headers twice.
    let mut host = host_for("/plain/x", &[]);
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Pause);
}

#[test]
fn no_policy_is_503_and_nothing_passes() {
    let mut host = host_for("/plain/x", &[]);
    let mut ex = Exchange::new(None);
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Pause);
    assert_eq!(host.replies[0].status, 503);
    assert_eq!(ex.on_request_body(&mut host, 0, true), Next::Pause);
    assert_eq!(ex.on_request_trailers(&mut host), Next::Pause);
}

/// Runs an allowed request, then an answer through the response side.
fn answer(
    pii: Value,
    content_type: Option<&str>,
    body: &[u8],
    cuts: &[usize],
    trailers: bool,
) -> (MemoryHost, Vec<u8>) {
    let policy = active(&bundle(pii));
    let mut host = host_for("/plain/x", &[]);
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    host.response.headers = vec![(":status".into(), "200".into())];
    if let Some(ct) = content_type {
        host.response
            .headers
            .push(("content-type".into(), ct.into()));
    }
    let held = ex.on_response_headers(&mut host, false) == Next::Pause;
    if !host.replies.is_empty() {
        return (host, Vec::new());
    }
    let client = deliver_response_body(&mut ex, &mut host, body, cuts, trailers, held);
    (host, client)
}

#[test]
fn answers_that_end_with_trailers_are_scrubbed() {
    let body = br#"{"note":"write to jane.doe@example.com"}"#;
    for cuts in [vec![], vec![5], vec![3, 20, 30]] {
        let (host, client) = answer(json!({}), Some("application/json"), body, &cuts, true);
        let text = String::from_utf8(client).unwrap();
        assert!(!text.contains("jane.doe"), "{text}");
        assert!(text.contains("[EMAIL]"), "{text}");
        assert_eq!(host.counts.redactions, 1);
    }
}

#[test]
fn streams_that_end_with_trailers_flush_their_tail_scrubbed() {
    let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"mail jane.doe@exam\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ple.com now\"}}]}\n\n";
    let (_, client) = answer(json!({}), Some("text/event-stream"), body, &[40, 90], true);
    let text = String::from_utf8(client).unwrap();
    assert!(!text.contains("jane.doe"), "{text}");
    assert!(
        text.contains("now"),
        "the held-back tail was written: {text}"
    );
}

#[test]
fn answers_without_a_usable_type_are_sniffed_and_scanned() {
    let json_body = br#"{"email":"jane.doe@example.com"}"#;
    for ct in [
        None,
        Some(""),
        Some("application/octet-stream"),
        Some("text/plain"),
        Some("x"),
    ] {
        let (_, client) = answer(json!({}), ct, json_body, &[4], false);
        let text = String::from_utf8(client).unwrap();
        assert!(!text.contains("jane.doe"), "{ct:?}: {text}");
        let _: Value = serde_json::from_str(&text).expect("JSON kept valid");
    }
    let (_, client) = answer(
        json!({}),
        None,
        b"call 415-555-0100 or jane.doe@example.com",
        &[],
        false,
    );
    assert!(!String::from_utf8(client).unwrap().contains("jane.doe"));
}

#[test]
fn answers_the_scanner_cannot_read_are_refused_unless_listed_safe() {
    let png = [0x89, b'P', b'N', b'G', 0, 0, 0, 13, b'I', b'H', b'D', b'R'];
    // A declared binary type: refused before the body (headers still held).
    let (host, _) = answer(json!({}), Some("image/png"), &png, &[], false);
    assert_eq!(host.replies[0].status, 502);
    assert_eq!(host.record().unwrap()["scrub"], "unscannable_content");
    // Listed safe: passed untouched.
    let (host, client) = answer(
        json!({"safe_content_types": ["image/*"]}),
        Some("image/png"),
        &png,
        &[],
        false,
    );
    assert!(host.replies.is_empty());
    assert_eq!(client, png);
    // Sniffed binary (UTF-16 text hides values from the scanner): refused.
    let utf16: Vec<u8> = "jane.doe@example.com"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let (_, client) = answer(
        json!({}),
        Some("application/octet-stream"),
        &utf16,
        &[],
        false,
    );
    let refusal: Value = serde_json::from_slice(&client).unwrap();
    assert_eq!(refusal["reason"], "unscannable_content");
}

#[test]
fn injected_headers_lose_every_client_spelling() {
    let policy = active(&bundle(json!({})));
    let mut host = host_for(
        "/plain/x",
        &[
            ("x_mcp_tenant", "evil"),
            ("X-MCP-TENANT", "evil2"),
            ("x-mcp_tenant", "evil3"),
        ],
    );
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    let tenants: Vec<_> = host
        .request
        .headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().replace('_', "-") == "x-mcp-tenant")
        .collect();
    assert_eq!(
        tenants,
        vec![&("x-mcp-tenant".to_string(), "acme".to_string())]
    );
}

#[test]
fn headers_the_rules_read_must_be_unambiguous() {
    let policy = active(&bundle(json!({})));
    let body = json!({"model": "demo-1"}).to_string().into_bytes();
    for extra in [
        vec![("x-model", "demo-1"), ("x-model", "other")],
        vec![("x-model", "demo-1"), ("x_model", "other")],
        vec![("x_model", "demo-1")],
    ] {
        let mut host = host_for("/v1/chat", &extra);
        let mut ex = Exchange::new(Some(policy.clone()));
        assert!(
            !send_request(&mut ex, &mut host, &body, &[], Ending::BodyEnd),
            "{extra:?}"
        );
        assert_eq!(host.replies[0].status, 400, "{extra:?}");
    }
    let mut host = host_for("/v1/chat", &[]);
    let mut ex = Exchange::new(Some(policy));
    assert!(send_request(
        &mut ex,
        &mut host,
        &body,
        &[3],
        Ending::BodyEnd
    ));
}

#[test]
fn prompts_without_a_json_type_are_scrubbed_and_binary_prompts_refused() {
    // No rule reads the body here (with one, every body must be strict
    // JSON: see `headers_the_rules_read_must_be_unambiguous`).
    let mut b = bundle(json!({"scrub_requests": true}));
    b["rules"] =
        json!([{"id": "plain", "effect": "allow", "when": {"path": {"prefix": "/plain/"}}}]);
    let policy = active(&b);
    for ct in [
        None,
        Some("text/plain"),
        Some("application/x-whatever-text"),
    ] {
        let mut extra = vec![];
        if let Some(ct) = ct {
            extra.push(("content-type", ct));
        }
        let mut host = host_for("/plain/x", &extra);
        let mut ex = Exchange::new(Some(policy.clone()));
        let forwarded = send_request(
            &mut ex,
            &mut host,
            b"my mail is jane.doe@example.com",
            &[5],
            Ending::Trailers,
        );
        let body = String::from_utf8(host.request.body.clone()).unwrap();
        if ct == Some("application/x-whatever-text") {
            // An unknown declared type is opaque: refused, not guessed.
            assert!(!forwarded);
            assert_eq!(host.replies[0].status, 400);
        } else {
            assert!(forwarded, "{ct:?}");
            assert!(!body.contains("jane.doe"), "{ct:?}: {body}");
        }
    }
}

#[test]
fn body_writes_the_host_refuses_turn_into_refusals() {
    let policy = active(&bundle(json!({})));
    let mut host = host_for("/plain/x", &[]);
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    host.response.headers = vec![("content-type".into(), "application/json".into())];
    assert_eq!(ex.on_response_headers(&mut host, false), Next::Pause);
    host.response.body = br#"{"e":"jane.doe@example.com"}"#.to_vec();
    host.refuse_body_writes = true;
    let n = host.response.body.len();
    // The body could not be replaced: a local 502 answers instead and the
    // held body is never released.
    assert_eq!(ex.on_response_body(&mut host, n, true), Next::Pause);
    assert_eq!(host.replies[0].status, 502);
    assert_eq!(host.record().unwrap()["scrub"], "body_not_replaced");
}

#[test]
fn mcp_list_answers_over_sse_hide_tools_the_caller_may_not_use() {
    let policy = active(&bundle(json!({"enabled": false})));
    let list = json!({"jsonrpc":"2.0","id":7,"method":"tools/list"})
        .to_string()
        .into_bytes();
    let answer_event = format!(
        "event: message\ndata: {}\n\n",
        json!({"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"get_weather"},{"name":"delete_customer"}]}})
    );
    for cut in [0, 5, 30, answer_event.len() - 1] {
        let mut host = host_for("/mcp", &[("content-type", "application/json")]);
        let mut ex = Exchange::new(Some(policy.clone()));
        assert!(send_request(
            &mut ex,
            &mut host,
            &list,
            &[],
            Ending::Trailers
        ));
        host.response.headers = vec![("content-type".into(), "text/event-stream".into())];
        assert_eq!(ex.on_response_headers(&mut host, false), Next::Continue);
        let mut client = Vec::new();
        let (a, b) = answer_event.as_bytes().split_at(cut);
        for (piece, eos) in [(a, false), (b, true)] {
            host.response.body = piece.to_vec();
            ex.on_response_body(&mut host, piece.len(), eos);
            client.extend_from_slice(&host.response.body);
        }
        let text = String::from_utf8(client).unwrap();
        assert!(text.contains("get_weather"), "{text}");
        assert!(!text.contains("delete_customer"), "cut {cut}: {text}");
        assert_eq!(ex.record().mcp_hidden, 1);
    }
}

#[test]
fn streams_the_scrubber_cannot_track_end_with_an_error_event() {
    // A chat chunk that is not strict JSON could carry a split value.
    let body = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"jane.d\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"oe@example.com\",\"content\":\"x\"}}]}\n\n";
    let (host, client) = answer(json!({}), Some("text/event-stream"), body, &[60], false);
    let text = String::from_utf8(client).unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("oe@example"), "{text}");
    assert_eq!(host.counts.refusals, 1);
}

#[test]
fn paths_and_hosts_not_in_normal_form_are_refused_before_any_rule() {
    let policy = active(&bundle(json!({})));
    for path in [
        "/plain/../admin",
        "/plain/%2e%2e/admin",
        "/%70lain/x",
        "//plain/x",
        "/plain/x%2Fy",
        "/plain\\x",
    ] {
        let mut host = host_for(path, &[]);
        let mut ex = Exchange::new(Some(policy.clone()));
        assert_eq!(
            ex.on_request_headers(&mut host, true),
            Next::Pause,
            "{path}"
        );
        assert_eq!(host.replies[0].status, 400, "{path}");
        assert_eq!(
            host.record().unwrap()["reason"],
            "invalid_request",
            "{path}"
        );
    }
    let mut host = host_for("/plain/x?q=1", &[]);
    host.request.headers.retain(|(k, _)| k != ":authority");
    host.request
        .headers
        .push((":authority".into(), "API.local:8080".into()));
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
}

#[test]
fn repeated_headers_callbacks_never_send_a_second_local_reply() {
    let policy = active(&bundle(json!({})));
    // Request side: denied at headers, then headers again.
    let mut host = host_for("/plain/../admin", &[]);
    let mut ex = Exchange::new(Some(policy.clone()));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Pause);
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Pause);
    assert_eq!(host.replies.len(), 1);
    assert!(!ex.forwarded());
    // Response side: refused on a second headers callback; the third is
    // our own 502 coming back through the filter.
    let mut host = host_for("/plain/x", &[]);
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    host.response.headers = vec![("content-type".into(), "application/json".into())];
    assert_eq!(ex.on_response_headers(&mut host, false), Next::Pause);
    assert_eq!(ex.on_response_headers(&mut host, false), Next::Pause);
    assert_eq!(ex.on_response_headers(&mut host, false), Next::Continue);
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 502);
}

#[test]
fn a_local_refusal_passes_back_through_untouched() {
    let policy = active(&bundle(json!({})));
    let mut host = host_for("/plain/x", &[]);
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    host.response.headers = vec![
        ("content-type".into(), "application/json".into()),
        ("content-encoding".into(), "gzip".into()),
    ];
    assert_eq!(ex.on_response_headers(&mut host, false), Next::Pause);
    assert_eq!(host.replies.len(), 1);
    let reply = host.replies[0].clone();
    assert_eq!(reply.status, 502);
    // Envoy runs the local reply through the filter's response callbacks.
    host.response.headers = vec![("content-type".into(), "application/json".into())];
    assert_eq!(ex.on_response_headers(&mut host, false), Next::Continue);
    host.response.body = reply.body.clone();
    let n = host.response.body.len();
    assert_eq!(ex.on_response_body(&mut host, n, true), Next::Continue);
    assert_eq!(host.response.body, reply.body);
    assert_eq!(host.replies.len(), 1);
}

#[test]
fn a_body_after_end_of_stream_response_headers_is_dropped() {
    let policy = active(&bundle(json!({})));
    let mut host = host_for("/plain/x", &[]);
    let mut ex = Exchange::new(Some(policy));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    host.response.headers = vec![("content-type".into(), "text/plain".into())];
    assert_eq!(ex.on_response_headers(&mut host, true), Next::Continue);
    host.response.body = b"write to jane.doe@example.com today".to_vec();
    let n = host.response.body.len();
    ex.on_response_body(&mut host, n, true);
    assert!(host.response.body.is_empty(), "out-of-order body passed");
}

#[test]
fn trailers_named_like_injected_headers_are_removed() {
    let policy = active(&bundle(json!({})));
    let mut host = host_for("/plain/x", &[]);
    let mut ex = Exchange::new(Some(policy));
    host.request.trailers = vec![
        ("x-mcp-tenant".into(), "globex".into()),
        ("X_MCP_TENANT".into(), "globex".into()),
        ("x-checksum".into(), "abc".into()),
    ];
    assert!(send_request(
        &mut ex,
        &mut host,
        b"{\"a\":1}",
        &[2],
        Ending::Trailers
    ));
    assert_eq!(
        host.request.trailers,
        vec![("x-checksum".to_string(), "abc".to_string())]
    );
}

#[test]
fn a_request_body_after_end_of_stream_headers_is_dropped() {
    let policy = active(&bundle(json!({})));
    let mut host = host_for("/mcp", &[]);
    let mut ex = Exchange::new(Some(policy));
    // No body announced: decided on headers alone (no call: session rule
    // does not match, default deny) — use a path that allows.
    host.request.headers.retain(|(k, _)| k != ":path");
    host.request
        .headers
        .push((":path".into(), "/plain/x".into()));
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    host.request.body = call("delete_customer");
    let n = host.request.body.len();
    ex.on_request_body(&mut host, n, true);
    assert!(
        host.request.body.is_empty(),
        "an undecided body was forwarded"
    );
}
