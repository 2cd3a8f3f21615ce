//! Request bodies through the policy, as the filter and `explain` read
//! them: every body an upstream could read as another call or model than
//! the policy does is refused with `invalid_body` and a detail code, never
//! decided as "no attributes".

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_guard_engine::{Bundle, Claims, Decision, Effect, Policy, Reason, RequestAttrs};
use serde_json::{json, Value};

fn policy_with(extra: Value) -> Policy {
    let mut bundle = json!({
        "name": "t",
        "version": 1,
        "attributes": {"model_header": "x-model"},
        "rules": [
            {"id": "no-delete", "effect": "deny", "when": {"mcp": {"tools": ["delete*"]}}},
            {"id": "tools", "effect": "allow", "when": {"path": {"exact": "/mcp"}}},
            {"id": "cheap-model", "effect": "allow", "when": {"models": ["mini"]}}
        ]
    });
    for (k, v) in extra.as_object().unwrap() {
        bundle[k] = v.clone();
    }
    Policy::new(Bundle::parse(bundle.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// What the filter does with a buffered body.
fn decide(p: &Policy, path: &str, body: &[u8], headers: &[(&str, &str)]) -> Decision {
    let attrs = match p.request_body(body) {
        Ok(attrs) => attrs,
        Err(refusal) => return p.refuse_body(refusal),
    };
    let model = match p.request_model(&attrs, headers) {
        Ok(model) => model,
        Err(refusal) => return p.refuse_body(refusal),
    };
    let request = RequestAttrs::new("POST", path, "h")
        .with_headers(headers)
        .with_model(model);
    p.decide_calls(&Claims::default(), &request, &attrs.mcp)
}

fn outcome(d: &Decision) -> (Effect, Reason, Option<&'static str>) {
    (d.effect, d.reason, d.detail)
}

fn invalid(detail: &'static str) -> (Effect, Reason, Option<&'static str>) {
    (Effect::Deny, Reason::InvalidBody, Some(detail))
}

#[test]
fn plain_calls_are_decided_by_the_rules() {
    let p = policy_with(json!({}));
    assert!(p.needs_body());
    let call = |name: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}"}}}}"#)
    };
    let d = decide(&p, "/mcp", call("search").as_bytes(), &[]);
    assert_eq!((d.effect, d.rule_label()), (Effect::Allow, "tools"));
    let d = decide(&p, "/mcp", call("delete_all").as_bytes(), &[]);
    assert_eq!((d.effect, d.rule_label()), (Effect::Deny, "no-delete"));
    let d = decide(&p, "/mcp", b"", &[]);
    assert_eq!(d.effect, Effect::Allow, "an empty body holds no call");
}

/// Bodies a lenient or first-wins upstream reads as `delete_all`.
#[test]
fn smuggled_calls_are_refused_with_their_code() {
    let p = policy_with(json!({}));
    let cases: &[(&[u8], &str)] = &[
        (
            b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"delete_all\"}}",
            "bom",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all","name":"search"}}"#,
            "duplicate_key",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"delete_all"}}"#,
            "case_colliding_key",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"delete_all"}}"#,
            "case_variant_key",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"delete_all"}}"#,
            "case_variant_key",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all\u0000"}}"#,
            "nul_in_string",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_all"}}"#,
            "trailing_data",
        ),
        (
            br#"{"id":1,"method":"tools/call","params":{"name":"delete_all"}}"#,
            "bad_jsonrpc",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["delete_all"]}}"#,
            "bad_target",
        ),
        (
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all","arguments":{"x":NaN}}}"#,
            "non_finite_number",
        ),
        (b"jsonrpc=2.0&method=tools/call&name=delete_all", "not_json"),
        (b"[]", "bad_batch"),
    ];
    for (body, detail) in cases {
        let d = decide(&p, "/mcp", body, &[]);
        assert_eq!(
            outcome(&d),
            invalid(detail),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(Reason::InvalidBody.deny_status(), 400);
    }
}

#[test]
fn the_body_model_wins_and_must_agree_with_the_header() {
    let p = policy_with(json!({}));
    let mini = br#"{"model":"mini"}"#;
    let d = decide(&p, "/chat", mini, &[]);
    assert_eq!((d.effect, d.rule_label()), (Effect::Allow, "cheap-model"));
    let d = decide(&p, "/chat", mini, &[("x-model", "mini")]);
    assert_eq!(d.effect, Effect::Allow);
    let d = decide(&p, "/chat", mini, &[("x-model", "gpt-4o")]);
    assert_eq!(outcome(&d), invalid("model_mismatch"));
    let d = decide(
        &p,
        "/chat",
        br#"{"model":"gpt-4o"}"#,
        &[("x-model", "mini")],
    );
    assert_eq!(outcome(&d), invalid("model_mismatch"));
    let d = decide(&p, "/chat", b"", &[("x-model", "mini")]);
    assert_eq!(d.effect, Effect::Allow, "the header names the model");
    let d = decide(
        &p,
        "/chat",
        b"",
        &[("x-model", "mini"), ("x-model", "gpt-4o")],
    );
    assert_eq!(outcome(&d), invalid("model_mismatch"));
    for body in [
        r#"{"model":["mini","gpt-4o"]}"#,
        r#"{"model":{"name":"mini"}}"#,
        r#"{"model":7}"#,
    ] {
        let d = decide(&p, "/chat", body.as_bytes(), &[("x-model", "mini")]);
        assert_eq!(outcome(&d), invalid("bad_model"), "{body}");
    }
    let d = decide(
        &p,
        "/chat",
        br#"{"Model":"gpt-4o"}"#,
        &[("x-model", "mini")],
    );
    assert_eq!(outcome(&d), invalid("case_variant_key"));
    let d = decide(&p, "/chat", b"model=gpt-4o", &[("x-model", "mini")]);
    assert_eq!(outcome(&d), invalid("not_json"));
}

#[test]
fn oversize_bodies_keep_their_own_reason() {
    let p = policy_with(json!({"limits": {"max_request_body_bytes": 16}}));
    let d = decide(&p, "/mcp", &[b' '; 17], &[]);
    assert_eq!(outcome(&d), (Effect::Deny, Reason::BodyTooLarge, None));
}

#[test]
fn dry_run_bundles_let_refused_bodies_through_and_say_why() {
    let p = policy_with(json!({"dry_run": true}));
    let d = decide(&p, "/mcp", br#"{"a":1,"a":2}"#, &[]);
    assert_eq!(d.effect, Effect::Allow);
    assert_eq!(d.detail, Some("duplicate_key"));
    assert_eq!(
        d.dry_run.map(|r| (r.effect, r.reason)),
        Some((Effect::Deny, Reason::InvalidBody))
    );
}
