//! MCP list answers streamed as server-sent events: hidden entries are
//! removed whatever the chunking; unreadable events while an answer is
//! awaited end the stream; composes with PII scrubbing.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::mcp_sse::{McpSseError, McpSseFilter};
use mcp_guard_engine::pii::{ContentMode, Scanner, StreamScrubber};
use mcp_guard_engine::{McpCall, TargetKind};
use serde_json::{json, Value};

fn list_call(id: i64) -> McpCall {
    McpCall {
        id: Some(json!(id)),
        ..McpCall::new("tools/list")
    }
}

fn allowed(kind: TargetKind, name: &str) -> bool {
    kind == TargetKind::Tool && !name.starts_with("admin_")
}

fn answer(id: i64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"result":{"tools":[
        {"name":"search","description":"Search the web","inputSchema":{"type":"object"}},
        {"name":"admin_delete","description":"Delete everything","inputSchema":{"type":"object"}},
        {"name":"fetch","description":"Ask bob@example.org","inputSchema":{"type":"object"}}
    ]}})
}

/// A streamable-HTTP answer: a progress notification, then the answer.
fn stream(sep: &str) -> String {
    let note = json!({"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}});
    format!(": ping{sep}{sep}id: 1{sep}event: message{sep}data: {note}{sep}{sep}id: 2{sep}event: message{sep}data: {}{sep}{sep}", answer(7))
}

fn run(calls: &[McpCall], input: &[u8], chunks: &[usize]) -> (Vec<u8>, Result<(), McpSseError>) {
    let mut f = McpSseFilter::new(calls);
    let mut out = Vec::new();
    let mut rest = input;
    for &n in chunks.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (a, b) = rest.split_at(n.min(rest.len()));
        if let Err(e) = f.push(a, allowed, &mut out) {
            return (out, Err(e));
        }
        rest = b;
    }
    let r = f.finish(allowed, &mut out);
    (out, r)
}

/// The JSON data of each event (any line ending).
fn datas(out: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(out.to_vec())
        .unwrap()
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    text.split("\n\n")
        .filter_map(|ev| {
            let d: Vec<&str> = ev
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            (!d.is_empty()).then(|| serde_json::from_str(&d.join("\n")).unwrap())
        })
        .collect()
}

fn names(v: &Value) -> Vec<&str> {
    v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

#[test]
fn hidden_tools_are_removed_at_every_chunking() {
    for sep in ["\n", "\r\n", "\r"] {
        let input = stream(sep);
        let whole = run(&[list_call(7)], input.as_bytes(), &[input.len()]);
        assert_eq!(whole.1, Ok(()));
        let evs = datas(&whole.0);
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0]["method"], "notifications/progress");
        assert_eq!(names(&evs[1]), ["search", "fetch"]);
        let out = String::from_utf8(whole.0.clone()).unwrap();
        assert!(
            out.starts_with(&format!(
                ": ping{sep}{sep}id: 1{sep}event: message{sep}data: {{"
            )),
            "{out:?}"
        );
        assert!(
            out.contains(&format!("id: 2{sep}event: message{sep}data: {{")),
            "{out:?}"
        );
        for k in 1..input.len() {
            assert_eq!(
                run(&[list_call(7)], input.as_bytes(), &[k, input.len()]).0,
                whole.0,
                "split at {k}"
            );
        }
        for size in [1, 2, 3, 10, 64] {
            assert_eq!(
                run(&[list_call(7)], input.as_bytes(), &[size]).0,
                whole.0,
                "chunks of {size}"
            );
        }
    }
}

#[test]
fn multi_line_data_and_batches_are_filtered() {
    let body = serde_json::to_string_pretty(&json!([answer(1), answer(2)])).unwrap();
    let data: String = body.lines().map(|l| format!("data: {l}\n")).collect();
    let input = format!("\u{feff}event: message\n{data}\n");
    let calls = [list_call(1), list_call(2)];
    let (out, r) = run(&calls, input.as_bytes(), &[5]);
    assert_eq!(r, Ok(()));
    let evs = datas(&out);
    assert_eq!(names(&evs[0][0]), ["search", "fetch"]);
    assert_eq!(names(&evs[0][1]), ["search", "fetch"]);
    assert!(out.starts_with("\u{feff}event: message\ndata: [".as_bytes()));
}

