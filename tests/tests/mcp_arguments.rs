//! MCP authorization a level deeper, through the real Envoy on every
//! available target: `tools/call` of `get_invoice` passes only when
//! `arguments.customer_id` is one of the caller's `customers` and
//! `arguments.amount` is at most 1000, and `resources/read` passes only
//! for URIs under the caller's own tenant. Bodies are sent byte for byte,
//! so escapes and number spellings reach the filter as an attacker wrote
//! them. One Envoy per target, every case against it.

use mcp_guard_e2e::http::{self, Reply};
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target};
use serde_json::json;

fn bundle() -> String {
    json!({
        "name": "mcp-arguments",
        "version": 1,
        "rules": [
            {"id": "own-invoices", "effect": "allow", "when": {
                "path": {"exact": "/mcp"},
                "mcp": {"tools": ["get_invoice"], "arguments": [
                    {"path": "customer_id", "in_claim": "customers"},
                    {"path": "amount", "max": 1000}
                ]}}},
            {"id": "tenant-files", "effect": "allow", "when": {
                "path": {"exact": "/mcp"},
                "mcp": {"resource_templates": ["file:///tenants/{tenant}/{path*}"]},
                "relations": [{"claim": "tenant", "equals_capture": "tenant"}]}}
        ]
    })
    .to_string()
}

/// What must happen to one call.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Allowed: the upstream answered.
    Upstream,
    /// Answered locally with this status and code (the reply's `detail`,
    /// else its `reason`); the upstream never saw it.
    Refused(u16, &'static str),
}

fn invoice(arguments: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_invoice","arguments":{arguments}}}}}"#
    )
}

fn read(uri: &str) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{{"uri":"{uri}"}}}}"#)
}

fn cases() -> Vec<(String, Expect)> {
    vec![
        (invoice(r#"{"customer_id":"acme","amount":1000}"#), Upstream),
        (
            invoice(r#"{"customer_id":"initech","amount":12.5}"#),
            Upstream,
        ),
        (
            invoice(r#"{"customer\u005fid":"acme","amount":1e3}"#),
            Upstream,
        ),
        (
            invoice(r#"{"customer_id":"globex","amount":5}"#),
            Refused(403, "default_deny"),
        ),
        (
            invoice(r#"{"customer_id":"acme","amount":1001}"#),
            Refused(403, "default_deny"),
        ),
        (
            invoice(r#"{"customer_id":"acme","amount":1000.0000000000000001}"#),
            Refused(400, "argument_inexact_number"),
        ),
        (
            invoice(r#"{"customer_id":"acme","amount":9007199254740993}"#),
            Refused(400, "argument_inexact_number"),
        ),
        (
            invoice(r#"{"customer_id":"acme","amount":"5"}"#),
            Refused(403, "default_deny"),
        ),
        (
            invoice(r#"{"customer_id":"acme"}"#),
            Refused(403, "default_deny"),
        ),
        (
            invoice(r#"{"customer_id":["acme","globex"],"amount":5}"#),
            Refused(403, "default_deny"),
        ),
        (
            invoice(r#"{"Customer_ID":"acme","amount":5}"#),
            Refused(400, "argument_case_variant_key"),
        ),
        (
            invoice(r#"{"customer_id":"globex","customer\u005fid":"acme","amount":5}"#),
            Refused(400, "duplicate_key"),
        ),
        (
            invoice(r#"{"customer_id":"acme\u0000","amount":5}"#),
            Refused(400, "argument_nul_in_string"),
        ),
        (read("file:///tenants/acme/reports/q1.txt"), Upstream),
        (
            read("file:///tenants/globex/reports/q1.txt"),
            Refused(403, "default_deny"),
        ),
        (
            read("file:///tenants/acme/../globex/q1.txt"),
            Refused(400, "uri_dot_segment"),
        ),
        (
            read("file:///tenants/acme/%2e%2e/globex/q1.txt"),
            Refused(400, "uri_encoding"),
        ),
        (
            read("file:///tenants/acme%2F..%2Fglobex/q1.txt"),
            Refused(400, "uri_encoding"),
        ),
        (
            read("FILE:///tenants/acme/q1.txt"),
            Refused(400, "uri_scheme_case"),
        ),
    ]
}

use Expect::{Refused, Upstream};

fn reached_upstream(reply: &Reply) -> bool {
    reply.header("x-demo-upstream").is_some()
}

#[test]
fn argument_and_resource_rules_hold_in_envoy() {
    for target in target::available() {
        eprintln!(
            "argument_and_resource_rules_hold_in_envoy: {}",
            target.name()
        );
        run_on(&target);
    }
}

fn run_on(target: &Target) {
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        bundles: vec![("mcp-arguments".into(), bundle())],
        bundle_name: "mcp-arguments".into(),
        concurrency: 1,
        ..StackOptions::default()
    })
    .expect("stack starts");
    let token = tokens::mint(json!({
        "sub": "alice", "tenant": "acme", "customers": ["acme", "initech"]
    }))
    .expect("token");
    let url = stack.url("/mcp");
    let headers = [("accept", "application/json, text/event-stream")];
    let mut failures = Vec::new();
    for (body, expect) in cases() {
        let reply = http::send("POST", &url, Some(&token), &headers, Some(&body)).expect("send");
        let answer = reply.json();
        let code = answer["detail"]
            .as_str()
            .or_else(|| answer["reason"].as_str())
            .unwrap_or("(none)");
        let upstream = reached_upstream(&reply);
        let held = match expect {
            Upstream => upstream,
            Refused(status, expected) => !upstream && reply.status == status && code == expected,
        };
        if !held {
            failures.push(format!(
                "{}: {body}: expected {expect:?}, got {} upstream={upstream} {}",
                target.name(),
                reply.status,
                reply.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
