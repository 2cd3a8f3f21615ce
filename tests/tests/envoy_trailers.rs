//! Trailers through the real Envoy, over HTTP/2 on both sides.
//!
//! A request or response body that ends with trailers never reaches the
//! filter's body callback with end-of-stream: Envoy calls the trailers
//! callback instead (docs/envoy-trailers.md). These cases check that the
//! filter still decides requests there (a forbidden MCP call never reaches
//! the upstream), still scrubs held answers there, and that a streamed
//! answer ending with trailers lets nothing unscrubbed through.
//!
//! The client speaks HTTP/2 cleartext with prior knowledge to Envoy's
//! listener; Envoy routes `/h2/` to an HTTP/2 upstream run by this test
//! that records what it receives.

use std::sync::Arc;
use std::time::Duration;

use mcp_guard_demo_upstream::DEMO_EMAIL;
use mcp_guard_e2e::h2::{self, Answer, H2Upstream, Message, Parts};
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target, DEMO_BUNDLE};
use serde_json::{json, Value};

/// The demo bundle with its MCP endpoint moved to `/h2/mcp`, plus rules
/// letting model users read `/h2/answers/…` and post `/h2/prompts`, and
/// with prompts (request bodies) scrubbed too.
fn bundle() -> String {
    let mut bundle: Value =
        serde_json::from_str(&DEMO_BUNDLE.replace("\"/mcp\"", "\"/h2/mcp\"")).expect("demo bundle");
    bundle["name"] = json!("trailers");
    let rules = bundle["rules"].as_array_mut().expect("rules");
    rules.push(json!({
        "id": "h2-answers",
        "effect": "allow",
        "when": {
            "methods": ["GET"],
            "path": { "prefix": "/h2/answers/" },
            "claims": [{ "claim": "roles", "contains_any": ["model-user"] }]
        }
    }));
    rules.push(json!({
        "id": "h2-prompts",
        "effect": "allow",
        "when": {
            "methods": ["POST"],
            "path": { "exact": "/h2/prompts" },
            "claims": [{ "claim": "roles", "contains_any": ["model-user"] }]
        }
    }));
    bundle["pii"]["scrub_requests"] = json!(true);
    bundle.to_string()
}

/// Trailer every scripted answer ends with.
const UP_TRAILER: (&str, &str) = ("x-up-trailer", "from-upstream");
/// Trailer every request here ends with.
const REQ_TRAILER: (&str, &str) = ("x-req-trailer", "from-client");

fn up_trailers() -> Option<Vec<(String, String)>> {
    Some(vec![(UP_TRAILER.0.into(), UP_TRAILER.1.into())])
}

fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// One OpenAI chat chunk carrying `text`.
fn delta(text: &str) -> Vec<u8> {
    let chunk = json!({"object": "chat.completion.chunk", "model": "demo-llm",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
    format!("data: {chunk}\n\n").into_bytes()
}

/// The email split over three events, as a model streams it.
const EMAIL_PARTS: [&str; 3] = ["Write to jane.d", "oe@exam", "ple.com today."];
/// Fragments of the email that must never reach a scrubbed caller.
const SECRET_FRAGMENTS: [&str; 4] = [DEMO_EMAIL, "jane.d", "oe@exam", "ple.com"];

/// What the upstream answers, by path. Every answer ends with trailers;
/// `/h2/mcp` says whether the request came with trailers.
fn script(request: &Message) -> Answer {
    let json_headers = |len: usize| {
        headers(&[
            ("content-type", "application/json"),
            ("content-length", &len.to_string()),
        ])
    };
    let sse_headers = headers(&[("content-type", "text/event-stream")]);
    let gap = Duration::from_millis(60);
    match request.path.as_str() {
        "/h2/mcp" => {
            let id =
                serde_json::from_slice::<Value>(&request.body).unwrap_or_default()["id"].clone();
            let body = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [
                {"type": "text", "text": format!("Found Jane Doe <{DEMO_EMAIL}>")}]}})
            .to_string();
            let mut headers = json_headers(body.len());
            headers.push((
                "x-saw-request-trailers".into(),
                request.trailer(REQ_TRAILER.0).unwrap_or("none").into(),
            ));
            Answer {
                status: 200,
                headers,
                body: Parts {
                    data: vec![body.into_bytes()],
                    trailers: up_trailers(),
                    gap: Duration::ZERO,
                },
            }
        }
        "/h2/prompts" => Answer {
            status: 200,
            headers: headers(&[("content-type", "text/plain")]),
            body: Parts {
                data: vec![b"noted".to_vec()],
                trailers: up_trailers(),
                gap: Duration::ZERO,
            },
        },
        "/h2/answers/json" => {
            let body = json!({"contact": DEMO_EMAIL, "note": "call back"}).to_string();
            Answer {
                status: 200,
                headers: json_headers(body.len()),
                body: Parts {
                    data: vec![body.into_bytes()],
                    trailers: up_trailers(),
                    gap: Duration::ZERO,
                },
            }
        }
        "/h2/answers/json-split" => {
            // The email straddles DATA frames.
            let body = json!({"contact": DEMO_EMAIL, "note": "call back"}).to_string();
            let cut = body.find("oe@exam").expect("email in body");
            let (a, rest) = body.split_at(cut + 3);
            let (b, c) = rest.split_at(6);
            Answer {
                status: 200,
                headers: json_headers(body.len()),
                body: Parts {
                    data: vec![a.into(), b.into(), c.into()],
                    trailers: up_trailers(),
                    gap,
                },
            }
        }
        "/h2/answers/sse-done" => {
            let mut data: Vec<Vec<u8>> = EMAIL_PARTS.iter().map(|p| delta(p)).collect();
            data.push(b"data: [DONE]\n\n".to_vec());
            Answer {
                status: 200,
                headers: sse_headers,
                body: Parts {
                    data,
                    trailers: up_trailers(),
                    gap,
                },
            }
        }
        "/h2/answers/sse-cut" => {
            // No finish_reason, no [DONE]: the stream ends at the trailers
            // with the email's events still held back by the scrubber.
            Answer {
                status: 200,
                headers: sse_headers,
                body: Parts {
                    data: EMAIL_PARTS.iter().map(|p| delta(p)).collect(),
                    trailers: up_trailers(),
                    gap,
                },
            }
        }
        _ => Answer {
            status: 404,
            headers: headers(&[("content-type", "text/plain")]),
            body: Parts {
                data: vec![b"no such answer".to_vec()],
                trailers: None,
                gap: Duration::ZERO,
            },
        },
    }
}

/// A caller with the MCP scope (non-admin unless `roles` says so).
fn caller(sub: &str, roles: &[&str]) -> String {
    tokens::mint(json!({"sub": sub, "tenant": "acme", "roles": roles, "scope": "openid mcp:tools"}))
        .expect("token")
}

fn call(tool: &str, id: u64) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": {"id": 1}}})
    .to_string()
    .into_bytes()
}

/// POSTs `body` to `/h2/mcp` over HTTP/2.
fn post_mcp(stack: &Stack, token: &str, body: Parts) -> Message {
    let auth = format!("Bearer {token}");
    h2::send(
        stack.envoy.port,
        "POST",
        "/h2/mcp",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
    )
    .expect("HTTP/2 request")
}

fn get(stack: &Stack, token: &str, path: &str) -> Message {
    let auth = format!("Bearer {token}");
    h2::send(
        stack.envoy.port,
        "GET",
        path,
        &[("authorization", &auth)],
        Parts::default(),
    )
    .expect("HTTP/2 request")
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
    panic!(
        "no access-log record for {sub}:\n{}",
        std::fs::read_to_string(&stack.envoy.access_log).unwrap_or_default()
    );
}

/// Requests the upstream received whose body contains `needle`.
fn reached(upstream: &H2Upstream, needle: &str) -> Vec<Message> {
    upstream
        .seen()
        .into_iter()
        .filter(|m| m.text().contains(needle))
        .collect()
}

