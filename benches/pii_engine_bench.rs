//! PII scrubbing throughput of the engine alone, on the same inputs as the
//! criterion benchmark, printed as `<input> <MiB/s> <output digest>`.
//!
//! `cargo xtask bench` builds it twice, natively and for `wasm32-wasip1`
//! (the filter's release profile), and runs the wasm under V8 (Node.js's
//! WASI), the engine Envoy runs filters on: the host harness uses
//! wasmtime's Cranelift, whose code for this scalar, branchy work is
//! slower than V8's. Equal digests show both scrubbed the same bytes.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use mcp_guard_benches::{dense_json, events, prose, sse};
use mcp_guard_engine::pii::{ContentMode, PiiConfig, Scanner, StreamScrubber};

/// Timed runs per input; the fastest is reported (on a shared machine
/// interference only ever slows a run down, so the fastest is the most
/// repeatable figure for comparing two builds).
const RUNS: usize = 31;

/// Best throughput of `run` over [`RUNS`] timed runs (after warm-up), in
/// MiB/s, and a digest of the output of the last run.
fn measure(bytes: usize, mut run: impl FnMut(&mut Vec<u8>)) -> (f64, u64) {
    let mut out = Vec::with_capacity(bytes * 2);
    for _ in 0..3 {
        run(&mut out);
    }
    let best = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            run(&mut out);
            black_box(&out);
            bytes as f64 / started.elapsed().as_secs_f64() / (1024.0 * 1024.0)
        })
        .fold(0.0, f64::max);
    (best, fnv1a(&out))
}

/// FNV-1a: enough to tell two outputs apart.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() {
    let scanner = Arc::new(Scanner::new(&PiiConfig::default()).expect("default scanner"));
    let text = prose(1 << 20);
    let json = dense_json(4000);
    let stream = sse(2000);
    let cut = events(&stream);
    let results = [
        (
            "clean_prose_1MiB",
            measure(text.len(), |out| {
                scanner.scrub_text(&text, out);
            }),
        ),
        (
            "dense_json",
            measure(json.len(), |out| {
                scanner.scrub_json(&json, out);
            }),
        ),
        (
            "sse_per_event",
            measure(stream.len(), |out| {
                out.clear();
                let mut s = StreamScrubber::new(Arc::clone(&scanner), ContentMode::Sse);
                for chunk in &cut {
                    s.push(chunk, out);
                }
                s.finish(out);
            }),
        ),
    ];
    for (name, (rate, digest)) in results {
        println!("{name} {rate:.1} {digest:016x}");
    }
}
