//! SSE streams of every tracked shape and framing: a value split across
//! events at every byte offset is scrubbed as if the field's text came in
//! one piece; what cannot be tracked ends the stream with an error.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::pii::{ContentMode, Scanner, SseError, SseLimits, StreamScrubber};
use serde_json::{json, Value};

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
const PEM: &str = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----";

/// (value, its label in the scrubbed text, a piece of it that must never
/// come out).
fn values() -> Vec<(&'static str, &'static str, &'static str)> {
    vec![
        ("jane.doe@example.com", "[EMAIL]", "doe@exa"),
        (JWT, "[TOKEN]", "dozjgNryP4J3"),
        ("4111 1111 1111 1111", "[CARD]", "1111 1111 1111"),
        (PEM, "[PRIVATE_KEY]", "MHcCAQEEIIrY"),
    ]
}

fn scanner() -> Arc<Scanner> {
    Arc::new(Scanner::default())
}

fn plain(sc: &Scanner, text: &str) -> String {
    let mut out = Vec::new();
    sc.scrub_plain(text.as_bytes(), &mut out);
    String::from_utf8(out).unwrap()
}

/// Streams `input` cut into `chunks` (cycled); returns output and error.
fn run(
    sc: &Arc<Scanner>,
    limits: SseLimits,
    input: &[u8],
    chunks: &[usize],
) -> (Vec<u8>, Option<SseError>) {
    let mut s = StreamScrubber::sse_with_limits(Arc::clone(sc), limits);
    let mut out = Vec::new();
    let mut rest = input;
    for &n in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(n.min(rest.len()));
        s.push(a, &mut out);
        rest = b;
        if s.error().is_some() {
            break;
        }
    }
    s.finish(&mut out);
    (out, s.error())
}

fn stream(sc: &Arc<Scanner>, input: &str, chunks: &[usize]) -> String {
    let (out, err) = run(sc, SseLimits::default(), input.as_bytes(), chunks);
    assert_eq!(err, None, "{input}");
    String::from_utf8(out).unwrap()
}

/// A minimal, independent WHATWG parser: the JSON `data` of each event.
fn parse(out: &str) -> Vec<Value> {
    let text = out.strip_prefix('\u{feff}').unwrap_or(out);
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut all = Vec::new();
    for ev in text.split("\n\n") {
        let mut data: Option<String> = None;
        for line in ev.split('\n') {
            if line.starts_with(':') || line.is_empty() {
                continue;
            }
            let (name, value) = match line.split_once(':') {
                Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            if name == "data" {
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => data = Some(value.to_string()),
                }
            }
        }
        if let Some(v) = data.and_then(|d| serde_json::from_str(&d).ok()) {
            all.push(v);
        }
    }
    all
}

/// One API shape: builds a stream from one field's deltas and reads the
/// field back from the output.
struct Shape {
    name: &'static str,
    build: fn(&[&str]) -> String,
    read: fn(&[Value]) -> String,
}

fn ev(event: Option<&str>, data: Value) -> String {
    match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

fn chat_build(parts: &[&str]) -> String {
    let mut s = String::from(": keep-alive\n\n");
    s += &ev(
        None,
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}),
    );
    for p in parts {
        s += &ev(
            None,
            json!({"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":p},"logprobs":null,"finish_reason":null}]}),
        );
    }
    s += &ev(
        None,
        json!({"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}),
    );
    s + "data: [DONE]\n\n"
}

fn chat_read(evs: &[Value]) -> String {
    evs.iter()
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str())
        .collect()
}

