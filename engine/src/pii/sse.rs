//! Server-sent events, with PII tracking across chat-completion deltas.
//!
//! The stream is cut into events at blank lines. An event whose single
//! `data:` line is an OpenAI-style chunk (`choices[].delta.content`
//! strings) feeds each choice's content into that choice's own engine, so
//! a value split over several events (`"jane.d"` | `"oe@exam"` |
//! `"ple.com"`) is still found. Such events are held back until the
//! engine has committed their text (about 80 bytes of later content, the
//! engine's look-behind, plus the reach of an undecided detector, and never more than
//! [`MAX_HELD`] events), then written with their content rewritten so
//! that the concatenation of the output deltas is the scrubbed
//! concatenation of the input deltas. A replacement goes into the event
//! where the value started; later events covered by it get `""`.
//!
//! Chunks are read with borrowed, typed views (only `choices[].index`,
//! `.delta.content` and `.finish_reason`; nothing else is allocated), and
//! an event whose content changed gets only those content strings
//! replaced in its raw bytes: every other byte, key order and spacing
//! included, is kept. A chunk the typed view does not fit (duplicate
//! keys, a `choices` entry that is not an object...) is scrubbed on its
//! own like any other event. Other events (`[DONE]`, role-only chunks, any
//! other JSON or text payload) are scrubbed on their own, in JSON mode
//! when the payload looks like JSON, else in text mode, and keep their
//! place in the stream. `[DONE]` or a non-null `finish_reason` ends the
//! tracked text of the choices concerned. Deltas of `tool_calls`
//! arguments are not tracked across events (each event is scrubbed alone
//! only when it is not a content delta).
//!
//! An event larger than [`MAX_EVENT`] bytes is processed as soon as the
//! limit is reached, as if it had ended there.

use std::collections::VecDeque;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::core::Core;
use super::report::PiiReport;
use super::scanner::Scanner;
use crate::decision::push_json_string;

/// Largest event buffered before it is processed anyway.
pub const MAX_EVENT: usize = 64 * 1024;
/// Most content events held back at once. Past it, with the oldest event
/// still undecided, the stream overflows ([`PiiReport::overflowed`]):
/// nothing more is written, and the caller ends the response. Values
/// confirmed by their prefix release their events as they are swallowed,
/// so only a detector undecided over more than this many events (tiny
/// deltas, or empty ones) gets here.
pub const MAX_HELD: usize = 256;
/// Most choices tracked per stream; further ones are scrubbed per event.
const MAX_CHOICES: usize = 16;

/// The fields of a chat-completion chunk the tracker reads, borrowed
/// from the event; unknown fields are skipped.
#[derive(Deserialize)]
struct ChunkView<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceView<'a>>>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<DeltaView<'a>>,
    /// `None` when absent or `null`.
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct DeltaView<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
}

/// One content delta of a held event.
#[derive(Debug, Clone)]
struct Part {
    choice: usize,
    /// Absolute position of the content in its choice's text.
    start: u64,
    content: String,
    /// Byte range of the content's JSON string token in the raw event.
    token: std::ops::Range<usize>,
}

#[derive(Debug, Clone)]
struct Held {
    raw: Vec<u8>,
    /// Where its content parts go; `None` for events already scrubbed
    /// (written as `raw`).
    delta: Option<Vec<Part>>,
}

#[derive(Debug, Clone)]
struct Choice {
    core: Core,
    done: bool,
    /// Replacements not yet written: absolute span and text.
    edits: VecDeque<(u64, u64, Vec<u8>)>,
}

impl Choice {
    fn new() -> Self {
        Self {
            core: Core::new(false),
            done: false,
            edits: VecDeque::new(),
        }
    }
}

/// Streaming SSE scrubber.
#[derive(Debug, Clone)]
pub(crate) struct SseStream {
    buf: Vec<u8>,
    queue: VecDeque<Held>,
    choices: Vec<Choice>,
    report: PiiReport,
}

impl SseStream {
    pub(crate) fn new() -> Self {
        Self {
            buf: Vec::new(),
            queue: VecDeque::new(),
            choices: Vec::new(),
            report: PiiReport::default(),
        }
    }

    pub(crate) fn report(&self) -> PiiReport {
        let mut r = self.report;
        for c in &self.choices {
            r.merge(&c.core.report);
        }
        r
    }

