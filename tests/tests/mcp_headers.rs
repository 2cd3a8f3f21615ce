//! MCP 2026-07-28 `Mcp-Method` / `Mcp-Name` request headers through the
//! real Envoy, on every available target.
//!
//! The bundle's rules read nothing from the body but the MCP call, so a
//! request announcing its call in the headers is decided there: a denial
//! arrives while the client is still sending the body, an allowed
//! request's headers go upstream at once while its body is held and
//! checked. A body that makes another call than announced is answered
//! with 400 and JSON-RPC error -32020 from the body callback, after the
//! headers already left: these cases check that Envoy then resets the
//! upstream stream, which never receives the body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_guard_e2e::h2::{self, Answer, H2Upstream, Message, Parts};
use mcp_guard_e2e::{http, target, tokens, Stack, StackOptions, Target, DEMO_BUNDLE};
use serde_json::{json, Value};

/// The demo bundle's MCP rules on `/h2/mcp`, without the model rule (so
/// the MCP call is the only thing the rules read from a body).
fn bundle() -> String {
    let mut bundle: Value =
        serde_json::from_str(&DEMO_BUNDLE.replace("\"/mcp\"", "\"/h2/mcp\"")).expect("demo bundle");
    bundle["name"] = json!("mcphdr");
    let rules = bundle["rules"].as_array_mut().expect("rules");
    rules.retain(|r| r["when"].get("models").is_none());
    bundle.to_string()
}

/// The upstream echoes the call it received.
fn script(request: &Message) -> Answer {
    let call: Value = serde_json::from_slice(&request.body).unwrap_or_default();
    let body = json!({"jsonrpc": "2.0", "id": call["id"], "result": {"content": [
        {"type": "text", "text": format!("ran {}", call["params"]["name"])}]}})
    .to_string();
    Answer {
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-length".into(), body.len().to_string()),
        ],
        body: Parts {
            data: vec![body.into_bytes()],
            trailers: None,
            gap: Duration::ZERO,
        },
    }
}

fn caller(sub: &str) -> String {
    tokens::mint(json!({"sub": sub, "tenant": "acme", "roles": [], "scope": "openid mcp:tools"}))
        .expect("token")
}

fn call(tool: &str, id: u64) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": {"query": "jane"}}})
    .to_string()
    .into_bytes()
}

/// The body in `pieces` DATA frames, `gap` apart.
fn slow(body: &[u8], pieces: usize, gap: Duration) -> Parts {
    let size = body.len().div_ceil(pieces);
    Parts {
        data: body.chunks(size).map(<[u8]>::to_vec).collect(),
        trailers: None,
        gap,
    }
}

/// Header pairs as sent.
type Headers<'a> = &'a [(&'a str, &'a str)];

