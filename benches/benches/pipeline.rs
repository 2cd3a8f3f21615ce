//! The request pipeline, natively and through the real `.wasm` in the
//! wasmtime host, measured in the same run so the ratio is meaningful.
//!
//! - `decision/native`: `Policy::decide` on the demo bundle from parsed claims.
//! - `decision/wasm`: one whole allowed chat request through the filter
//!   (claims decoded from Envoy's metadata encoding, body parsed for the
//!   model, decision, filter state, metrics) in the host harness; includes
//!   the harness's own ABI cost.

use criterion::{criterion_group, criterion_main, Criterion};
use mcp_guard_engine::{Bundle, Claims, Policy, RequestAttrs};
use mcp_guard_host_test::{Host, Plugin};
use serde_json::{json, Value};
use std::hint::black_box;

const DEMO_BUNDLE: &str = include_str!("../../policies/demo.json");
const CHAT_BODY: &[u8] = br#"{"model":"demo-llm","messages":[{"role":"user","content":"hi"}]}"#;

fn plugin() -> Plugin {
    let bundle: Value = serde_json::from_str(DEMO_BUNDLE).unwrap();
    Host::from_env()
        .expect("build the filter first: cargo xtask build-wasm")
        .plugin(json!({ "bundle": bundle }).to_string())
        .unwrap()
}

fn decision(c: &mut Criterion) {
    let policy = Policy::new(Bundle::parse(DEMO_BUNDLE.as_bytes()).unwrap()).unwrap();
    let claims = Claims::from_json(br#"{"sub":"alice","roles":["viewer","model-user"]}"#).unwrap();
    let request = RequestAttrs::new("POST", "/v1/chat/completions", "model.local")
        .with_model(Some("demo-llm"));
    let mut group = c.benchmark_group("decision");
    group.bench_function("native", |b| {
        b.iter(|| black_box(policy.decide(black_box(&claims), &request)))
    });

    let plugin = plugin();
    let headers = [
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "model.local"),
    ];
    group.bench_function("wasm", |b| {
        b.iter(|| {
            let stream = plugin.stream().unwrap();
            stream.set_jwt_payload(
                "jwt_payload",
                json!({"sub": "alice", "roles": ["viewer", "model-user"]}),
            );
            stream.request_headers(&headers, false).unwrap();
            black_box(stream.request_body(CHAT_BODY, true).unwrap());
            stream.finish().unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
