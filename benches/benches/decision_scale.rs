//! Decision cost as bundles grow: 10, 100, 1,000 and 10,000 rules, natively
//! (`Policy::decide_calls`) and through the real `.wasm` in the wasmtime
//! host (a whole MCP request: metadata decoding, body parse, decision,
//! filter state, metrics), in the same run.
//!
//! The bundles mix what large real bundles hold: per-tool MCP rules with a
//! role condition, exact-path rules, prefix rules and a few catch-all deny
//! rules on claims; the request is a `tools/call` that one rule allows.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mcp_guard_engine::mcp::read_body;
use mcp_guard_engine::{Bundle, Claims, Policy, RequestAttrs};
use mcp_guard_host_test::Host;
use serde_json::{json, Value};
use std::hint::black_box;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn bundle(rules: usize) -> Value {
    let rules: Vec<Value> = (0..rules)
        .map(|i| match i % 8 {
            0 => json!({"id": format!("deny-{i}"), "effect": "deny",
                        "when": {"claims": [{"claim": "flags", "contains_any": [format!("blocked-{i}")]}], "path": {"prefix": format!("/svc{i}/")}}}),
            1 | 2 => json!({"id": format!("path-{i}"), "effect": "allow",
                        "when": {"methods": ["POST"], "path": {"exact": format!("/api/r{i}")}}}),
            3 => json!({"id": format!("prefix-{i}"), "effect": "allow",
                        "when": {"path": {"prefix": format!("/svc{i}/")}, "claims": [{"claim": "tenant", "equals": "acme"}]}}),
            _ => json!({"id": format!("tool-{i}"), "effect": "allow",
                        "when": {"path": {"exact": "/mcp"}, "mcp": {"tools": [format!("tool_{i}")]},
                                 "claims": [{"claim": "roles", "contains_any": [format!("role-{}", i % 50)]}]}}),
        })
        .collect();
    json!({"name": "scale", "version": 1, "rules": rules})
}

/// The allowed tool in a bundle of `n` rules (a tool rule near the end).
fn target_tool(n: usize) -> usize {
    (0..n).rev().find(|i| i % 8 >= 4).unwrap_or(4)
}

fn call_body(tool: usize) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": format!("tool_{tool}"), "arguments": {}}}).to_string()
}

fn claims_for(tool: usize) -> Value {
    json!({"sub": "alice", "tenant": "acme", "roles": ["viewer", format!("role-{}", tool % 50)], "flags": []})
}

fn native(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision_native");
    for n in SIZES {
        let policy = Policy::new(Bundle::parse(bundle(n).to_string().as_bytes()).unwrap()).unwrap();
        let tool = target_tool(n);
        let claims = Claims::new(claims_for(tool).as_object().unwrap().clone());
        let calls = read_body(call_body(tool).as_bytes()).unwrap().mcp;
        let request = RequestAttrs::new("POST", "/mcp", "mcp.local");
        let decision = policy.decide_calls(&claims, &request, &calls);
        assert_eq!(
            decision.rule_id.as_deref(),
            Some(format!("tool-{tool}").as_str())
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(policy.decide_calls(black_box(&claims), &request, &calls)))
        });
    }
    group.finish();
}

fn wasm(c: &mut Criterion) {
    let host = Host::from_env().expect("build the filter first: cargo xtask build-wasm");
    let mut group = c.benchmark_group("decision_wasm");
    group.sample_size(30);
    for n in SIZES {
        let plugin = host
            .plugin(json!({ "bundle": bundle(n) }).to_string())
            .unwrap();
        let tool = target_tool(n);
        let claims = claims_for(tool);
        let body = call_body(tool);
        let headers = [
            (":method", "POST"),
            (":path", "/mcp"),
            (":authority", "mcp.local"),
            ("content-type", "application/json"),
        ];
        let once = plugin.stream().unwrap();
        once.set_jwt_payload("jwt_payload", claims.clone());
        once.request_headers(&headers, false).unwrap();
        once.request_body(body.as_bytes(), true).unwrap();
        assert!(once.local_reply().is_none(), "the bench request is allowed");
        once.finish().unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let stream = plugin.stream().unwrap();
                stream.set_jwt_payload("jwt_payload", claims.clone());
                stream.request_headers(&headers, false).unwrap();
                black_box(stream.request_body(body.as_bytes(), true).unwrap());
                stream.finish().unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, native, wasm);
criterion_main!(benches);