/// POSTs to `/h2/mcp` over HTTP/2 as `sub`, with extra headers.
fn post(stack: &Stack, sub: &str, extra: &[(&str, &str)], body: Parts) -> (Message, Duration) {
    let auth = format!("Bearer {}", caller(sub));
    let mut headers = vec![
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    // A client announcing its call speaks 2026-07-28; one that does not
    // speaks an older revision (2026-07-28 requires `Mcp-Method`).
    let has = |name: &str| extra.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("mcp-protocol-version") {
        let announces = has("mcp-method") || has("mcp-name");
        headers.push((
            "mcp-protocol-version",
            if announces {
                "2026-07-28"
            } else {
                "2025-11-25"
            },
        ));
    }
    headers.extend_from_slice(extra);
    let started = Instant::now();
    let answer =
        h2::send(stack.envoy.port, "POST", "/h2/mcp", &headers, body).expect("HTTP/2 request");
    (answer, started.elapsed())
}

/// What the upstream received from `sub` (the filter injects the subject).
fn seen_from(upstream: &H2Upstream, sub: &str) -> Vec<Message> {
    upstream
        .seen()
        .into_iter()
        .filter(|m| m.header("x-mcp-subject") == Some(sub))
        .collect()
}

/// The decision record, embedded as JSON in the access-log line.
fn decision(line: &Value) -> Value {
    line["mcp"].clone()
}

/// The decision record logged for `sub`'s (only) request.
fn record_of(stack: &Stack, sub: &str) -> Value {
    for _ in 0..250 {
        let found = stack
            .envoy
            .access_log_lines()
            .into_iter()
            .map(|l| decision(&l))
            .find(|d| d["sub"] == sub);
        if let Some(found) = found {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no access-log record for {sub}");
}

/// Waits until the upstream has recorded what it got from `sub` (a reset
/// stream is recorded once the upstream notices it).
fn settle(upstream: &H2Upstream, sub: &str, want: usize) -> Vec<Message> {
    for _ in 0..100 {
        let seen = seen_from(upstream, sub);
        if seen.len() >= want {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    seen_from(upstream, sub)
}

#[test]
fn mcp_headers_end_to_end() {
    for target in target::available() {
        eprintln!("mcp_headers_end_to_end: {}", target.name());
        mcp_headers_on(&target);
    }
}

fn mcp_headers_on(target: &Target) {
    let upstream = H2Upstream::start(Arc::new(script)).expect("HTTP/2 upstream starts");
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        bundles: vec![("mcphdr".into(), bundle())],
        bundle_name: "mcphdr".into(),
        concurrency: 1,
        h2_upstream_port: Some(upstream.port),
        ..StackOptions::default()
    })
    .expect("stack starts");
    allowed_call_reaches_the_upstream(&stack, &upstream);
    denial_arrives_before_the_body_is_sent(&stack, &upstream, target);
    mismatched_body_never_reaches_the_upstream(&stack, &upstream);
    ambiguous_headers_are_refused_at_once(&stack, &upstream);
    assert!(
        !stack.envoy.log_text().contains("panicked"),
        "the filter panicked:\n{}",
        stack.envoy.log_text()
    );
}

fn allowed_call_reaches_the_upstream(stack: &Stack, upstream: &H2Upstream) {
    let headers = [("mcp-method", "tools/call"), ("mcp-name", "get_weather")];
    let body = call("get_weather", 1);
    let (answer, _) = post(
        stack,
        "hdr-ok",
        &headers,
        slow(&body, 3, Duration::from_millis(50)),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["id"], 1);
    let seen = settle(upstream, "hdr-ok", 1);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, body, "the upstream gets the body whole");
    assert_eq!(seen[0].header("mcp-name"), Some("get_weather"));
}

fn denial_arrives_before_the_body_is_sent(stack: &Stack, upstream: &H2Upstream, target: &Target) {
    let body = call("delete_customer", 2);
    let gap = Duration::from_millis(400);
    let sending = gap * 4;
    let headers = [
        ("mcp-method", "tools/call"),
        ("mcp-name", "delete_customer"),
    ];
    let (early, at_headers) = post(stack, "hdr-deny", &headers, slow(&body, 5, gap));
    assert_eq!(early.status, 403, "{}", early.text());
    assert_eq!(early.json()["rule"], "default_deny");
    assert!(
        at_headers < sending / 2,
        "decided at the headers in {at_headers:?}, the body takes {sending:?}"
    );
    // A 2026-07-28 request must announce its method: refused at once.
    let revision = [("mcp-protocol-version", "2026-07-28")];
    let (missing, _) = post(
        stack,
        "hdr-missing",
        &revision,
        slow(&body, 1, Duration::ZERO),
    );
    assert_eq!(missing.status, 400, "{}", missing.text());
    assert_eq!(missing.json()["error"]["data"]["detail"], "missing_method");
    // The same request of an older revision is decided at the body's end.
    let (late, at_body) = post(stack, "hdr-deny-body", &[], slow(&body, 5, gap));
    assert_eq!(late.status, 403, "{}", late.text());
    assert!(at_body >= sending, "body path decided in {at_body:?}");
    eprintln!(
        "time to decision ({}): headers {at_headers:?}, body {at_body:?} (body sent over {sending:?})",
        target.name()
    );
    assert!(seen_from(upstream, "hdr-deny").is_empty());
    assert!(seen_from(upstream, "hdr-deny-body").is_empty());
}

fn mismatched_body_never_reaches_the_upstream(stack: &Stack, upstream: &H2Upstream) {
    let headers = [("mcp-method", "tools/call"), ("mcp-name", "get_weather")];
    // Over HTTP/2, the body in slow frames: the headers are upstream long
    // before the body ends.
    let body = call("delete_customer", 3);
    let (answer, _) = post(
        stack,
        "hdr-swap",
        &headers,
        slow(&body, 3, Duration::from_millis(150)),
    );
    assert_eq!(answer.status, 400, "{}", answer.text());
    let error = answer.json();
    assert_eq!(error["jsonrpc"], "2.0");
    assert_eq!(error["id"], 3);
    assert_eq!(error["error"]["code"], -32020);
    assert_eq!(error["error"]["data"]["detail"], "name_mismatch");
    assert!(
        !answer.text().contains("delete_customer") && !answer.text().contains("get_weather"),
        "values are not echoed: {}",
        answer.text()
    );
    // The headers went upstream (the request was allowed on them); the
    // stream was reset before any body byte was released.
    let seen = settle(upstream, "hdr-swap", 1);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].text().starts_with("body error"),
        "the upstream stream was not reset: {:?}",
        seen[0].text()
    );
    let record = record_of(stack, "hdr-swap");
    assert_eq!(record["decision"], "deny", "{record}");
    assert_eq!(record["reason"], "header_mismatch", "{record}");
    eprintln!(
        "mismatch over HTTP/2: upstream saw {} stream(s): {:?}",
        seen.len(),
        seen.iter().map(Message::text).collect::<Vec<_>>()
    );

    // Over HTTP/1.1 in one piece, the name hidden behind an escape.
    let auth = format!("Bearer {}", caller("hdr-swap-h1"));
    let escaped = r#"{"jsonrpc":"2.0","id":"s4","method":"tools/call","params":{"name":"del\u0065te_customer"}}"#;
    let reply = http::send(
        "POST",
        &stack.url("/h2/mcp"),
        None,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_weather"),
        ],
        Some(escaped),
    )
    .expect("HTTP/1.1 request");
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"]["code"], -32020);
    assert_eq!(reply.json()["id"], "s4");
    // In one piece the upstream may or may not have got the headers yet;
    // it never gets the body.
    let seen = settle(upstream, "hdr-swap-h1", 1);
    assert!(seen.len() <= 1, "{seen:?}");
    for m in &seen {
        assert!(m.text().starts_with("body error"), "{m:?}");
    }
    eprintln!(
        "mismatch over HTTP/1.1: upstream saw {} stream(s): {:?}",
        seen.len(),
        seen.iter().map(Message::text).collect::<Vec<_>>()
    );
}

fn ambiguous_headers_are_refused_at_once(stack: &Stack, upstream: &H2Upstream) {
    let body = call("get_weather", 5);
    let cases: [(&str, Headers, &str); 3] = [
        (
            "hdr-dup",
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "get_weather"),
                ("mcp-name", "delete_customer"),
            ],
            "duplicate_header",
        ),
        (
            "hdr-case",
            &[("mcp-method", "Tools/Call"), ("mcp-name", "get_weather")],
            "method_mismatch",
        ),
        (
            "hdr-half",
            &[("mcp-name", "get_weather")],
            "name_without_method",
        ),
    ];
    for (sub, headers, detail) in cases {
        let (answer, _) = post(stack, sub, headers, slow(&body, 1, Duration::ZERO));
        assert_eq!(answer.status, 400, "{sub}: {}", answer.text());
        assert_eq!(answer.json()["error"]["data"]["detail"], detail, "{sub}");
        assert!(
            seen_from(upstream, sub).is_empty(),
            "{sub} reached the upstream"
        );
    }
}
