//! MCP authorization a level deeper: rules on tool and prompt call
//! arguments and on resource URI templates, through the policy as the
//! filter uses it (body read once, every call decided).

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_guard_engine::{
    Bundle, BundleError, Claims, Decision, Effect, Policy, Reason, RequestAttrs, TargetKind,
};
use serde_json::{json, Value};

fn bundle(rules: Value) -> Value {
    json!({"name": "args", "version": 1, "rules": rules})
}

fn compile(rules: Value) -> Result<Policy, BundleError> {
    Policy::compile(bundle(rules).to_string().as_bytes())
}

fn invoices() -> Policy {
    compile(json!([
        {"id": "no-wire-for-guests", "effect": "deny", "when": {
            "claims": [{"claim": "role", "equals": "guest"}],
            "mcp": {"tools": ["get_invoice"], "arguments": [{"path": "wire", "exists": true}]}}},
        {"id": "own-invoices", "effect": "allow", "when": {"mcp": {
            "tools": ["get_invoice"],
            "arguments": [
                {"path": "customer_id", "in_claim": "customers"},
                {"path": "amount", "max": 1000}
            ]}}},
        {"id": "region-prompt", "effect": "allow", "when": {"mcp": {
            "prompts": ["summary"],
            "arguments": [{"path": "region", "one_of": ["eu", "us"]}]}}},
        {"id": "tenant-files", "effect": "allow", "when": {
            "mcp": {"resource_templates": ["file:///tenants/{tenant}/{path*}"]},
            "relations": [{"claim": "tenant", "equals_capture": "tenant"}]}},
        {"id": "listing", "effect": "allow", "when": {"mcp": {"methods": ["*/list"]}}}
    ]))
    .unwrap()
}

fn caller() -> Claims {
    Claims::new(
        json!({"sub": "u1", "customers": ["acme", "initech"], "tenant": "acme", "role": "guest"})
            .as_object()
            .unwrap()
            .clone(),
    )
}

fn decide(p: &Policy, body: &str) -> Decision {
    let attrs = match p.request_body(body.as_bytes()) {
        Ok(attrs) => attrs,
        Err(refusal) => return p.refuse_body(refusal),
    };
    let request = RequestAttrs::new("POST", "/mcp", "h");
    p.decide_calls(&caller(), &request, &attrs.mcp)
}

fn call(method: &str, name: &str, arguments: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"name":"{name}","arguments":{arguments}}}}}"#
    )
}

fn invoice(arguments: &str) -> (Effect, Reason, Option<&'static str>) {
    let d = decide(&invoices(), &call("tools/call", "get_invoice", arguments));
    (d.effect, d.reason, d.detail)
}

fn read(uri: &str) -> (Effect, Reason, Option<&'static str>) {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":"{uri}"}}}}"#
    );
    let d = decide(&invoices(), &body);
    (d.effect, d.reason, d.detail)
}

const ALLOW: (Effect, Reason, Option<&str>) = (Effect::Allow, Reason::RuleAllow, None);
const DENY: (Effect, Reason, Option<&str>) = (Effect::Deny, Reason::DefaultDeny, None);

