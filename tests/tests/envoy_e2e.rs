//! End to end through a real Envoy (V8) running the filter, with the
//! control service and the demo upstream on free loopback ports.
//!
//! One stack serves every case in this file: starting Envoy is the slow
//! part, and the cases are independent requests. The stack lives in one test
//! function so that it is stopped (dropped) when the cases end, pass or fail.

use mcp_guard_demo_upstream::{CHAT_REPLY, DEMO_CARD, DEMO_EMAIL, DEMO_PHONE};
use mcp_guard_e2e::http::{send, Reply};
use mcp_guard_e2e::prometheus;
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target};
use serde_json::Value;

#[test]
fn demo_stack_end_to_end() {
    for target in target::available() {
        eprintln!("demo_stack_end_to_end: {}", target.name());
        demo_stack_end_to_end_on(&target);
    }
}

fn demo_stack_end_to_end_on(target: &Target) {
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        ..StackOptions::default()
    })
    .expect("stack starts");
    allowed_caller_gets_the_answer_with_the_email_scrubbed(&stack);
    forbidden_claims_get_403_with_rule_reason_and_details(&stack);
    missing_token_gets_401_with_reason(&stack);
    forged_token_is_rejected_by_jwt_authn_before_the_filter(&stack);
    a_forged_payload_header_grants_nothing(&stack);
    decisions_are_counted_in_envoy_stats(&stack);
    mcp_tools_are_authorised_per_tool_and_lists_are_filtered(&stack);
    streamed_answers_are_scrubbed_across_events(&stack);
}

/// The demo reply as callers see it under the demo bundle (cards keep
/// their last four digits).
fn scrubbed_reply() -> String {
    CHAT_REPLY
        .replace(DEMO_EMAIL, "[EMAIL]")
        .replace(DEMO_PHONE, "[PHONE]")
        .replace(DEMO_CARD, "[CARD ****1111]")
}

fn streamed_answers_are_scrubbed_across_events(stack: &Stack) {
    let body = r#"{"model":"demo-llm","stream":true,"messages":[{"role":"user","content":"Who can I call?"}]}"#;
    let reply = send(
        "POST",
        &stack.url("/v1/chat/completions"),
        Some(&tokens::alice().unwrap()),
        &[],
        Some(body),
    )
    .unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    for secret in [DEMO_EMAIL, "oe@exam", DEMO_PHONE, "4111 1111"] {
        assert!(
            !reply.body.contains(secret),
            "{secret} leaked: {}",
            reply.body
        );
    }
    let mut joined = String::new();
    for event in reply
        .body
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
    {
        if event == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(event)
            .unwrap_or_else(|e| panic!("event is not JSON ({e}): {event}"));
        joined.push_str(
            v["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default(),
        );
    }
    assert_eq!(joined, scrubbed_reply());
    assert!(reply.body.trim_end().ends_with("data: [DONE]"));
}

const CHAT: &str =
    r#"{"model":"demo-llm","messages":[{"role":"user","content":"Who can I call?"}]}"#;

fn chat(stack: &Stack, token: Option<&str>) -> Reply {
    send(
        "POST",
        &stack.url("/v1/chat/completions"),
        token,
        &[],
        Some(CHAT),
    )
    .expect("request completes")
}

/// The access-log entry of a request, found by the request id Envoy
/// generated (echoed in denial bodies) or by the subject.
fn access_log_entry(stack: &Stack, matches: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        if let Some(line) = stack
            .envoy
            .access_log_lines()
            .into_iter()
            .find(|l| matches(l))
        {
            return line;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "no matching access-log line in {:?}",
        stack.envoy.access_log_lines()
    );
}

fn decision_of(line: &Value) -> Value {
    assert!(line["mcp"].is_object(), "the record is embedded as JSON");
    line["mcp"].clone()
}

fn allowed_caller_gets_the_answer_with_the_email_scrubbed(stack: &Stack) {
    let reply = chat(stack, Some(&tokens::alice().unwrap()));
    assert_eq!(reply.status, 200, "{reply:?}");
    let content = reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !reply.body.contains(DEMO_EMAIL),
        "email leaked: {}",
        reply.body
    );
    assert_eq!(content, scrubbed_reply());
    let request_id = reply.json()["id"].clone();
    assert!(request_id.is_string());

    let line = access_log_entry(stack, |l| {
        l["status"] == 200 && l["mcp"]["sub"] == "alice" && l["mcp"]["redactions"].is_object()
    });
    let decision = decision_of(&line);
    assert_eq!(decision["decision"], "allow");
    assert_eq!(decision["rule"], "model-users-chat");
    assert_eq!(decision["policy"], "demo");
    assert_eq!(decision["version"], 1);
    assert_eq!(
        decision["redactions"],
        serde_json::json!({"email": 1, "phone": 1, "card": 1})
    );
}