    pub(crate) fn push(&mut self, sc: &Scanner, chunk: &[u8], out: &mut Vec<u8>) {
        let mut searched = self.buf.len().saturating_sub(3);
        self.buf.extend_from_slice(chunk);
        while let Some(end) = event_end(&self.buf, searched) {
            // The usual chunk is one whole event: it moves, uncopied.
            let rest = self.buf.split_off(end);
            let event = std::mem::replace(&mut self.buf, rest);
            self.event(sc, event);
            searched = 0;
        }
        if self.buf.len() >= MAX_EVENT {
            let event = std::mem::take(&mut self.buf);
            self.event(sc, event);
        }
        self.emit(sc, false, out);
    }

    pub(crate) fn finish(&mut self, sc: &Scanner, out: &mut Vec<u8>) {
        if !self.buf.is_empty() {
            let event = std::mem::take(&mut self.buf);
            self.event(sc, event);
        }
        for c in &mut self.choices {
            c.done = true;
        }
        self.emit(sc, true, out);
    }

    fn event(&mut self, sc: &Scanner, raw: Vec<u8>) {
        let data = data_payload(&raw);
        if let Some(parts) = data.and_then(|d| self.feed_deltas(&raw, d)) {
            self.queue.push_back(Held {
                raw,
                delta: Some(parts),
            });
            return;
        }
        if data.is_some_and(|d| d.trim_ascii() == b"[DONE]") {
            for c in &mut self.choices {
                c.done = true;
            }
        }
        let mut scrubbed = Vec::with_capacity(raw.len());
        let looks_json =
            data.is_some_and(|d| matches!(d.trim_ascii_start().first(), Some(b'{' | b'[')));
        let r = if looks_json {
            sc.scrub_json(&raw, &mut scrubbed)
        } else {
            sc.scrub_text(&raw, &mut scrubbed)
        };
        self.report.merge(&r);
        self.queue.push_back(Held {
            raw: scrubbed,
            delta: None,
        });
    }

    /// Feeds the content deltas of a chat chunk (`data`, inside `raw`);
    /// `None` (and nothing fed) if it is not one or has no content.
    fn feed_deltas(&mut self, raw: &[u8], data: &[u8]) -> Option<Vec<Part>> {
        if data.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        let view: ChunkView = serde_json::from_slice(data).ok()?;
        // Read every delta first, so a chunk that does not fit feeds
        // nothing and is scrubbed on its own.
        let mut found = Vec::new();
        for (slot, ch) in view.choices?.iter().enumerate() {
            let Some(token) = ch.delta.as_ref().and_then(|d| d.content).map(RawValue::get) else {
                continue;
            };
            if !token.starts_with('"') {
                continue;
            }
            let Ok(content) = serde_json::from_str::<String>(token) else {
                continue;
            };
            // The token borrows from `raw`: its place there is where it
            // starts in memory.
            let at = (token.as_ptr() as usize).checked_sub(raw.as_ptr() as usize)?;
            let span = at..at + token.len();
            if !raw
                .get(span.clone())
                .is_some_and(|s| std::ptr::eq(s.as_ptr(), token.as_ptr()))
            {
                return None;
            }
            let choice = ch
                .index
                .and_then(|i| i.get().parse::<u64>().ok())
                .unwrap_or(slot as u64);
            let choice = usize::try_from(choice).ok().filter(|&c| c < MAX_CHOICES)?;
            found.push((choice, content, span, ch.finish_reason.is_some()));
        }
        let mut parts = Vec::with_capacity(found.len());
        for (choice, content, token, finished) in found {
            while self.choices.len() <= choice {
                self.choices.push(Choice::new());
            }
            let c = self.choices.get_mut(choice)?;
            // Text after the end of a choice continues it.
            c.done = finished;
            let start = c.core.end();
            c.core.text.extend_from_slice(content.as_bytes());
            parts.push(Part {
                choice,
                start,
                content,
                token,
            });
        }
        (!parts.is_empty()).then_some(parts)
    }