#[test]
fn trailers_over_http2_end_to_end() {
    for target in target::available() {
        eprintln!("trailers_over_http2_end_to_end: {}", target.name());
        trailers_over_http2_end_to_end_on(&target);
    }
}

fn trailers_over_http2_end_to_end_on(target: &Target) {
    let upstream = H2Upstream::start(Arc::new(script)).expect("HTTP/2 upstream starts");
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        bundles: vec![("trailers".into(), bundle())],
        bundle_name: "trailers".into(),
        concurrency: 1,
        h2_upstream_port: Some(upstream.port),
        ..StackOptions::default()
    })
    .expect("stack starts");
    forbidden_call_with_trailers_is_refused_before_the_upstream(&stack, &upstream);
    allowed_call_with_trailers_reaches_the_upstream_whole(&stack, &upstream);
    prompt_ending_with_trailers_is_scrubbed_before_the_upstream(&stack, &upstream);
    held_answer_ending_with_trailers_is_scrubbed(&stack);
    streamed_answer_ending_with_trailers_leaks_nothing(&stack);
    assert!(
        !stack.envoy.log_text().contains("panicked"),
        "the filter panicked:\n{}",
        stack.envoy.log_text()
    );
}

fn forbidden_call_with_trailers_is_refused_before_the_upstream(
    stack: &Stack,
    upstream: &H2Upstream,
) {
    // One DATA frame, then trailers.
    let denied = post_mcp(
        stack,
        &caller("trl-deny", &["model-user"]),
        Parts::with_trailers(&call("delete_customer", 11), &[REQ_TRAILER]),
    );
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(denied.json()["reason"], "default_deny", "{}", denied.text());
    let record = record_of(stack, "trl-deny");
    assert_eq!(record["decision"], "deny", "{record}");
    assert_eq!(record["mcp_target"], "delete_customer", "{record}");

    // The call cut over several DATA frames Envoy delivers one by one.
    let body = call("delete_customer", 12);
    let (a, b) = body.split_at(body.len() / 2);
    let split = post_mcp(
        stack,
        &caller("trl-deny-split", &["model-user"]),
        Parts {
            data: vec![a.to_vec(), b.to_vec()],
            trailers: Some(vec![(REQ_TRAILER.0.into(), REQ_TRAILER.1.into())]),
            gap: Duration::from_millis(80),
        },
    );
    assert_eq!(split.status, 403, "{split:?}");
    assert_eq!(record_of(stack, "trl-deny-split")["decision"], "deny");

    // A batch hiding the forbidden call behind an allowed one.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 13, "method": "tools/call",
         "params": {"name": "search_customers", "arguments": {"query": "jane"}}},
        {"jsonrpc": "2.0", "id": 14, "method": "tools/call",
         "params": {"name": "delete_customer", "arguments": {"id": 1}}}
    ])
    .to_string();
    let batched = post_mcp(
        stack,
        &caller("trl-deny-batch", &["model-user"]),
        Parts::with_trailers(batch.as_bytes(), &[REQ_TRAILER]),
    );
    assert_eq!(batched.status, 403, "{batched:?}");

    // Headers, then trailers, no body at all: nothing to authorise a tool
    // call with.
    let empty = post_mcp(
        stack,
        &caller("trl-empty", &["model-user"]),
        Parts {
            data: Vec::new(),
            trailers: Some(vec![(REQ_TRAILER.0.into(), REQ_TRAILER.1.into())]),
            gap: Duration::ZERO,
        },
    );
    assert!(
        matches!(empty.status, 400 | 403),
        "an empty MCP request with trailers must be refused: {empty:?}"
    );
    assert_eq!(record_of(stack, "trl-empty")["decision"], "deny");

    assert!(
        reached(upstream, "delete_customer").is_empty(),
        "a refused call reached the upstream: {:?}",
        upstream.seen()
    );
    assert!(
        upstream.seen().iter().all(|m| !m.body.is_empty()),
        "the empty request reached the upstream: {:?}",
        upstream.seen()
    );
}

