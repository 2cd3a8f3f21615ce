//! Runs one allowed request and its scrubbed 4 KB JSON answer through the
//! exchange natively, many times: a target for `perf` that shows where the
//! module's own time goes (the share Envoy's V8 runs as wasm).
//!
//! `cargo run --release -p mcp-guard-flow --example exchange_profile -- [iterations]`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::sync::Arc;
use std::time::Instant;

use mcp_guard_engine::{Bundle, Policy};
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::{ActivePolicy, Exchange};
use serde_json::{json, Value};

fn bundle(rules: usize) -> String {
    let mut demo: Value = serde_json::from_str(include_str!("../../policies/demo.json")).unwrap();
    let mut list: Vec<Value> = (0..rules.saturating_sub(1))
        .map(|i| json!({"id": format!("r{i}"), "effect": "allow", "when": {"methods": ["GET"], "path": {"exact": format!("/api/r{i}")}, "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}))
        .collect();
    list.push(json!({"id": "data", "effect": "allow", "when": {"methods": ["GET"], "path": {"prefix": "/api/"}, "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}));
    demo["rules"] = Value::Array(list);
    demo.to_string()
}

fn answer() -> Vec<u8> {
    let pii = [
        "alice.smith@example.com",
        "+1 415-555-0199",
        "123-45-6789",
        "4111 1111 1111 1111",
        "bob@corp.example.org",
        "(212) 555-0147",
        "078-05-1120",
        "5555555555554444",
        "carol@mail.example.net",
        "+44 20 7946 0958",
    ];
    let mut items = Vec::new();
    let mut i = 0;
    while serde_json::to_string(&items).unwrap().len() < 3900 {
        let contact = if i < 10 { pii[i] } else { "none" };
        items.push(json!({"id": i, "note": "customer record with some ordinary words in it for padding purposes", "contact": contact}));
        i += 1;
    }
    json!({"items": items}).to_string().into_bytes()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let policy = Policy::new(Bundle::parse(bundle(100).as_bytes()).unwrap()).unwrap();
    let active = Arc::new(ActivePolicy::new(policy, None));
    let body = answer();
    let claims = json!({"sub": "alice", "tenant": "acme", "roles": ["model-user"], "scope": "openid mcp:tools", "iss": "https://issuer.mcp-guard.demo", "aud": "mcp-guard-demo", "iat": 1, "exp": 2});
    let start = Instant::now();
    for _ in 0..n {
        let mut host = MemoryHost::at(1_800_000_000_000);
        host.set_claims("jwt_payload", &claims);
        host.request.headers = [
            (":method", "GET"),
            (":path", "/api/data"),
            (":authority", "127.0.0.1:8080"),
            (":scheme", "http"),
            ("user-agent", "wrk"),
            ("x-request-id", "0a6b2c1e-1d3f-4a7b-9c8d-2e4f6a8b0c1d"),
            ("x-forwarded-proto", "http"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut ex = Exchange::new(Some(active.clone()));
        ex.on_request_headers(&mut host, true);
        host.response.headers = [
            (":status", "200"),
            ("content-type", "application/json"),
            ("content-length", "4000"),
            ("server", "nginx"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        ex.on_response_headers(&mut host, false);
        host.response.body = body.clone();
        ex.on_response_body(&mut host, body.len(), true);
        assert_eq!(
            host.counts.redactions,
            10,
            "{:?}",
            String::from_utf8_lossy(&host.response.body)
        );
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{per:.2} us per exchange");
    let scanner = active.policy.scanner().unwrap().clone();
    let mut out = Vec::new();
    let start = Instant::now();
    for _ in 0..n {
        out.clear();
        let report = scanner.scrub_json(&body, &mut out);
        assert_eq!(report.total(), 10);
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!("{per:.2} us per 4 KB JSON scrub alone");
}