fn forbidden_claims_get_403_with_rule_reason_and_details(stack: &Stack) {
    let reply = chat(stack, Some(&tokens::mallory().unwrap()));
    assert_eq!(reply.status, 403, "{reply:?}");
    let body = reply.json();
    assert_eq!(body["error"], "forbidden");
    assert_eq!(body["reason"], "default_deny");
    assert_eq!(body["rule"], "default_deny");
    let request_id = body["request_id"].as_str().unwrap().to_string();
    assert!(!request_id.is_empty());
    assert_eq!(
        reply.header("x-demo-upstream"),
        None,
        "must not reach the upstream"
    );

    let line = access_log_entry(stack, |l| l["mcp"]["request_id"] == request_id.as_str());
    assert_eq!(line["status"], 403);
    assert_eq!(line["mcp"]["details"], "mcp_default_deny");
    let decision = decision_of(&line);
    assert_eq!(decision["decision"], "deny");
    assert_eq!(decision["sub"], "mallory");
}

fn missing_token_gets_401_with_reason(stack: &Stack) {
    let reply = chat(stack, None);
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.json()["reason"], "missing_token");
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Bearer realm=\"mcp-guard\"")
    );
    let request_id = reply.json()["request_id"].as_str().unwrap().to_string();
    let line = access_log_entry(stack, |l| l["mcp"]["request_id"] == request_id.as_str());
    assert_eq!(line["mcp"]["details"], "mcp_missing_token");
    assert_eq!(decision_of(&line)["reason"], "missing_token");
}

fn forged_token_is_rejected_by_jwt_authn_before_the_filter(stack: &Stack) {
    let token = tokens::alice().unwrap();
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[1] = parts[1].chars().rev().collect();
    let reply = chat(stack, Some(&parts.join(".")));
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.header("x-demo-upstream"), None);
}

/// The native module reads the verified payload from `jwt_authn`'s
/// `forward_payload_header` (the module ABI cannot read the metadata
/// `Struct`). A client-sent copy of that header, here carrying alice's
/// genuine payload, must grant nothing on either target: without a token
/// it is still "no token", next to mallory's own token it is still mallory.
fn a_forged_payload_header_grants_nothing(stack: &Stack) {
    const HEADER: &str = "x-mcp-guard-jwt-payload";
    let alice = tokens::alice().unwrap();
    let payload = alice.split('.').nth(1).unwrap().to_string();
    let url = stack.url("/v1/chat/completions");

    let reply = send("POST", &url, None, &[(HEADER, &payload)], Some(CHAT)).unwrap();
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.json()["reason"], "missing_token", "{reply:?}");
    assert_eq!(reply.header("x-demo-upstream"), None);

    let mallory = tokens::mallory().unwrap();
    let reply = send(
        "POST",
        &url,
        Some(&mallory),
        &[(HEADER, &payload)],
        Some(CHAT),
    )
    .unwrap();
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.header("x-demo-upstream"), None);
    let request_id = reply.json()["request_id"].as_str().unwrap().to_string();
    let line = access_log_entry(stack, |l| l["mcp"]["request_id"] == request_id.as_str());
    assert_eq!(decision_of(&line)["sub"], "mallory");
}