fn allowed_call_with_trailers_reaches_the_upstream_whole(stack: &Stack, upstream: &H2Upstream) {
    let body = call("search_customers", 21);
    let reply = post_mcp(
        stack,
        &caller("trl-allow", &["model-user"]),
        Parts::with_trailers(&body, &[REQ_TRAILER]),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let record = record_of(stack, "trl-allow");
    assert_eq!(record["decision"], "allow", "{record}");
    assert_eq!(record["mcp_target"], "search_customers", "{record}");
    let got = reached(upstream, "\"id\":21");
    assert_eq!(got.len(), 1, "{:?}", upstream.seen());
    let got = &got[0];
    assert_eq!(got.body, body, "the upstream got the body unchanged");
    assert_eq!(
        got.trailer(REQ_TRAILER.0),
        Some(REQ_TRAILER.1),
        "the request trailers reached the upstream: {got:?}"
    );
    assert_eq!(got.header("x-mcp-subject"), Some("trl-allow"), "{got:?}");
    assert_eq!(reply.header("x-saw-request-trailers"), Some(REQ_TRAILER.1));
    // The answer (JSON with trailers) comes back scrubbed, trailers kept.
    assert!(!reply.text().contains(DEMO_EMAIL), "{}", reply.text());
    assert!(
        reply.json()["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("[EMAIL]"),
        "{}",
        reply.text()
    );
    assert_eq!(reply.trailer(UP_TRAILER.0), Some(UP_TRAILER.1), "{reply:?}");

    // An identity header forged as a trailer does not change the identity
    // headers the upstream gets (the filter injects those as headers).
    let forged = post_mcp(
        stack,
        &caller("trl-forge", &["model-user"]),
        Parts::with_trailers(
            &call("search_customers", 23),
            &[("x-mcp-subject", "root"), ("x-mcp-tenant", "globex")],
        ),
    );
    assert_eq!(forged.status, 200, "{forged:?}");
    let got = reached(upstream, "\"id\":23");
    assert_eq!(got.len(), 1, "{:?}", upstream.seen());
    assert_eq!(got[0].header("x-mcp-subject"), Some("trl-forge"));
    assert_eq!(got[0].header("x-mcp-tenant"), Some("acme"));
    eprintln!(
        "forged identity trailers as the upstream got them: {:?}",
        got[0].trailers
    );

    // An admin may delete: the same trailers path allows when the rules do.
    let admin = post_mcp(
        stack,
        &caller("trl-admin", &["admin"]),
        Parts::with_trailers(&call("delete_customer", 22), &[REQ_TRAILER]),
    );
    assert_eq!(admin.status, 200, "{admin:?}");
    assert_eq!(reached(upstream, "\"id\":22").len(), 1);
}

/// A prompt whose body ends with trailers is scrubbed at the trailers
/// callback; the client's `content-length` no longer matches, so it must
/// not reach the upstream (which would reject the stream).
fn prompt_ending_with_trailers_is_scrubbed_before_the_upstream(
    stack: &Stack,
    upstream: &H2Upstream,
) {
    let prompt = format!(r#"{{"prompt":"please mail {DEMO_EMAIL} the invoice","n":31}}"#);
    let (a, b) = prompt.split_at(prompt.find("oe@exam").expect("email") + 3);
    let auth = format!("Bearer {}", caller("trl-prompt", &["model-user"]));
    let length = prompt.len().to_string();
    let reply = h2::send(
        stack.envoy.port,
        "POST",
        "/h2/prompts",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("content-length", &length),
        ],
        Parts {
            data: vec![a.into(), b.into()],
            trailers: Some(vec![(REQ_TRAILER.0.into(), REQ_TRAILER.1.into())]),
            gap: Duration::from_millis(80),
        },
    )
    .expect("HTTP/2 request");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.text(), "noted");
    let got = reached(upstream, "\"n\":31");
    assert_eq!(got.len(), 1, "{:?}", upstream.seen());
    let got = &got[0];
    let text = got.text();
    for secret in SECRET_FRAGMENTS {
        assert!(
            !text.contains(secret),
            "{secret} reached the upstream: {text}"
        );
    }
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap_or_default()["prompt"],
        "please mail [EMAIL] the invoice",
        "{text}"
    );
    if let Some(len) = got.header("content-length") {
        assert_eq!(len, got.body.len().to_string(), "stale content-length");
    }
    assert_eq!(got.trailer(REQ_TRAILER.0), Some(REQ_TRAILER.1), "{got:?}");
    let record = record_of(stack, "trl-prompt");
    assert_eq!(record["decision"], "allow", "{record}");
    assert_eq!(record["redactions"]["email"], 1, "{record}");
}

