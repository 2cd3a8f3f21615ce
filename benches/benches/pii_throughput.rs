//! PII scrubbing throughput, natively (the engine) and through the real
//! `.wasm` in the wasmtime host (whole responses through the filter), in
//! the same run: clean prose (the common case, must be skipped fast),
//! PII-dense JSON, and an OpenAI-style SSE stream fed event by event.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mcp_guard_engine::pii::{ContentMode, PiiConfig, Scanner, StreamScrubber};
use mcp_guard_host_test::{Host, Plugin, Stream};
use serde_json::json;

fn prose(size: usize) -> Vec<u8> {
    let para = "The committee met on Tuesday to review the quarterly roadmap. Several teams \
        presented their progress, and the discussion focused on reliability, hiring and the \
        migration of legacy services. Nobody raised objections to the proposed budget, although \
        the finance lead asked for a more detailed breakdown before the next meeting in spring. \
        In the meantime, engineers will keep improving observability and documentation.\n";
    para.repeat(size / para.len() + 1).into_bytes()[..size].to_vec()
}

fn dense_json(records: usize) -> Vec<u8> {
    let mut s = String::from("[");
    for i in 0..records {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"id":{i},"name":"User {i}","email":"user{i}@example.com","phone":"+1 (415) 555-{:04}","card":"4111 1111 1111 1111","ip":"10.0.{}.{}","note":"call me at 020 7946 0958 or mail jane\u0040example.org"}}"#,
            i % 10000,
            i % 256,
            (i * 7) % 256
        ));
    }
    s.push(']');
    s.into_bytes()
}

fn sse(events: usize) -> Vec<u8> {
    let words = [
        "Hello",
        " there",
        ", mail",
        " jane.d",
        "oe@exam",
        "ple.com",
        " or",
        " call",
        " +1 415",
        " 555 0132",
        ".",
    ];
    let mut s = String::new();
    for i in 0..events {
        let w = words[i % words.len()];
        s.push_str(&format!(
            "data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{w}\"}},\"finish_reason\":null}}]}}\n\n"
        ));
    }
    s.push_str("data: [DONE]\n\n");
    s.into_bytes()
}

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

/// SSE input cut at event boundaries, as a model server sends it.
fn events(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..stream.len() {
        if stream[i - 1] == b'\n' && stream[i] == b'\n' {
            out.push(&stream[start..=i]);
            start = i + 1;
        }
    }
    out
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