#[test]
fn unreadable_events_while_awaiting_end_the_stream() {
    for bad in [
        "data: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[",
        "data: not json",
        "data: {\"id\":7}garbage",
    ] {
        let input = format!(
            "data: {{\"jsonrpc\":\"2.0\",\"method\":\"x\"}}\n\n{bad}\n\ndata: {}\n\n",
            answer(7)
        );
        for size in [1, 7, input.len()] {
            let (out, r) = run(&[list_call(7)], input.as_bytes(), &[size]);
            assert_eq!(r, Err(McpSseError::Unreadable), "{bad}");
            let out = String::from_utf8(out).unwrap();
            assert!(
                !out.contains("admin_delete") && !out.contains(&bad[6..]),
                "{out}"
            );
        }
    }
    // After the answer, other payloads pass; a repeated answer is filtered.
    let input = format!(
        "data: {}\n\ndata: not json\n\ndata: {}\n\n",
        answer(7),
        answer(7)
    );
    let (out, r) = run(&[list_call(7)], input.as_bytes(), &[3]);
    assert_eq!(r, Ok(()));
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("data: not json\n\n") && !out.contains("admin_delete"),
        "{out}"
    );
    // An unended event at the end is still read.
    let input = format!("data: {}", answer(7));
    let (out, r) = run(&[list_call(7)], input.as_bytes(), &[3]);
    assert_eq!(r, Ok(()));
    assert!(!String::from_utf8(out).unwrap().contains("admin_delete"));
    // Oversize.
    let mut f = McpSseFilter::with_max_event_bytes(&[list_call(7)], 100);
    let mut out = Vec::new();
    let input = format!("data: {}\n\n", answer(7));
    assert_eq!(
        f.push(input.as_bytes(), allowed, &mut out),
        Err(McpSseError::EventTooLarge)
    );
    assert!(out.is_empty());
    assert_eq!(
        f.push(b"data: {}\n\n", allowed, &mut out),
        Err(McpSseError::EventTooLarge)
    );
}

/// Without a list call the stream passes as it is. With one, lists are
/// found by their field, not by the JSON-RPC id: an answer whose id does
/// not match (an upstream echoing `7` for `7.0`, or a second answer) is
/// filtered all the same, and other events pass as they are.
#[test]
fn list_answers_are_filtered_whatever_their_id() {
    let input = stream("\n");
    let call = McpCall {
        id: Some(json!(7)),
        ..McpCall::targeting("tools/call", "search")
    };
    let (out, r) = run(&[call], input.as_bytes(), &[4]);
    assert_eq!((out, r), (input.clone().into_bytes(), Ok(())));
    let (out, r) = run(&[list_call(8)], input.as_bytes(), &[4]);
    assert_eq!(r, Ok(()));
    let out = String::from_utf8(out).unwrap();
    assert!(!out.contains("admin_delete"), "{out}");
    assert!(out.contains("notifications/progress") && out.contains("\"fetch\""));
}

#[test]
fn filtering_then_scrubbing_composes_at_every_chunking() {
    let sc = Arc::new(Scanner::default());
    let input = stream("\n");
    let mut want = None;
    for size in [1, 3, 17, input.len()] {
        let mut f = McpSseFilter::new(&[list_call(7)]);
        let mut s = StreamScrubber::new(Arc::clone(&sc), ContentMode::Sse);
        let (mut mid, mut out) = (Vec::new(), Vec::new());
        for c in input.as_bytes().chunks(size) {
            mid.clear();
            f.push(c, allowed, &mut mid).unwrap();
            s.push(&mid, &mut out);
        }
        mid.clear();
        f.finish(allowed, &mut mid).unwrap();
        s.push(&mid, &mut out);
        s.finish(&mut out);
        assert_eq!(s.error(), None);
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text.contains("admin_delete") && !text.contains("bob@") && text.contains("[EMAIL]"),
            "{text}"
        );
        assert_eq!(f.removed(), 1);
        assert_eq!(*want.get_or_insert_with(|| text.clone()), text);
    }
}

/// Attack: once the awaited answer has gone by, an event whose data
/// `serde_json` refuses but a client's `JSON.parse` reads (`1e400` is
/// `Infinity` there, a lone surrogate is a string) used to pass as "not
/// JSON". A second list answer (for another pending `tools/list` id, which
/// clients route by id whatever the stream) then showed hidden tools.
#[test]
fn json_looking_events_the_filter_cannot_read_end_the_stream_after_the_answer() {
    let hidden = r#"{"jsonrpc":"2.0","id":8,"result":{"tools":[{"name":"admin_delete","description":"x"}],"n":1e400}}"#;
    let surrogate = r#"{"jsonrpc":"2.0","id":8,"result":{"tools":[{"name":"admin_delete","description":"\ud800"}]}}"#;
    let batch =
        r#"  [{"jsonrpc":"2.0","id":8,"result":{"tools":[{"name":"admin_delete"}]}},1e400]"#;
    for bad in [hidden, surrogate, batch] {
        let input = format!("data: {}\n\ndata: {bad}\n\n", answer(7));
        let (out, r) = run(&[list_call(7)], input.as_bytes(), &[4]);
        assert_eq!(r, Err(McpSseError::Unreadable), "{bad}");
        assert!(
            !String::from_utf8(out).unwrap().contains("admin_delete"),
            "{bad}"
        );
    }
    // Text that no JSON parser reads as an object or array still passes.
    let input = format!("data: {}\n\ndata: keep-alive\n\n", answer(7));
    let (out, r) = run(&[list_call(7)], input.as_bytes(), &[4]);
    assert_eq!(r, Ok(()));
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("data: keep-alive\n\n"));
}
