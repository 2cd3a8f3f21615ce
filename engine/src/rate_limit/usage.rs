//! The LLM tokens an answer used, read from the upstream's bytes as they
//! pass (OpenAI and Anthropic `usage`, whole JSON answers and event
//! streams), in arbitrary chunks and bounded memory, without touching
//! the bytes (the PII scrubber reads the same chunks independently).
//!
//! - OpenAI: `usage.total_tokens`, else `prompt_tokens +
//!   completion_tokens`; a stream carries it in its last chunk
//!   (`stream_options.include_usage`).
//! - Anthropic: `usage.input_tokens + usage.output_tokens`; a stream
//!   carries `message.usage` in `message_start` and a cumulative
//!   `usage` in `message_delta`.
//!
//! Every document is read strictly (duplicate keys refused, as the
//! scrubber does), and only a whole number in `0..=`[`MAX_USAGE`] counts:
//! negative, fractional, exponent or huge values are ignored. Several
//! usages in one answer charge the largest (a stream must not lower its
//! charge with a later chunk). An answer whose usage cannot be read
//! (none, malformed, an event over the bound) is charged an estimate
//! instead ([`UsageMeter::charge`]): never nothing.

use serde_json::Value;

use crate::sse_frame::{fields, Framer};
use crate::strict_json::{self, Options};

/// Largest usage number accepted (a billion tokens for one answer is
/// already absurd).
pub const MAX_USAGE: u64 = 1_000_000_000;

/// Largest event (stream) or document (whole answer) read for usage;
/// usage chunks are small, a larger event is skipped (and the answer
/// estimated when no usage is found elsewhere).
pub const MAX_DOCUMENT: usize = 1 << 20;

/// Bytes per token of the estimate charged when an answer reports no
/// usage: a low ratio, so the estimate errs on the caller's side of
/// the budget (over, not under).
pub const BYTES_PER_TOKEN: u64 = 3;

/// How an answer is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON document.
    Json,
    /// A `text/event-stream`.
    Sse,
}

/// Reads `usage` as an answer passes.
#[derive(Debug)]
pub struct UsageMeter {
    format: Format,
    framer: Framer,
    /// The whole JSON answer (bounded by [`MAX_DOCUMENT`]).
    doc: Vec<u8>,
    /// The JSON answer outgrew [`MAX_DOCUMENT`].
    doc_overflow: bool,
    /// Largest OpenAI-style total seen.
    total: Option<u64>,
    /// Largest Anthropic input / output counts seen.
    input: Option<u64>,
    output: Option<u64>,
    /// Answer bytes seen (for the estimate).
    bytes: u64,
    /// A top-level `usage` was read: a stream's final (or cumulative)
    /// usage, not only Anthropic's `message_start` one.
    top_usage: bool,
    finished: bool,
}

/// What an answer is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Charge {
    /// Tokens.
    pub tokens: u64,
    /// The upstream reported them (else estimated from sizes).
    pub reported: bool,
}

/// A whole number within bounds (`1.0` and `1e3` are not: the providers
/// send integers, anything else is forged or broken).
fn count(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64().filter(|n| *n <= MAX_USAGE),
        _ => None,
    }
}