fn tool_build(parts: &[&str]) -> String {
    let mut s = ev(
        None,
        json!({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"send_mail","arguments":""}}]},"finish_reason":null}]}),
    );
    for p in parts {
        s += &ev(
            None,
            json!({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":p}}]},"finish_reason":null}]}),
        );
    }
    s += &ev(
        None,
        json!({"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}),
    );
    s + "data: [DONE]\n\n"
}

fn tool_read(evs: &[Value]) -> String {
    evs.iter()
        .filter_map(|v| v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect()
}

fn legacy_build(parts: &[&str]) -> String {
    let mut s = String::new();
    for p in parts {
        s += &ev(
            None,
            json!({"id":"cmpl-1","object":"text_completion","created":1,"model":"gpt-3.5-turbo-instruct","choices":[{"text":p,"index":0,"logprobs":null,"finish_reason":null}]}),
        );
    }
    s += &ev(
        None,
        json!({"id":"cmpl-1","object":"text_completion","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]}),
    );
    s + "data: [DONE]\n\n"
}

fn legacy_read(evs: &[Value]) -> String {
    evs.iter()
        .filter_map(|v| v["choices"][0]["text"].as_str())
        .collect()
}

fn anthropic(kind: &str, field: &str, parts: &[&str]) -> String {
    let mut s = ev(
        Some("message_start"),
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}),
    );
    let block = match kind {
        "text_delta" => json!({"type":"text","text":""}),
        "thinking_delta" => json!({"type":"thinking","thinking":""}),
        _ => json!({"type":"tool_use","id":"toolu_1","name":"send_mail","input":{}}),
    };
    s += &ev(
        Some("content_block_start"),
        json!({"type":"content_block_start","index":1,"content_block":block}),
    );
    s += &ev(Some("ping"), json!({"type":"ping"}));
    for p in parts {
        let mut delta = json!({"type":kind});
        delta[field] = json!(p);
        s += &ev(
            Some("content_block_delta"),
            json!({"type":"content_block_delta","index":1,"delta":delta}),
        );
    }
    s += &ev(
        Some("content_block_stop"),
        json!({"type":"content_block_stop","index":1}),
    );
    s += &ev(
        Some("message_delta"),
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}),
    );
    s + &ev(Some("message_stop"), json!({"type":"message_stop"}))
}

fn anthropic_read(evs: &[Value], field: &str) -> String {
    evs.iter()
        .filter(|v| v["type"] == "content_block_delta")
        .filter_map(|v| v["delta"][field].as_str())
        .collect()
}

fn responses(ty: &str, item: &str, parts: &[&str]) -> String {
    let mut s = ev(
        Some("response.created"),
        json!({"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[]}}),
    );
    s += &ev(
        Some("response.output_item.added"),
        json!({"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":item,"type":"message","status":"in_progress","role":"assistant","content":[]}}),
    );
    let mut n = 2;
    for p in parts {
        let mut v = json!({"type":format!("{ty}.delta"),"sequence_number":n,"item_id":item,"output_index":0,"delta":p});
        if ty == "response.output_text" {
            v["content_index"] = json!(0);
            v["logprobs"] = json!([]);
        }
        s += &ev(Some(&format!("{ty}.delta")), v);
        n += 1;
    }
    s += &ev(
        Some(&format!("{ty}.done")),
        json!({"type":format!("{ty}.done"),"sequence_number":n,"item_id":item,"output_index":0,"content_index":0,"text":parts.concat()}),
    );
    s + &ev(
        Some("response.completed"),
        json!({"type":"response.completed","sequence_number":n+1,"response":{"id":"resp_1","status":"completed","output":[{"id":item,"type":"message","content":[{"type":"output_text","text":parts.concat()}]}]}}),
    )
}

fn responses_read(evs: &[Value]) -> String {
    evs.iter()
        .filter(|v| v["type"].as_str().is_some_and(|t| t.ends_with(".delta")))
        .filter_map(|v| v["delta"].as_str())
        .collect()
}

fn shapes() -> Vec<Shape> {
    vec![
        Shape {
            name: "chat",
            build: chat_build,
            read: chat_read,
        },
        Shape {
            name: "chat tool call",
            build: tool_build,
            read: tool_read,
        },
        Shape {
            name: "completions",
            build: legacy_build,
            read: legacy_read,
        },
        Shape {
            name: "anthropic text",
            build: |p| anthropic("text_delta", "text", p),
            read: |e| anthropic_read(e, "text"),
        },
        Shape {
            name: "anthropic json",
            build: |p| anthropic("input_json_delta", "partial_json", p),
            read: |e| anthropic_read(e, "partial_json"),
        },
        Shape {
            name: "anthropic thinking",
            build: |p| anthropic("thinking_delta", "thinking", p),
            read: |e| anthropic_read(e, "thinking"),
        },
        Shape {
            name: "responses text",
            build: |p| responses("response.output_text", "msg_1", p),
            read: responses_read,
        },
        Shape {
            name: "responses arguments",
            build: |p| responses("response.function_call_arguments", "fc_1", p),
            read: responses_read,
        },
    ]
}

#[test]
fn every_shape_catches_a_value_split_at_every_byte() {
    let sc = scanner();
    for shape in shapes() {
        for (value, label, piece) in values() {
            let text = format!("{{\"to\": \"x\", \"note\": \"Mail {value} today\"}}");
            let want = plain(&sc, &text);
            assert!(want.contains(label) && !want.contains(piece), "{want}");
            for k in 1..text.len() {
                let (a, b) = text.split_at(k);
                let input = (shape.build)(&["ok ", a, b, " bye"]);
                let out = stream(&sc, &input, &[input.len()]);
                assert_eq!(
                    (shape.read)(&parse(&out)),
                    format!("ok {want} bye"),
                    "{} split at {k}",
                    shape.name
                );
                assert!(!out.contains(piece), "{} split at {k}: {out}", shape.name);
            }
        }
    }
}

#[test]
fn every_shape_gives_the_same_output_for_any_chunking() {
    let sc = scanner();
    for shape in shapes() {
        let parts: Vec<String> =
            format!("Hi jane.d|oe@exam|ple.com, card 4111 1111| 1111 1111 and {JWT}")
                .split('|')
                .map(str::to_string)
                .collect();
        let mut parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let (a, b) = JWT.split_at(40);
        let tail = format!("x {a}");
        parts.push(&tail);
        parts.push(b);
        let input = (shape.build)(&parts);
        let whole = stream(&sc, &input, &[input.len()]);
        for size in [1, 2, 3, 5, 17, 64, 301] {
            assert_eq!(
                stream(&sc, &input, &[size]),
                whole,
                "{} chunks of {size}",
                shape.name
            );
        }
        let got = (shape.read)(&parse(&whole));
        assert_eq!(got, plain(&sc, &parts.concat()), "{}", shape.name);
        assert!(
            !whole.contains("jane.d") && !whole.contains("dozjgNry"),
            "{}",
            shape.name
        );
    }
}

#[test]
fn clean_streams_pass_byte_for_byte() {
    let sc = scanner();
    for shape in shapes() {
        let input = (shape.build)(&["Hello ", "there, ", "how are you?"]);
        assert_eq!(stream(&sc, &input, &[7]), input, "{}", shape.name);
    }
}

/// Rewrites a clean chat stream's framing: line ends, comments and
/// fields between `data` lines, multi-line `data`, BOM.
fn reframe(input: &str, variant: usize) -> String {
    let mut out = String::new();
    if variant == 5 {
        out.push('\u{feff}');
    }
    for (i, ev) in input.split_terminator("\n\n").enumerate() {
        let ev = match variant {
            3 => {
                // JSON split over several data lines at its commas, with
                // other fields and comments between them.
                let mut e = String::new();
                for line in ev.split('\n') {
                    match line.strip_prefix("data: ") {
                        Some(d) => {
                            e += "id: 7\n";
                            e += &format!(
                                "data:{}",
                                d.replace(",\"", ",\n: c\nretry: 10\ndata:\"")
                                    .replace(":{", ":{\ndata\ndata: ")
                            );
                            e.push('\n');
                        }
                        None => {
                            e += line;
                            e.push('\n');
                        }
                    }
                }
                e.pop();
                e
            }
            4 => format!(": comment {i}\nevent: x\n{ev}"),
            _ => ev.to_string(),
        };
        let sep = match (variant, i % 3) {
            (0, _) | (3..=5, _) => "\n",
            (1, _) => "\r\n",
            (2, _) => "\r",
            (_, 0) => "\r\n",
            (_, 1) => "\r",
            _ => "\n",
        };
        out += &ev.replace('\n', sep);
        out += sep;
        out += sep;
    }
    out
}

#[test]
fn every_framing_is_tracked_and_kept() {
    let sc = scanner();
    for variant in 0..7 {
        // Clean: byte for byte.
        let clean = reframe(&chat_build(&["Hello ", "there"]), variant);
        assert_eq!(stream(&sc, &clean, &[3]), clean, "variant {variant}");
        assert_eq!(
            chat_read(&parse(&clean)),
            "Hello there",
            "variant {variant}: {clean:?}"
        );
        let text = "Mail jane.doe@example.com or 4111 1111 1111 1111 now";
        let want = plain(&sc, text);
        for k in 1..text.len() {
            let (a, b) = text.split_at(k);
            let input = reframe(&chat_build(&[a, b]), variant);
            for chunks in [&[input.len()][..], &[1], &[k, 5]] {
                let out = stream(&sc, &input, chunks);
                assert_eq!(
                    chat_read(&parse(&out)),
                    want,
                    "variant {variant} split {k} {chunks:?}: {out:?}"
                );
                assert!(
                    !out.contains("doe@") && !out.contains("1111 1111 1111"),
                    "{out:?}"
                );
            }
        }
    }
}

#[test]
fn forty_one_interleaved_choices_each_keep_their_own_text() {
    let sc = scanner();
    let n = 41;
    let pieces = ["Write to user", ".n@exam", "ple.com now"];
    let mut input = String::new();
    for p in pieces {
        // Reverse order inside each round, one choice per event.
        for c in (0..n).rev() {
            let text = p.replace("user", &format!("user{c}"));
            input += &ev(
                None,
                json!({"choices":[{"index":c,"delta":{"content":text},"finish_reason":null}]}),
            );
        }
    }
    input += &ev(
        None,
        json!({"choices":(0..n).map(|c| json!({"index":c,"delta":{},"finish_reason":"stop"})).collect::<Vec<_>>()}),
    );
    input += "data: [DONE]\n\n";
    for chunks in [&[input.len()][..], &[1000], &[13]] {
        let out = stream(&sc, &input, chunks);
        let evs = parse(&out);
        for c in 0..n {
            let got: String = evs
                .iter()
                .filter_map(|v| {
                    let ch = &v["choices"][0];
                    (ch["index"] == c)
                        .then(|| ch["delta"]["content"].as_str())
                        .flatten()
                })
                .collect();
            assert_eq!(got, "Write to [EMAIL] now", "choice {c} {chunks:?}");
        }
    }
    // Past the bound: refused, never scrubbed event by event.
    let limits = SseLimits {
        max_fields: 40,
        ..SseLimits::default()
    };
    let (out, err) = run(&sc, limits, input.as_bytes(), &[50]);
    assert_eq!(err, Some(SseError::TooManyFields));
    assert!(!String::from_utf8_lossy(&out).contains(".n@exam"));
}

#[test]
fn large_events_are_tracked_and_oversize_ones_refused() {
    let sc = scanner();
    let filler = "lorem ipsum ".repeat(20_000); // 240 KB in one event
    let input = chat_build(&[&filler, "mail jane.d", "oe@example.com", &filler]);
    let out = stream(&sc, &input, &[4096]);
    let got = chat_read(&parse(&out));
    let want = plain(&sc, &format!("{filler}mail jane.doe@example.com{filler}"));
    assert!(want.contains("mail [EMAIL]"));
    assert!(got == want, "{} {}", got.len(), want.len());
    let limits = SseLimits {
        max_event_bytes: 64 * 1024,
        ..SseLimits::default()
    };
    for chunks in [&[input.len()][..], &[4096], &[100_000]] {
        let (out, err) = run(&sc, limits, input.as_bytes(), chunks);
        assert_eq!(err, Some(SseError::EventTooLarge), "{chunks:?}");
        let out = String::from_utf8(out).unwrap();
        assert!(
            !out.contains("jane.d") && !out.contains("lorem"),
            "{chunks:?}"
        );
    }
    // An oversize event that never ends is refused as soon as it is over.
    let mut s = StreamScrubber::sse_with_limits(Arc::clone(&sc), limits);
    let mut out = Vec::new();
    s.push(b"data: {\"choices\":[{\"delta\":{\"content\":\"", &mut out);
    for _ in 0..70 {
        s.push(&[b'a'; 1024], &mut out);
    }
    assert_eq!(s.error(), Some(SseError::EventTooLarge));
    assert!(out.is_empty());
}

/// A PEM key three bytes per event is confirmed by its header and
/// swallowed as it arrives, so even a small hold-back bound is never hit
/// (the bound itself is exercised with an undecidable value in
/// `pii_long_values.rs`).
#[test]
fn long_values_stay_under_a_small_hold_back_bound() {
    let sc = scanner();
    let parts: Vec<String> = PEM
        .as_bytes()
        .chunks(3)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let input = anthropic("text_delta", "text", &parts);
    let out = stream(&sc, &input, &[200]);
    assert_eq!(anthropic_read(&parse(&out), "text"), "[PRIVATE_KEY]");
    let limits = SseLimits {
        max_held_bytes: 4096,
        ..SseLimits::default()
    };
    let (out, err) = run(&sc, limits, input.as_bytes(), &[200]);
    assert_eq!(err, None);
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("MHcC"));
    assert_eq!(anthropic_read(&parse(&out), "text"), "[PRIVATE_KEY]");
}

#[test]
fn what_cannot_be_tracked_is_refused() {
    let sc = scanner();
    let good = ev(
        None,
        json!({"choices":[{"index":0,"delta":{"role":"assistant","content":"mail jane.d"},"finish_reason":null}]}),
    );
    for (bad, want) in [
        ("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"oe@exa", SseError::Unreadable),
        ("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"oe@x.io\",\"content\":\"\"}}]}", SseError::Unreadable),
        ("data: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"oe@x.io\"}}", SseError::Unreadable),
        ("data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":\"oe@x.io\"}", SseError::Unreadable),
        ("data: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"delta\":[\"oe@x.io\"]}", SseError::Unreadable),
        ("data: {\"type\":\"response.output_text.delta\",\"item_id\":\"m\",\"delta\":\"oe@x.io\",\"logprobs\":[{\"token\":\"oe\"}]}", SseError::Untrackable),
        ("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"oe@x.io\"},\"logprobs\":{\"content\":[{\"token\":\"oe@\"}]}}]}", SseError::Untrackable),
        ("data: {\"choices\":[{\"index\":-1,\"delta\":{\"content\":\"oe@x.io\"}}]}", SseError::Unreadable),
        ("data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":{\"a\":1}}}]}}]}", SseError::Unreadable),
    ] {
        let input = format!("{good}{bad}\n\ndata: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"m tail\"}}}}]}}\n\n");
        for size in [1, 9, input.len()] {
            let (out, err) = run(&sc, SseLimits::default(), input.as_bytes(), &[size]);
            assert_eq!(err, Some(want), "{bad}");
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("jane.d") && !out.contains("oe@") && !out.contains("tail"), "{bad}: {out}");
        }
    }
}

#[test]
fn other_strings_of_tracked_events_are_scrubbed_too() {
    let sc = scanner();
    let input = "data: {\"id\":\"bob@example.org\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi \",\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"carol@example.net\"}}]}}]}\n\n";
    let out = stream(&sc, input, &[5]);
    assert_eq!(
        out,
        "data: {\"id\":\"[EMAIL]\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi \",\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"[EMAIL]\"}}]}}]}\n\n"
    );
}

#[test]
fn a_new_block_or_choice_after_its_end_starts_a_new_text() {
    let sc = scanner();
    // The block at index 0 ends before "oe@example.com": the two are
    // different texts (as for the client), each scrubbed on its own.
    let mut input = anthropic("text_delta", "text", &["4111 1111"]);
    input += &anthropic("text_delta", "text", &[" 1111 1111"]);
    let out = stream(&sc, &input, &[1]);
    let apart = plain(&sc, "4111 1111") + &plain(&sc, " 1111 1111");
    assert_eq!(anthropic_read(&parse(&out), "text"), apart);
    assert_ne!(apart, "[CARD]");
    let input = anthropic("text_delta", "text", &["4111 1111", " 1111 1111"]);
    let out = stream(&sc, &input, &[1]);
    assert_eq!(anthropic_read(&parse(&out), "text"), "[CARD]");
}

#[test]
fn sse_mode_from_the_content_type_still_tracks() {
    let sc = scanner();
    let input = chat_build(&["jane.d", "oe@example.com"]);
    let mut s = StreamScrubber::new(
        Arc::clone(&sc),
        ContentMode::from_content_type("text/event-stream; charset=utf-8"),
    );
    let mut out = Vec::new();
    s.push(input.as_bytes(), &mut out);
    s.finish(&mut out);
    assert_eq!(
        chat_read(&parse(std::str::from_utf8(&out).unwrap())),
        "[EMAIL]"
    );
    assert_eq!(s.report().total(), 1);
}

/// A chat stream sent token by token: each event goes out once the next
/// token has arrived, not ~95 bytes of text later (first content a
/// client sees was ~15 tokens late when they came 1 ms apart).
#[test]
fn streamed_tokens_go_out_one_token_later() {
    let sc = scanner();
    let tokens = [
        "The", " weather", " in", " Lisbon", " is", " mild", " today,", " with", " rain",
    ];
    let mut s = StreamScrubber::sse_with_limits(Arc::clone(&sc), SseLimits::default());
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let event = ev(
            None,
            json!({"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":t},"finish_reason":null}]}),
        );
        s.push(event.as_bytes(), &mut out);
        let seen = chat_read(&parse(&String::from_utf8_lossy(&out)));
        let before: String = tokens.get(..i.saturating_sub(1)).unwrap_or(&[]).concat();
        assert!(
            seen.starts_with(&before) && seen.len() >= before.len(),
            "after {} tokens the client has {seen:?}",
            i + 1
        );
    }
    s.finish(&mut out);
    assert_eq!(
        chat_read(&parse(&String::from_utf8_lossy(&out))),
        tokens.concat()
    );
}
