//! PII scrubbing throughput, natively (the engine) and through the real
//! `.wasm` in the wasmtime host (whole responses through the filter), in
//! the same run: clean prose (the common case, must be skipped fast),
//! PII-dense JSON, and an OpenAI-style SSE stream fed event by event.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mcp_guard_benches::{dense_json, events, prose, sse};
use mcp_guard_engine::pii::{ContentMode, PiiConfig, Scanner, StreamScrubber};
use mcp_guard_host_test::{Host, Plugin, Stream};
use serde_json::json;

fn wasm_plugin() -> Plugin {
    let bundle =
        json!({"name": "bench", "version": 1, "rules": [{"id": "all", "effect": "allow"}]});
    Host::from_env()
        .expect("build the filter first: cargo xtask build-wasm")
        .plugin(json!({ "bundle": bundle }).to_string())
        .unwrap()
}

/// One whole response through the filter in the wasmtime host. Only the
/// filter's work is timed: what the client got is checked once, before
/// timing, by [`checked_through_wasm`] (collecting it copies the body).
fn through_wasm(plugin: &Plugin, content_type: &str, chunks: &[&[u8]]) {
    let stream = drive(plugin, content_type, chunks);
    stream.finish().unwrap();
}

fn drive(plugin: &Plugin, content_type: &str, chunks: &[&[u8]]) -> Stream {
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", json!({"sub": "bench"}));
    stream
        .request_headers(
            &[(":method", "GET"), (":path", "/"), (":authority", "h")],
            true,
        )
        .unwrap();
    stream
        .response_headers(&[(":status", "200"), ("content-type", content_type)], false)
        .unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        black_box(stream.response_body(chunk, i + 1 == chunks.len()).unwrap());
    }
    stream
}

/// Runs one response through the filter and checks the client got the
/// same bytes as the native scrubber produced: the two sides of each
/// benchmark do the same work.
fn checked_through_wasm(plugin: &Plugin, content_type: &str, chunks: &[&[u8]], native: &[u8]) {
    let stream = drive(plugin, content_type, chunks);
    let got = stream
        .client_response()
        .expect("the response left the filter");
    assert_eq!(got.status, 200);
    assert!(
        got.body == native,
        "wasm and native outputs differ ({content_type})"
    );
    stream.finish().unwrap();
}

fn bench(c: &mut Criterion) {
    let sc = Arc::new(Scanner::new(&PiiConfig::default()).unwrap());
    let plugin = wasm_plugin();
    let mut out = Vec::with_capacity(2 << 20);

    let text = prose(1 << 20);
    sc.scrub_text(&text, &mut out);
    checked_through_wasm(&plugin, "text/plain", &[&text], &out);
    let mut g = c.benchmark_group("pii_clean_prose_1MiB");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("native", |b| {
        b.iter(|| sc.scrub_text(black_box(&text), &mut out))
    });
    g.bench_function("wasm", |b| {
        b.iter(|| through_wasm(&plugin, "text/plain", &[&text]))
    });
    g.finish();

    let json = dense_json(4000);
    sc.scrub_json(&json, &mut out);
    checked_through_wasm(&plugin, "application/json", &[&json], &out);
    let mut g = c.benchmark_group("pii_dense_json");
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("native", |b| {
        b.iter(|| sc.scrub_json(black_box(&json), &mut out))
    });
    g.bench_function("wasm", |b| {
        b.iter(|| through_wasm(&plugin, "application/json", &[&json]))
    });
    g.finish();

    let stream = sse(2000);
    let cut = events(&stream);
    {
        let mut s = StreamScrubber::new(Arc::clone(&sc), ContentMode::Sse);
        out.clear();
        for chunk in &cut {
            s.push(chunk, &mut out);
        }
        s.finish(&mut out);
        checked_through_wasm(&plugin, "text/event-stream", &cut, &out);
    }
    let mut g = c.benchmark_group("pii_sse_per_event");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("native", |b| {
        b.iter(|| {
            let mut s = StreamScrubber::new(Arc::clone(&sc), ContentMode::Sse);
            out.clear();
            for chunk in &cut {
                s.push(chunk, &mut out);
            }
            s.finish(&mut out);
            black_box(s.report())
        })
    });
    g.bench_function("wasm", |b| {
        b.iter(|| through_wasm(&plugin, "text/event-stream", &cut))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