fn decisions_are_counted_in_envoy_stats(stack: &Stack) {
    chat(stack, None);
    let samples = prometheus::scrape(&stack.envoy.admin).unwrap();
    let labels = [("outcome", "deny"), ("reason", "missing_token")];
    let count = samples.sum("mcp_decisions_total", &labels);
    assert!(count >= 1.0, "counter is {count}");
    assert!(samples.sum("mcp_decisions_total", &[]) >= count);
}

fn mcp(stack: &Stack, token: &str, body: Value, extra: &[(&str, &str)]) -> Reply {
    send(
        "POST",
        &stack.url("/mcp"),
        Some(token),
        extra,
        Some(&body.to_string()),
    )
    .expect("request completes")
}

fn mcp_tools_are_authorised_per_tool_and_lists_are_filtered(stack: &Stack) {
    let alice = tokens::alice().unwrap();
    let list = mcp(
        stack,
        &alice,
        serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
        &[],
    );
    assert_eq!(list.status, 200, "{list:?}");
    let names: Vec<String> = list.json()["result"]["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["search_customers", "get_weather"],
        "delete_customer is hidden from non-admins"
    );

    let search = serde_json::json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "search_customers", "arguments": {"query": "jane"}}});
    let forged = [("x-mcp-subject", "root")];
    let reply = mcp(stack, &alice, search, &forged);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        !reply.body.contains(DEMO_EMAIL),
        "email leaked: {}",
        reply.body
    );
    assert!(reply.json()["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("[EMAIL]"));
    let seen = reply
        .header("x-seen-headers")
        .unwrap_or_default()
        .to_string();
    assert!(
        seen.contains("x-mcp-subject") && seen.contains("x-mcp-tenant"),
        "injected identity reached upstream: {seen}"
    );

    let delete = serde_json::json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "delete_customer", "arguments": {"id": 1}}});
    let denied = mcp(stack, &alice, delete, &[]);
    assert_eq!(denied.status, 403, "{denied:?}");
    assert_eq!(denied.json()["reason"], "default_deny");
    let request_id = denied.json()["request_id"].as_str().unwrap().to_string();
    let line = access_log_entry(stack, |l| l["mcp"]["request_id"] == request_id.as_str());
    let decision = decision_of(&line);
    assert_eq!(decision["mcp_method"], "tools/call");
    assert_eq!(decision["mcp_target"], "delete_customer");
}

/// The second identity source: the filter verifies a token itself (the
/// bundle's `identity.verify`), here from a header `jwt_authn` does not
/// read, so Envoy passes the request through without metadata.
#[test]
fn filter_side_verification_stack() {
    for target in target::available() {
        eprintln!("filter_side_verification_stack: {}", target.name());
        filter_side_verification_stack_on(&target);
    }
}