impl UsageMeter {
    /// A meter for one answer.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            framer: Framer::new(MAX_DOCUMENT),
            doc: Vec::new(),
            doc_overflow: false,
            total: None,
            input: None,
            output: None,
            bytes: 0,
            top_usage: false,
            finished: false,
        }
    }

    /// The next bytes of the answer.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.finished {
            return;
        }
        self.bytes = self.bytes.saturating_add(chunk.len() as u64);
        match self.format {
            Format::Json => {
                if self.doc.len() + chunk.len() > MAX_DOCUMENT {
                    self.doc_overflow = true;
                    self.doc = Vec::new();
                } else if !self.doc_overflow {
                    self.doc.extend_from_slice(chunk);
                }
            }
            Format::Sse => {
                self.framer.push(chunk);
                self.drain_events();
            }
        }
    }

    fn drain_events(&mut self) {
        loop {
            match self.framer.next_event() {
                Ok(Some(event)) => {
                    if let Some(data) = fields(&event).data {
                        self.read_document(&data);
                    }
                }
                Ok(None) => return,
                Err(_) => {
                    // An event over the bound: restart framing after it
                    // is impossible to do exactly, so stop reading; the
                    // usage seen so far (or the estimate) is charged.
                    self.finished = true;
                    return;
                }
            }
        }
    }

    /// The answer ended.
    pub fn finish(&mut self) {
        if self.finished {
            return;
        }
        match self.format {
            Format::Json => {
                if !self.doc_overflow {
                    let doc = std::mem::take(&mut self.doc);
                    self.read_document(&doc);
                }
            }
            Format::Sse => {
                self.drain_events();
                if !self.finished {
                    if let Some(event) = self.framer.finish() {
                        if let Some(data) = fields(&event).data {
                            self.read_document(&data);
                        }
                    }
                }
            }
        }
        self.finished = true;
    }

    /// Reads one JSON document (an answer or an event's data).
    fn read_document(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || bytes.len() > MAX_DOCUMENT || !bytes.contains(&b'{') {
            return;
        }
        let Ok(Value::Object(doc)) = strict_json::parse(bytes, Options::RESPONSE) else {
            return;
        };
        let mut usages: Vec<&Value> = Vec::with_capacity(2);
        usages.extend(doc.get("usage"));
        if matches!(doc.get("usage"), Some(Value::Object(_))) {
            self.top_usage = true;
        }
        // Anthropic `message_start`: the usage is the message's.
        if let Some(Value::Object(message)) = doc.get("message") {
            usages.extend(message.get("usage"));
        }
        for usage in usages {
            let Value::Object(u) = usage else { continue };
            let openai = count(u.get("total_tokens")).or_else(|| {
                count(u.get("prompt_tokens"))?.checked_add(count(u.get("completion_tokens"))?)
            });
            if let Some(t) = openai {
                self.total = Some(self.total.map_or(t, |m| m.max(t)));
            }
            if let Some(i) = count(u.get("input_tokens")) {
                self.input = Some(self.input.map_or(i, |m| m.max(i)));
            }
            if let Some(o) = count(u.get("output_tokens")) {
                self.output = Some(self.output.map_or(o, |m| m.max(o)));
            }
        }
    }

    /// The tokens reported so far, if any.
    pub fn reported(&self) -> Option<u64> {
        let anthropic = match (self.input, self.output) {
            (None, None) => None,
            (i, o) => Some(i.unwrap_or(0).saturating_add(o.unwrap_or(0))),
        };
        match (self.total, anthropic) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// What the answer is charged: the reported usage, or, when none
    /// could be read, an estimate from the answer's size plus
    /// `request_bytes` (the prompt), [`BYTES_PER_TOKEN`] bytes a token.
    ///
    /// A stream whose only usage is Anthropic's `message_start` (input,
    /// and an output of about 1) was cut before its `message_delta`: a
    /// client that drops the stream just before its end must not get
    /// the output for free, so the estimate is charged when larger.
    pub fn charge(&self, request_bytes: u64) -> Charge {
        let estimate = self
            .bytes
            .saturating_add(request_bytes)
            .div_ceil(BYTES_PER_TOKEN)
            .max(1);
        match self.reported() {
            Some(tokens) if self.format == Format::Sse && !self.top_usage => Charge {
                tokens: tokens.max(estimate),
                reported: true,
            },
            Some(tokens) => Charge {
                tokens,
                reported: true,
            },
            None => Charge {
                tokens: estimate,
                reported: false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn every_split(format: Format, body: &[u8], expect: Option<u64>) {
        for cut in 0..=body.len() {
            for step in [1usize, 2, 3, 7] {
                let mut m = UsageMeter::new(format);
                let (a, b) = body.split_at(cut);
                for piece in a.chunks(step) {
                    m.push(piece);
                }
                m.push(b);
                m.finish();
                assert_eq!(m.reported(), expect, "cut {cut} step {step}");
            }
        }
    }

    #[test]
    fn an_anthropic_stream_cut_before_message_delta_is_charged_its_size() {
        let start = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n";
        let delta = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}}\n\n";
        let mut m = UsageMeter::new(Format::Sse);
        m.push(start);
        for _ in 0..100 {
            m.push(delta);
        }
        m.finish();
        assert_eq!(m.reported(), Some(11));
        let c = m.charge(0);
        assert!(c.tokens > 1000, "{}", c.tokens);
        // The whole stream: its final usage is charged as reported.
        let mut m = UsageMeter::new(Format::Sse);
        m.push(start);
        m.push(delta);
        m.push(b"event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n");
        m.finish();
        assert_eq!(m.charge(0).tokens, 25);
    }

    #[test]
    fn openai_stream_final_usage_chunk_at_every_boundary() {
        let body = b"data: {\"choices\":[{\"delta\":{\"content\":\"\\\"usage\\\":{\\\"total_tokens\\\":9}\"}}],\"usage\":null}\r\n\r\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":32,\"total_tokens\":42}}\n\n\
data: [DONE]\n\n";
        every_split(Format::Sse, body, Some(42));
    }

    #[test]
    fn anthropic_stream_adds_input_and_final_output() {
        let body = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"text\":\"hi\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n";
        every_split(Format::Sse, body, Some(40));
    }

    #[test]
    fn whole_json_answers() {
        every_split(
            Format::Json,
            br#"{"id":"x","usage":{"prompt_tokens":3,"completion_tokens":4}}"#,
            Some(7),
        );
        every_split(
            Format::Json,
            br#"{"usage":{"input_tokens":3,"output_tokens":4}}"#,
            Some(7),
        );
    }

    #[test]
    fn forged_numbers_are_ignored_and_estimated() {
        for usage in [
            r#"{"total_tokens":-5}"#,
            r#"{"total_tokens":1.5}"#,
            r#"{"total_tokens":1e308}"#,
            r#"{"total_tokens":"100"}"#,
            r#"{"total_tokens":18446744073709551615}"#,
            r#"{"total_tokens":99999999999999999999999}"#,
        ] {
            let body = format!(r#"{{"usage":{usage}}}"#);
            let mut m = UsageMeter::new(Format::Json);
            m.push(body.as_bytes());
            m.finish();
            assert_eq!(m.reported(), None, "{usage}");
            let c = m.charge(30);
            assert!(!c.reported && c.tokens >= (body.len() as u64 + 30) / 3);
        }
        // Duplicate keys: the document is refused whole.
        let mut m = UsageMeter::new(Format::Json);
        m.push(br#"{"usage":{"total_tokens":1},"usage":{"total_tokens":1}}"#);
        m.finish();
        assert_eq!(m.reported(), None);
        // Bounded parts add up.
        let mut m = UsageMeter::new(Format::Json);
        m.push(br#"{"usage":{"prompt_tokens":1000000000,"completion_tokens":1000000000}}"#);
        m.finish();
        assert_eq!(m.reported(), Some(2_000_000_000));
    }

    #[test]
    fn several_usages_charge_the_largest() {
        let body = b"data: {\"usage\":{\"total_tokens\":500}}\n\ndata: {\"usage\":{\"total_tokens\":5}}\n\n";
        every_split(Format::Sse, body, Some(500));
    }

    #[test]
    fn a_stream_without_a_final_blank_line_still_counts() {
        every_split(
            Format::Sse,
            b"data: {\"usage\":{\"total_tokens\":8}}",
            Some(8),
        );
    }

    #[test]
    fn oversize_documents_are_estimated() {
        let mut m = UsageMeter::new(Format::Json);
        let big = vec![b' '; MAX_DOCUMENT + 1];
        m.push(&big);
        m.push(br#"{"usage":{"total_tokens":1}}"#);
        m.finish();
        assert_eq!(m.reported(), None);
        assert!(m.charge(0).tokens > 300_000);
        let mut m = UsageMeter::new(Format::Sse);
        let mut ev = b"data: ".to_vec();
        ev.extend(std::iter::repeat_n(b'x', MAX_DOCUMENT + 10));
        m.push(&ev);
        m.push(b"\n\ndata: {\"usage\":{\"total_tokens\":1}}\n\n");
        m.finish();
        assert_eq!(m.reported(), None);
    }
}
