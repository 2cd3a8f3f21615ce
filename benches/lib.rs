//! Benchmarks live in `benches/`; run them with `cargo xtask bench`.
//!
//! This library holds the PII benchmark inputs, shared by the criterion
//! benchmark and the `pii-engine-bench` program (which also runs as
//! wasm under V8), so every measurement scrubs the same bytes.

/// Clean English prose, `size` bytes: nothing to find.
pub fn prose(size: usize) -> Vec<u8> {
    let para = "The committee met on Tuesday to review the quarterly roadmap. Several teams \
        presented their progress, and the discussion focused on reliability, hiring and the \
        migration of legacy services. Nobody raised objections to the proposed budget, although \
        the finance lead asked for a more detailed breakdown before the next meeting in spring. \
        In the meantime, engineers will keep improving observability and documentation.\n";
    para.repeat(size / para.len() + 1).into_bytes()[..size].to_vec()
}

/// A JSON array of `records` user records, seven PII values each.
pub fn dense_json(records: usize) -> Vec<u8> {
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

/// An OpenAI-style chat stream of `events` deltas with values split
/// across events, then `[DONE]`.
pub fn sse(events: usize) -> Vec<u8> {
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

/// SSE input cut at event boundaries, as a model server sends it.
pub fn events(stream: &[u8]) -> Vec<&[u8]> {
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
