//! PII scanner throughput: clean prose (the common case, must be skipped
//! fast), PII-dense JSON, and an SSE stream fed in small chunks.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mcp_guard_engine::pii::{ContentMode, PiiConfig, Scanner, StreamScrubber};

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

fn bench(c: &mut Criterion) {
    let sc = Arc::new(Scanner::new(&PiiConfig::default()).unwrap());
    let mut out = Vec::with_capacity(2 << 20);

    let text = prose(1 << 20);
    let mut g = c.benchmark_group("pii");
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("clean_prose_1MiB_text", |b| {
        b.iter(|| sc.scrub_text(black_box(&text), &mut out))
    });

    let json = dense_json(4000);
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("pii_dense_json", |b| {
        b.iter(|| sc.scrub_json(black_box(&json), &mut out))
    });

    let stream = sse(5000);
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("sse_64B_chunks", |b| {
        b.iter(|| {
            out.clear();
            let mut s = StreamScrubber::new(sc.clone(), ContentMode::Sse);
            for chunk in stream.chunks(64) {
                s.push(black_box(chunk), &mut out);
            }
            s.finish(&mut out);
            s.report()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