#[test]
fn tool_calls_are_allowed_only_with_permitted_arguments() {
    assert_eq!(invoice(r#"{"customer_id":"acme","amount":1000}"#), ALLOW);
    assert_eq!(invoice(r#"{"customer_id":"initech","amount":0.5}"#), ALLOW);
    assert_eq!(invoice(r#"{"customer_id":"globex","amount":10}"#), DENY);
    assert_eq!(invoice(r#"{"customer_id":"acme","amount":1001}"#), DENY);
    assert_eq!(
        invoice(r#"{"customer_id":"acme","amount":1000.0000000000000001}"#),
        (
            Effect::Deny,
            Reason::InvalidBody,
            Some("argument_inexact_number")
        )
    );
    assert_eq!(invoice(r#"{"customer_id":"acme","amount":"10"}"#), DENY);
    assert_eq!(invoice(r#"{"customer_id":"acme"}"#), DENY, "absent amount");
    assert_eq!(
        invoice(r#"{"customer_id":["acme","globex"],"amount":1}"#),
        DENY
    );
    assert_eq!(invoice(r#"{}"#), DENY);
    let no_args =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_invoice"}}"#;
    assert_eq!(decide(&invoices(), no_args).effect, Effect::Deny);
    // A deny rule on arguments.
    let d = decide(
        &invoices(),
        &call(
            "tools/call",
            "get_invoice",
            r#"{"customer_id":"acme","amount":1,"wire":false}"#,
        ),
    );
    assert_eq!((d.effect, d.reason), (Effect::Deny, Reason::RuleDeny));
}

#[test]
fn arguments_parsers_could_read_differently_are_refused() {
    let invalid = |detail| (Effect::Deny, Reason::InvalidBody, Some(detail));
    assert_eq!(
        invoice(r#"{"customer_id":"globex","customer\u005fid":"acme","amount":1}"#),
        invalid("duplicate_key")
    );
    assert_eq!(
        invoice(r#"{"Customer_Id":"globex","amount":1}"#),
        invalid("argument_case_variant_key")
    );
    assert_eq!(
        invoice(r#"{"customer_id":"acme","amount":1,"Wire":true}"#),
        invalid("argument_case_variant_key"),
        "a case variant of a key the deny rule reads"
    );
    assert_eq!(
        invoice(r#"{"customer_id":"acme\u0000","amount":1}"#),
        invalid("argument_nul_in_string")
    );
    assert_eq!(
        invoice(r#"{"customer_id":"\udc00","amount":1}"#),
        invalid("lone_surrogate")
    );
    assert_eq!(
        invoice(r#"{"customer_id":"acme","amount":1e999}"#),
        invalid("bad_number")
    );
    assert_eq!(invoice(r#"["acme"]"#), invalid("bad_arguments"));
    // Unicode escapes read the same everywhere: allowed as the plain key.
    assert_eq!(invoice(r#"{"customer\u005fid":"acme","amount":1}"#), ALLOW);
    assert_eq!(invoice(r#"{"customer_id":"\u0061cme","amount":1}"#), ALLOW);
}

#[test]
fn batches_are_denied_by_any_call_with_bad_arguments() {
    let good = call(
        "tools/call",
        "get_invoice",
        r#"{"customer_id":"acme","amount":1}"#,
    );
    let bad = call(
        "tools/call",
        "get_invoice",
        r#"{"customer_id":"globex","amount":1}"#,
    );
    assert_eq!(
        decide(&invoices(), &format!("[{good},{good}]")).effect,
        Effect::Allow
    );
    assert_eq!(
        decide(&invoices(), &format!("[{good},{bad}]")).effect,
        Effect::Deny
    );
    // One double text in one call cannot widen another call's check.
    let split = call(
        "tools/call",
        "get_invoice",
        r#"{"customer_id":"acme","amount":1000.0}"#,
    );
    let twin = call(
        "tools/call",
        "get_invoice",
        r#"{"customer_id":"acme","amount":1000.0000000000000001}"#,
    );
    assert_eq!(
        decide(&invoices(), &format!("[{split},{twin}]")).effect,
        Effect::Deny
    );
}

#[test]
fn prompts_get_checks_arguments_too() {
    let prompt = |args: &str| decide(&invoices(), &call("prompts/get", "summary", args)).effect;
    assert_eq!(prompt(r#"{"region":"eu"}"#), Effect::Allow);
    assert_eq!(prompt(r#"{"region":"apac"}"#), Effect::Deny);
    assert_eq!(prompt(r#"{}"#), Effect::Deny);
}

#[test]
fn listing_stays_a_visibility_check() {
    let p = invoices();
    let request = RequestAttrs::new("POST", "/mcp", "h");
    // get_invoice is listed (its calls are checked when made), even though
    // a deny rule with argument tests names it.
    assert!(p.allows_target(&caller(), &request, TargetKind::Tool, "get_invoice"));
    assert!(p.allows_target(&caller(), &request, TargetKind::Prompt, "summary"));
    assert!(!p.allows_target(&caller(), &request, TargetKind::Tool, "delete_all"));
    assert!(p.allows_target(
        &caller(),
        &request,
        TargetKind::Resource,
        "file:///tenants/acme/a.txt"
    ));
    assert!(!p.allows_target(
        &caller(),
        &request,
        TargetKind::Resource,
        "file:///tenants/globex/a.txt"
    ));
    // Argument rules never match a call that has no arguments to check.
    let decided = p.decide(&caller(), &request);
    assert_eq!(decided.effect, Effect::Deny);
}

#[test]
fn resource_templates_bind_the_tenant() {
    assert_eq!(read("file:///tenants/acme/reports/q1.txt"), ALLOW);
    assert_eq!(read("file:///tenants/globex/reports/q1.txt"), DENY);
    assert_eq!(read("file:///tenants/acme"), DENY);
    assert_eq!(read("file:///other/acme/x"), DENY);
    let refused = |detail| (Effect::Deny, Reason::InvalidRequest, Some(detail));
    assert_eq!(
        read("file:///tenants/acme/../globex/x"),
        refused("uri_dot_segment")
    );
    assert_eq!(
        read("file:///tenants/acme/%2e%2e/globex/x"),
        refused("uri_encoding")
    );
    assert_eq!(
        read("file:///tenants/acme%2F..%2Fglobex/x"),
        refused("uri_encoding")
    );
    assert_eq!(
        read("file:///tenants/acme//x"),
        refused("uri_empty_segment")
    );
    assert_eq!(
        read("file:///tenants/acme/x?y=../../globex"),
        refused("uri_query_or_fragment")
    );
    assert_eq!(read("FILE:///tenants/acme/x"), refused("uri_scheme_case"));
    assert_eq!(Reason::InvalidRequest.deny_status(), 400);
}

fn issue(rules: Value) -> String {
    match compile(rules) {
        Ok(_) => panic!("bundle accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn mistakes_are_bundle_errors_at_their_path() {
    let e = issue(
        json!([{"id": "a", "effect": "allow", "when": {"mcp": {"arguments": [
            {"path": "x", "equals": 1},
            {"path": "amount", "lte": 5}
        ]}}}]),
    );
    assert!(e.contains("rules[0].when.mcp.arguments[1]"), "{e}");
    assert!(e.contains("unknown operator `lte`"), "{e}");
    let e = issue(
        json!([{"id": "a", "effect": "allow", "when": {"mcp": {"arguments": [
            {"path": "amount", "max": 5, "equals": 5}
        ]}}}]),
    );
    assert!(
        e.contains("rules[0].when.mcp.arguments[0]") && e.contains("one operator"),
        "{e}"
    );
    let e = issue(json!([{"id": "a", "effect": "allow", "when": {"mcp": {
        "resource_templates": ["file:///t/{tenant}/x", "file:///{t}/../x"]}}}]));
    assert!(
        e.contains("$.rules[0].when.mcp.resource_templates[1]"),
        "{e}"
    );
    let e = issue(json!([{"id": "a", "effect": "allow", "when": {
        "mcp": {"resource_templates": ["file:///t/{tenant}/x", "file:///u/{user}"]},
        "relations": [{"claim": "tenant", "equals_capture": "tenant"}]}}]));
    assert!(
        e.contains("$.rules[0].when.relations[0].equals_capture"),
        "{e}"
    );
    let e = issue(json!([{"id": "a", "effect": "allow", "when": {
        "relations": [{"claim": "tenant", "equals_capture": "tenant"}]}}]));
    assert!(e.contains("equals_capture"), "{e}");
    let e = issue(json!([{"id": "a", "effect": "allow", "when": {
        "path": {"template": "/t/{tenant}"},
        "mcp": {"resource_templates": ["file:///t/{tenant}"]},
        "relations": [{"claim": "tenant", "equals_capture": "tenant", "equals_path": "tenant"}]}}]));
    assert!(e.contains("needs exactly one of"), "{e}");
    let e = issue(json!([{"id": "a", "effect": "allow", "when": {"mcp": {
        "resource_templates": ["file:///t/{tenant}"],
        "arguments": [{"path": "x", "exists": true}]}}}]));
    assert!(
        e.contains("$.rules[0].when.mcp.arguments") && e.contains("never match"),
        "{e}"
    );
    // And a good bundle round-trips through its own serialisation.
    let p = invoices();
    let again = Bundle::parse(serde_json::to_string(p.bundle()).unwrap().as_bytes()).unwrap();
    assert_eq!(&again, p.bundle());
}

#[test]
fn explain_names_argument_tests() {
    let p = invoices();
    let attrs = p
        .request_body(
            call(
                "tools/call",
                "get_invoice",
                r#"{"customer_id":"globex","amount":5}"#,
            )
            .as_bytes(),
        )
        .unwrap();
    let request = RequestAttrs::new("POST", "/mcp", "h").with_mcp(attrs.mcp.first());
    let explained = p.explain(&caller(), &request);
    let rule = explained
        .rules
        .iter()
        .find(|r| r.id == "own-invoices")
        .unwrap();
    let failed: Vec<_> = rule.conditions.iter().filter(|c| !c.held).collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0].condition.contains("in_claim"), "{failed:?}");
    assert_eq!(failed[0].actual, "\"globex\"");
}

#[test]
fn bundles_without_argument_rules_do_not_read_arguments() {
    let p = compile(json!([{"id": "t", "effect": "allow", "when": {"mcp": {"tools": ["x"]}}}]))
        .unwrap();
    // Arguments a rule would refuse are not looked at.
    let body = call(
        "tools/call",
        "x",
        r#"{"Customer_Id":"a","note":"\u0000","n":1.5}"#,
    );
    let attrs = p.request_body(body.as_bytes()).unwrap();
    assert_eq!(
        attrs.mcp[0].arguments,
        mcp_guard_engine::arguments::CallArguments::Absent
    );
}

/// Attack: `mcp.resources` globs (no template in the bundle) matched
/// resource URIs as sent, so `file:///public/*` allowed
/// `file:///public/../etc/passwd` (a server resolving dot segments reads
/// `/etc/passwd`) and a deny on `file:///etc/*` missed
/// `file:///tmp/../etc/passwd`. Rules on resource names now read
/// canonical URIs only, as template rules do.
#[test]
fn resource_globs_are_matched_on_canonical_uris_only() {
    let p = compile(json!([
        {"id": "no-etc", "effect": "deny", "when": {"mcp": {"resources": ["file:///etc/*"]}}},
        {"id": "public", "effect": "allow", "when": {"mcp": {"resources": ["file:///public/*"]}}},
        {"id": "tmp", "effect": "allow", "when": {"mcp": {"resources": ["file:///tmp/*"]}}}
    ]))
    .unwrap();
    let read = |uri: &str| {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":"{uri}"}}}}"#
        );
        let d = decide(&p, &body);
        (d.effect, d.reason, d.detail)
    };
    assert_eq!(read("file:///public/a.txt").0, Effect::Allow);
    assert_eq!(read("file:///etc/passwd").0, Effect::Deny);
    for uri in [
        "file:///public/../etc/passwd",
        "file:///tmp/../etc/passwd",
        "file:///tmp/%2e%2e/etc/passwd",
        "file:///tmp/..%2Fetc/passwd",
        "file:///tmp//etc/passwd",
        "file:/etc/passwd",
        "file://localhost/etc/passwd",
    ] {
        let (effect, reason, _) = read(uri);
        assert_eq!(effect, Effect::Deny, "{uri}");
        assert_eq!(reason, Reason::InvalidRequest, "{uri}");
    }
}

/// Number spellings other parsers read as the same value are judged by
/// that value; ones they read as another value never reach a rule.
#[test]
fn number_spellings_are_judged_by_their_exact_value() {
    for amount in [
        "1E3", "0.1e4", "1000.000", "1e+3", "10000e-1", "-0", "-0.0", "1e-0", "0e999",
    ] {
        assert_eq!(
            invoice(&format!(r#"{{"customer_id":"acme","amount":{amount}}}"#)),
            ALLOW,
            "{amount}"
        );
    }
    for amount in ["1.001E3", "1e4", "10001e-1", "1000.00000000001"] {
        assert_eq!(
            invoice(&format!(r#"{{"customer_id":"acme","amount":{amount}}}"#)),
            DENY,
            "{amount}"
        );
    }
    let inexact = (
        Effect::Deny,
        Reason::InvalidBody,
        Some("argument_inexact_number"),
    );
    for amount in [
        "999.9999999999999999",
        "9007199254740993",
        "1e-400",
        "12345678901234567890",
    ] {
        assert_eq!(
            invoice(&format!(r#"{{"customer_id":"acme","amount":{amount}}}"#)),
            inexact,
            "{amount}"
        );
    }
    // Leading zeros and huge exponents are not JSON at all.
    for amount in ["01000", "1e400"] {
        assert_eq!(
            invoice(&format!(r#"{{"customer_id":"acme","amount":{amount}}}"#)).1,
            Reason::InvalidBody,
            "{amount}"
        );
    }
    // A claim holding numbers grants numbers, never their strings.
    let p = compile(json!([{"id": "n", "effect": "allow", "when": {"mcp": {
        "tools": ["t"], "arguments": [{"path": "org", "in_claim": "orgs"}]}}}]))
    .unwrap();
    let claims = Claims::new(
        json!({"orgs": [7, 8.0, null, [9]]})
            .as_object()
            .unwrap()
            .clone(),
    );
    let request = RequestAttrs::new("POST", "/mcp", "h");
    let effect = |org: &str| {
        let attrs =
            p.request_body(call("tools/call", "t", &format!(r#"{{"org":{org}}}"#)).as_bytes());
        p.decide_calls(&claims, &request, &attrs.unwrap().mcp)
            .effect
    };
    assert_eq!(effect("7"), Effect::Allow);
    assert_eq!(effect("8"), Effect::Allow);
    assert_eq!(effect("7e0"), Effect::Allow);
    assert_eq!(effect("[7,8]"), Effect::Allow);
    for denied in [r#""7""#, "null", "9", "[9]", "[]", "[7,9]", r#"{"a":7}"#] {
        assert_eq!(effect(denied), Effect::Deny, "{denied}");
    }
}