    /// Runs the engines and writes every event at the front of the queue
    /// whose content is final.
    fn emit(&mut self, sc: &Scanner, force: bool, out: &mut Vec<u8>) {
        for c in &mut self.choices {
            c.core.run(sc, c.done);
            let core = &mut c.core;
            for e in &core.edits {
                let repl = core.repl.get(e.repl.clone()).unwrap_or(&[]).to_vec();
                c.edits.push_back((e.start, e.end, repl));
            }
            core.clear_edits();
            let commit = core.commit;
            core.compact(commit);
        }
        while let Some(front) = self.queue.front() {
            let ready = match &front.delta {
                None => true,
                Some(parts) => {
                    force
                        || parts.iter().all(|p| {
                            self.choices
                                .get(p.choice)
                                .is_none_or(|c| c.core.commit >= p.start + p.content.len() as u64)
                        })
                }
            };
            if !ready {
                if self.queue.len() > MAX_HELD {
                    self.report.record_overflow();
                }
                break;
            }
            let Some(held) = self.queue.pop_front() else {
                break;
            };
            self.write(held, out);
        }
    }

    /// Writes a held event, replacing the content tokens that changed.
    fn write(&mut self, held: Held, out: &mut Vec<u8>) {
        let Some(parts) = held.delta else {
            out.extend_from_slice(&held.raw);
            return;
        };
        let mut written = 0;
        let mut token = String::new();
        for p in &parts {
            let Some(c) = self.choices.get_mut(p.choice) else {
                continue;
            };
            let Some(text) = render_part(&mut c.edits, p.start, p.content.as_bytes()) else {
                continue;
            };
            // Tokens come in document order; `written` never passes one.
            if text != p.content && p.token.start >= written {
                out.extend_from_slice(held.raw.get(written..p.token.start).unwrap_or(&[]));
                token.clear();
                push_json_string(&mut token, &text);
                out.extend_from_slice(token.as_bytes());
                written = p.token.end;
            }
        }
        out.extend_from_slice(held.raw.get(written..).unwrap_or(&[]));
    }
}

/// The scrubbed text of `content`, which starts at absolute `start` in its
/// choice's text, or `None` when no replacement touches it; drops
/// replacements that are fully written.
fn render_part(
    edits: &mut VecDeque<(u64, u64, Vec<u8>)>,
    start: u64,
    content: &[u8],
) -> Option<String> {
    let end = start + content.len() as u64;
    if edits.front().is_none_or(|(s, _, _)| *s >= end) {
        return None;
    }
    let mut out = Vec::with_capacity(content.len());
    let mut pos = start;
    for (s, e, repl) in edits.iter() {
        if *e <= start && *s < start {
            continue;
        }
        if *s >= end {
            break;
        }
        if *s >= pos {
            let a = (pos - start) as usize;
            let b = (*s - start) as usize;
            out.extend_from_slice(content.get(a..b).unwrap_or(&[]));
        }
        if *s >= start {
            out.extend_from_slice(repl);
        }
        pos = pos.max((*e).min(end));
    }
    out.extend_from_slice(content.get((pos - start) as usize..).unwrap_or(&[]));
    while edits.front().is_some_and(|(_, e, _)| *e <= end) {
        edits.pop_front();
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// End (exclusive) of the first complete event at or after `from`: the
/// position after a blank line.
fn event_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(k) = buf.get(i..).and_then(|s| memchr::memchr(b'\n', s)) {
        let nl = i + k;
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => i = nl + 1,
        }
    }
    None
}