fn held_answer_ending_with_trailers_is_scrubbed(stack: &Stack) {
    for (sub, path) in [
        ("trl-json", "/h2/answers/json"),
        ("trl-json-split", "/h2/answers/json-split"),
    ] {
        let reply = get(stack, &caller(sub, &["model-user"]), path);
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        let text = reply.text();
        for secret in SECRET_FRAGMENTS {
            assert!(!text.contains(secret), "{path}: {secret} leaked: {text}");
        }
        assert_eq!(reply.json()["contact"], "[EMAIL]", "{path}: {text}");
        assert_eq!(reply.json()["note"], "call back", "{path}: {text}");
        assert_eq!(
            reply.trailer(UP_TRAILER.0),
            Some(UP_TRAILER.1),
            "{path}: {reply:?}"
        );
        if let Some(len) = reply.header("content-length") {
            assert_eq!(len, text.len().to_string(), "{path}: stale content-length");
        }
        let record = record_of(stack, sub);
        assert_eq!(record["redactions"]["email"], 1, "{path}: {record}");
    }
    // Control: an exempt caller gets the raw answer, so the upstream did
    // send the email and the scrubbing above is the filter's.
    let raw = get(
        stack,
        &caller("trl-auditor", &["model-user", "auditor"]),
        "/h2/answers/json",
    );
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(raw.json()["contact"], DEMO_EMAIL, "{}", raw.text());
    assert_eq!(raw.trailer(UP_TRAILER.0), Some(UP_TRAILER.1));
}

/// The `delta.content` texts of a chat event stream, joined.
fn joined_deltas(body: &str) -> String {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|e| *e != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect()
}

fn streamed_answer_ending_with_trailers_leaks_nothing(stack: &Stack) {
    // The stream ends cleanly ([DONE]) before the trailers: everything
    // was written during the body, scrubbed across events.
    let done = get(
        stack,
        &caller("trl-sse-done", &["model-user"]),
        "/h2/answers/sse-done",
    );
    assert_eq!(done.status, 200, "{done:?}");
    let text = done.text();
    for secret in SECRET_FRAGMENTS {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(joined_deltas(&text), "Write to [EMAIL] today.", "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(done.trailer(UP_TRAILER.0), Some(UP_TRAILER.1), "{done:?}");
    let record = record_of(stack, "trl-sse-done");
    assert_eq!(record["redactions"]["email"], 1, "{record}");
    assert!(record["scrub"].is_null(), "nothing was dropped: {record}");

    // The stream stops at the trailers with the email's events still held
    // back: Envoy cannot take body bytes at trailers in streaming mode,
    // so the tail is dropped (and recorded), never sent unscrubbed.
    let cut = get(
        stack,
        &caller("trl-sse-cut", &["model-user"]),
        "/h2/answers/sse-cut",
    );
    assert_eq!(cut.status, 200, "{cut:?}");
    let text = cut.text();
    for secret in SECRET_FRAGMENTS {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let record = record_of(stack, "trl-sse-cut");
    let joined = joined_deltas(&text);
    if joined != "Write to [EMAIL] today." {
        assert_eq!(
            record["scrub"], "stream_tail_dropped",
            "a held tail was lost without a record (client got {text:?}): {record}"
        );
    }
    assert!(
        "Write to [EMAIL] today.".starts_with(&joined),
        "what did arrive is a scrubbed prefix: {joined:?}"
    );
    eprintln!(
        "sse-cut: client got {text:?}; record {record}; trailers {:?}",
        cut.trailers
    );
}