fn filter_side_verification_stack_on(target: &Target) {
    let jwks: Value = serde_json::from_str(tokens::DEMO_JWKS).unwrap();
    let bundle = serde_json::json!({
        "name": "agents", "version": 1,
        "identity": {"verify": {"header": "x-agent-token", "prefix": "",
            "issuers": [{"iss": tokens::DEMO_ISSUER, "audiences": [tokens::DEMO_AUDIENCE], "algorithms": ["ES256"], "jwks": jwks}]}},
        "rules": [{"id": "agents-chat", "effect": "allow",
                   "when": {"path": {"exact": "/v1/chat/completions"}, "claims": [{"claim": "roles", "contains_any": ["agent"]}]}}]
    });
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        bundles: vec![("agents".into(), bundle.to_string())],
        bundle_name: "agents".into(),
        ..StackOptions::default()
    })
    .expect("stack starts");
    let url = stack.url("/v1/chat/completions");
    let agent = tokens::mint(serde_json::json!({"sub": "agent-7", "roles": ["agent"]})).unwrap();
    let reply = send("POST", &url, None, &[("x-agent-token", &agent)], Some(CHAT)).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!reply.body.contains(DEMO_EMAIL));

    let expired =
        tokens::mint(serde_json::json!({"sub": "agent-7", "roles": ["agent"], "exp": 1_000_000}))
            .unwrap();
    let reply = send(
        "POST",
        &url,
        None,
        &[("x-agent-token", &expired)],
        Some(CHAT),
    )
    .unwrap();
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(
        (
            reply.json()["reason"].as_str(),
            reply.json()["detail"].as_str()
        ),
        (Some("invalid_token"), Some("expired"))
    );
    assert!(reply
        .header("www-authenticate")
        .unwrap_or_default()
        .contains("invalid_token"));

    let line = access_log_entry(&stack, |l| l["status"] == 401);
    assert_eq!(line["mcp"]["details"], "mcp_invalid_token");
    assert_eq!(decision_of(&line)["detail"], "expired");
}

/// Claims keep the types `jwt_authn` gave them on the way through real
/// Envoy: the filter reads the `Metadata` protobuf, where a fraction is a
/// number and a string is a string whatever its bytes look like.
#[test]
fn claims_keep_their_types_through_envoy() {
    for target in target::available() {
        eprintln!("claims_keep_their_types_through_envoy: {}", target.name());
        claims_keep_their_types_through_envoy_on(&target);
    }
}

fn claims_keep_their_types_through_envoy_on(target: &Target) {
    let bundle = serde_json::json!({
        "name": "typed-claims", "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload"},
        "rules": [
            {"id": "low-risk", "effect": "allow",
             "when": {"path": {"exact": "/low"}, "claims": [{"claim": "risk", "lt": 0.9}]}},
            {"id": "high-risk", "effect": "allow",
             "when": {"path": {"exact": "/high"}, "claims": [{"claim": "risk", "gt": 0.9}]}},
            {"id": "admins", "effect": "allow",
             "when": {"path": {"exact": "/admin"}, "claims": [{"claim": "admin", "equals": true}]}}
        ]
    });
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        bundles: vec![("typed-claims".into(), bundle.to_string())],
        bundle_name: "typed-claims".into(),
        ..StackOptions::default()
    })
    .expect("stack starts");
    // The status a GET gets, and whether it reached the upstream.
    let get = |claims: Value, path: &str| {
        let token = tokens::mint(claims).unwrap();
        let reply = send("GET", &stack.url(path), Some(&token), &[], None).unwrap();
        let upstream = reply.header("x-demo-upstream").is_some();
        if !upstream {
            assert_eq!(reply.status, 403, "{reply:?}");
            assert_eq!(reply.json()["reason"], "default_deny", "{reply:?}");
        }
        upstream
    };
    let claims = |extra: Value| {
        let mut c = serde_json::json!({"sub": "carol"});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };

    assert!(get(claims(serde_json::json!({"risk": 0.95})), "/high"));
    assert!(!get(claims(serde_json::json!({"risk": 0.95})), "/low"));
    assert!(get(claims(serde_json::json!({"risk": 0.85})), "/low"));
    assert!(!get(claims(serde_json::json!({"risk": 0.85})), "/high"));
    // A string whose bytes are the f64 2.0 is no number.
    let two = "\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}\u{0}@";
    assert!(!get(claims(serde_json::json!({"risk": two})), "/high"));
    // Nor is the one-byte string "\u{1}" the boolean true.
    assert!(!get(
        claims(serde_json::json!({"admin": "\u{1}"})),
        "/admin"
    ));
    assert!(get(claims(serde_json::json!({"admin": true})), "/admin"));
    // A null claim: Envoy cannot serialise it at the per-path property,
    // but the Metadata message carries it.
    assert!(get(
        claims(serde_json::json!({"risk": 0.95, "manager": null})),
        "/high"
    ));
}
