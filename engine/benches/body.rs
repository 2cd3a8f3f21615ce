//! Cost of reading request bodies strictly against plain `serde_json`, on a
//! 4 KB MCP call, a 1 MB chat body and a 10k-member object (the strict
//! reader must stay linear). Run: `cargo bench -p mcp-guard-engine --bench body`.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mcp_guard_engine::arguments::ArgumentPath;
use mcp_guard_engine::mcp::{read_body, read_body_with, BodyOptions};
use mcp_guard_engine::strict_json::{parse, Options};
use serde_json::Value;

fn mcp_call(target_len: usize) -> String {
    let mut args = String::new();
    let mut i = 0;
    while args.len() < target_len {
        args.push_str(&format!("\"arg{i}\":\"value with some text \\u00e9 {i}\","));
        i += 1;
    }
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"search","arguments":{{{}"end":[1,2.5,true,null]}}}}}}"#,
        args
    )
}

fn chat(target_len: usize) -> String {
    let mut messages = Vec::new();
    let mut len = 0;
    while len < target_len {
        let m = format!(
            r#"{{"role":"user","content":"{} line {}\n"}}"#,
            "lorem ipsum dolor sit amet ".repeat(20),
            messages.len()
        );
        len += m.len();
        messages.push(m);
    }
    format!(
        r#"{{"model":"gpt-4o","messages":[{}]}}"#,
        messages.join(",")
    )
}

fn wide(members: usize) -> String {
    let m: Vec<String> = (0..members).map(|i| format!("\"Key{i}\":{i}")).collect();
    format!("{{{}}}", m.join(","))
}

fn bench_bodies(c: &mut Criterion) {
    let bodies = [
        ("mcp_4k", mcp_call(4 * 1024)),
        ("chat_1m", chat(1024 * 1024)),
        ("wide_10k", wide(10_000)),
    ];
    let mut group = c.benchmark_group("body");
    for (name, body) in &bodies {
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(format!("{name}/serde_json"), |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(body.as_bytes())).map(|_| ()))
        });
        group.bench_function(format!("{name}/strict"), |b| {
            b.iter(|| parse(black_box(body.as_bytes()), Options::REQUEST).map(|_| ()))
        });
        group.bench_function(format!("{name}/read_body"), |b| {
            b.iter(|| read_body(black_box(body.as_bytes())).map(|a| a.mcp.len()))
        });
        // A bundle with argument rules: the arguments are taken out of the
        // parsed body, number texts kept, and two paths checked.
        let paths = [
            ArgumentPath::parse("arg3").unwrap(),
            ArgumentPath::parse("end.1").unwrap(),
        ];
        let options = BodyOptions {
            argument_paths: &paths,
            canonical_uris: true,
        };
        group.bench_function(format!("{name}/read_body_with_arguments"), |b| {
            b.iter(|| read_body_with(black_box(body.as_bytes()), &options).map(|a| a.mcp.len()))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_bodies);
criterion_main!(benches);
