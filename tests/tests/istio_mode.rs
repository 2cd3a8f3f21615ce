//! The wasm filter as an Istio `WasmPlugin` runs it, in real Envoy:
//! `allow_on_headers_stop_iteration` off on the Wasm filter and no
//! `headers_stop_iteration` in the plugin configuration. Envoy then never
//! delivers a body to a filter paused at headers, so the filter lets
//! headers go and holds bodies: body rules must still decide, denials
//! must still be local replies, nothing may hang, a denied body must
//! never reach the upstream, and answers must still be scrubbed.
//!
//! (The native module is not concerned: dynamic modules hold headers.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_guard_demo_upstream::{DEMO_CARD, DEMO_EMAIL};
use mcp_guard_e2e::h2::{self, Answer, H2Upstream, Message, Parts};
use mcp_guard_e2e::http::send;
use mcp_guard_e2e::{tokens, Stack, StackOptions, Target, DEMO_BUNDLE};
use serde_json::{json, Value};

/// The demo bundle plus its MCP rules on `/h2/mcp` (the HTTP/2 upstream
/// that records what reaches it), with prompts scrubbed too.
fn bundle() -> String {
    let mut bundle: Value = serde_json::from_str(DEMO_BUNDLE).expect("demo bundle");
    bundle["name"] = json!("istio");
    let rules = bundle["rules"].as_array_mut().expect("rules");
    let h2_rules: Vec<Value> = rules
        .iter()
        .filter(|r| r["when"]["path"]["exact"] == "/mcp")
        .map(|r| {
            let mut r = r.clone();
            r["id"] = json!(format!("h2-{}", r["id"].as_str().unwrap_or_default()));
            r["when"]["path"]["exact"] = json!("/h2/mcp");
            r
        })
        .collect();
    rules.extend(h2_rules);
    bundle.to_string()
}

fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// The HTTP/2 upstream: every MCP call is answered with PII; an answer
/// to `get_weather` carries a private key the bundle does not block.
fn script(request: &Message) -> Answer {
    let id = serde_json::from_slice::<Value>(&request.body).unwrap_or_default()["id"].clone();
    let body = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [
        {"type": "text", "text": format!("Found Jane Doe <{DEMO_EMAIL}>, card {DEMO_CARD}")}]}})
    .to_string();
    Answer {
        status: 200,
        headers: headers(&[
            ("content-type", "application/json"),
            ("content-length", &body.len().to_string()),
        ]),
        body: Parts {
            data: vec![body.into_bytes()],
            trailers: None,
            gap: Duration::ZERO,
        },
    }
}

fn tool_user(sub: &str) -> String {
    tokens::mint(json!({"sub": sub, "roles": ["viewer"], "scope": "openid mcp:tools"}))
        .expect("token")
}

fn model_user(sub: &str) -> String {
    tokens::mint(json!({"sub": sub, "roles": ["model-user"]})).expect("token")
}

fn call(tool: &str, id: u64) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": {"query": "jane"}}})
    .to_string()
    .into_bytes()
}

fn post_h2(stack: &Stack, token: &str, body: Parts) -> (Message, Duration) {
    let auth = format!("Bearer {token}");
    let started = Instant::now();
    let answer = h2::send(
        stack.envoy.port,
        "POST",
        "/h2/mcp",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
    )
    .expect("an answer, not a hang");
    (answer, started.elapsed())
}