/// The payload of the event's only `data:` line, if it has exactly one.
fn data_payload(raw: &[u8]) -> Option<&[u8]> {
    let mut found = None;
    let mut start = 0;
    // Line ends found with `memchr`, many bytes per step.
    for end in memchr::memchr_iter(b'\n', raw).chain(std::iter::once(raw.len())) {
        let line = raw.get(start..end).unwrap_or(&[]);
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            if found.is_some() {
                return None;
            }
            found = Some(rest.strip_prefix(b" ").unwrap_or(rest));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn event(content: &str) -> String {
        let v = serde_json::json!({
            "id": "c1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
        });
        format!("data: {v}\n\n")
    }

    fn stream(parts: &[&str]) -> String {
        let mut s = String::from(": keep-alive\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n");
        for p in parts {
            s.push_str(&event(p));
        }
        s.push_str("data: [DONE]\n\n");
        s
    }

    /// Parses output events; returns the concatenated content deltas.
    fn deltas(out: &[u8]) -> String {
        let text = std::str::from_utf8(out).unwrap();
        assert!(text.ends_with("\n\n"), "{text}");
        let mut all = String::new();
        for ev in text.split_terminator("\n\n") {
            let Some(data) = ev.strip_prefix("data: ") else {
                assert!(ev.starts_with(':'), "{ev:?}");
                continue;
            };
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {data}"));
            if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                all.push_str(c);
            }
        }
        all
    }

    fn run(sc: &Scanner, input: &[u8], chunks: &[usize]) -> Vec<u8> {
        let mut s = SseStream::new();
        let mut out = Vec::new();
        let mut rest = input;
        for &n in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (a, b) = rest.split_at(n.min(rest.len()));
            s.push(sc, a, &mut out);
            rest = b;
        }
        s.finish(sc, &mut out);
        out
    }

    #[test]
    fn value_split_across_deltas_is_caught_at_every_split() {
        let sc = Scanner::default();
        let parts = [
            "Sure! Mail ",
            "jane.d",
            "oe@exam",
            "ple.com",
            " or call +1 4",
            "15 555 0132",
            " today. Key: AKIA",
            "IOSFODNN7EXAMPLE",
            " \u{e9}t\u{e9} \"q\" ",
            "done",
        ];
        let input = stream(&parts);
        let joined: String = parts.concat();
        let mut want = Vec::new();
        sc.scrub_plain(joined.as_bytes(), &mut want);
        let want = String::from_utf8(want).unwrap();
        assert_eq!(
            want,
            "Sure! Mail [EMAIL] or call [PHONE] today. Key: [AWS_KEY] \u{e9}t\u{e9} \"q\" done"
        );
        let whole = run(&sc, input.as_bytes(), &[input.len()]);
        assert_eq!(deltas(&whole), want);
        for k in 1..input.len() {
            let out = run(&sc, input.as_bytes(), &[k, input.len()]);
            assert_eq!(deltas(&out), want, "split at {k}");
        }
        for size in [1, 2, 3, 7, 64] {
            assert_eq!(
                deltas(&run(&sc, input.as_bytes(), &[size])),
                want,
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn untouched_events_pass_byte_for_byte_and_others_are_scrubbed() {
        let sc = Scanner::default();
        let input = "event: x\ndata: {\"note\":\"bob@example.org\"}\n\ndata: plain 10.0.0.1\n\n";
        let out = run(&sc, input.as_bytes(), &[5]);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "event: x\ndata: {\"note\":\"[EMAIL]\"}\n\ndata: plain [IP]\n\n"
        );
        let clean = stream(&["hello ", "world"]);
        assert_eq!(run(&sc, clean.as_bytes(), &[3]), clean.as_bytes());
    }

    #[test]
    fn only_changed_content_tokens_are_rewritten() {
        let sc = Scanner::default();
        let input = "id: 7\ndata: {\"z\":1,  \"choices\":[{\"delta\":{\"content\":\"mail bob@example.org\\n\"},\"index\":0,\"extra\":[1,2]}],\"a\":\"x\"}\n\n\
            data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" ok\"},\"finish_reason\":\"stop\"}]}\n\n";
        let out = String::from_utf8(run(&sc, input.as_bytes(), &[9])).unwrap();
        assert_eq!(
            out,
            "id: 7\ndata: {\"z\":1,  \"choices\":[{\"delta\":{\"content\":\"mail [EMAIL]\\n\"},\"index\":0,\"extra\":[1,2]}],\"a\":\"x\"}\n\n\
             data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\" ok\"},\"finish_reason\":\"stop\"}]}\n\n"
        );
    }

    #[test]
    fn chunks_the_view_does_not_fit_are_scrubbed_alone() {
        let sc = Scanner::default();
        for payload in [
            r#"{"choices":[7,{"delta":{"content":"bob@example.org"}}]}"#,
            r#"{"choices":[{"delta":{"content":"bob@example.org"}}],"choices":[]}"#,
            r#"{"choices":[{"index":99,"delta":{"content":"bob@example.org"}}]}"#,
        ] {
            let input = format!("data: {payload}\n\n");
            let out = String::from_utf8(run(&sc, input.as_bytes(), &[4])).unwrap();
            assert!(!out.contains("bob@") && out.contains("[EMAIL]"), "{out}");
        }
    }

    #[test]
    fn events_are_released_before_the_end_when_clean() {
        let sc = Scanner::default();
        let mut s = SseStream::new();
        let mut out = Vec::new();
        for _ in 0..40 {
            s.push(&sc, event("lorem ipsum ").as_bytes(), &mut out);
        }
        assert!(
            !out.is_empty() && s.queue.len() <= 10,
            "held {}",
            s.queue.len()
        );
    }
}