fn record_of(stack: &Stack, sub: &str) -> Value {
    for _ in 0..250 {
        if let Some(found) = stack
            .envoy
            .access_log_lines()
            .into_iter()
            .map(|l| l["mcp"].clone())
            .find(|d| d["sub"] == sub)
        {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no access-log record for {sub}");
}

#[test]
fn a_plain_wasm_plugin_decides_on_bodies_without_holding_headers() {
    if std::env::var_os("MCP_GUARD_WASM").is_none() && !Target::wasm().module().exists() {
        eprintln!("skipped: no wasm module built");
        return;
    }
    let upstream = H2Upstream::start(Arc::new(script)).expect("HTTP/2 upstream starts");
    let stack = Stack::start(StackOptions {
        target: Target::wasm(),
        bundles: vec![("istio".into(), bundle())],
        bundle_name: "istio".into(),
        concurrency: 1,
        h2_upstream_port: Some(upstream.port),
        istio_mode: true,
        ..StackOptions::default()
    })
    .expect("stack starts");
    let config = std::fs::read_to_string(&stack.envoy.config).unwrap();
    assert!(config.contains("allow_on_headers_stop_iteration: false"));
    assert!(!config.contains("headers_stop_iteration\\\":true"));

    // A forbidden tool call, whole, cut in frames, and ending in trailers:
    // a 403 local reply at once, and the upstream never gets the body.
    let forbidden = [
        Parts {
            data: vec![call("delete_customer", 1)],
            trailers: None,
            gap: Duration::ZERO,
        },
        {
            let body = call("delete_customer", 2);
            let (a, b) = body.split_at(body.len() / 2);
            Parts {
                data: vec![a.to_vec(), b.to_vec()],
                trailers: None,
                gap: Duration::from_millis(150),
            }
        },
        Parts::with_trailers(&call("delete_customer", 3), &[("x-end", "1")]),
    ];
    for (i, body) in forbidden.into_iter().enumerate() {
        let sub = format!("istio-deny-{i}");
        let (answer, took) = post_h2(&stack, &tool_user(&sub), body);
        assert_eq!(answer.status, 403, "{answer:?}");
        assert_eq!(answer.json()["reason"], "default_deny", "{}", answer.text());
        assert!(took < Duration::from_secs(5), "took {took:?}");
        let record = record_of(&stack, &sub);
        assert_eq!(record["decision"], "deny", "{record}");
        assert_eq!(record["mcp_target"], "delete_customer", "{record}");
    }
    assert!(
        upstream
            .seen()
            .iter()
            .all(|m| !m.text().contains("delete_customer")),
        "a denied body reached the upstream"
    );

    // Headers no body can make allowed (a caller no `/h2/mcp` rule
    // admits): refused at once, and not even the headers reach the
    // upstream, which may act on a request line before reading a body.
    let auth = format!("Bearer {}", model_user("istio-line-denied"));
    let answer = h2::send(
        stack.envoy.port,
        "POST",
        "/h2/mcp",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
            ("x-probe", "line-denied"),
        ],
        Parts {
            data: vec![call("search_customers", 9)],
            trailers: None,
            gap: Duration::ZERO,
        },
    )
    .expect("an answer");
    assert_eq!(answer.status, 403, "{answer:?}");
    assert_eq!(record_of(&stack, "istio-line-denied")["decision"], "deny");
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        upstream
            .seen()
            .iter()
            .all(|m| m.header("x-probe").is_none()),
        "headers of a request no body could allow reached the upstream"
    );

    // An allowed call: reaches the upstream whole, without the client's
    // token, and its answer is scrubbed although its headers (with the
    // upstream's content-length) had to leave before its body was read.
    let (answer, took) = post_h2(
        &stack,
        &tool_user("istio-allow"),
        Parts {
            data: vec![call("search_customers", 7)],
            trailers: None,
            gap: Duration::ZERO,
        },
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(took < Duration::from_secs(5));
    let text = answer.text();
    assert!(!text.contains(DEMO_EMAIL), "{text}");
    assert!(!text.contains(DEMO_CARD), "{text}");
    serde_json::from_str::<Value>(&text).expect("still JSON");
    let seen = upstream.seen();
    let reached = seen
        .iter()
        .find(|m| m.text().contains("search_customers"))
        .expect("the allowed call reached the upstream");
    assert!(reached.header("authorization").is_none(), "{reached:?}");
    assert_eq!(record_of(&stack, "istio-allow")["decision"], "allow");

    // Model rules over HTTP/1.1 to the demo model: allowed and denied.
    let chat = |sub: &str, model: &str| {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
        send(
            "POST",
            &stack.url("/v1/chat/completions"),
            Some(&model_user(sub)),
            &[("content-type", "application/json")],
            Some(&body.to_string()),
        )
        .expect("an answer")
    };
    let ok = chat("istio-chat", "demo-llm");
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(!ok.body.contains(DEMO_EMAIL), "{}", ok.body);
    let denied = chat("istio-chat-denied", "gpt-secret");
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(record_of(&stack, "istio-chat-denied")["decision"], "deny");

    // The upstream goes away. While a body is still held, Envoy answers
    // itself (503, connection failure): that answer passes as Envoy's own
    // rather than becoming a 502 that blames an upstream that never
    // answered (and counts as a refused body).
    drop(upstream);
    let body = call("search_customers", 11);
    let (a, b) = body.split_at(body.len() / 2);
    let (answer, _) = post_h2(
        &stack,
        &tool_user("istio-upstream-gone"),
        Parts {
            data: vec![a.to_vec(), b.to_vec()],
            trailers: None,
            gap: Duration::from_millis(400),
        },
    );
    assert_eq!(answer.status, 503, "{answer:?}");
    let record = record_of(&stack, "istio-upstream-gone");
    assert_eq!(record["scrub"], "response_before_decision", "{record}");

    assert!(
        !stack.envoy.log_text().contains("panicked"),
        "{}",
        stack.envoy.log_text()
    );
}
