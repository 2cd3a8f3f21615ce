//! Server-sent events, with PII tracking across model deltas.
//!
//! The stream is cut into events as a browser does (see `sse_frame`:
//! CR, LF or CRLF lines, several `data` lines joined, comments, a leading
//! BOM). The `data` of each event that is a JSON object is read with a
//! strict, borrowed, typed view; every text a model streams in pieces is
//! a *field* with its own engine, so a value split over several events
//! (`"jane.d"` | `"oe@exam"` | `"ple.com"`) is still found:
//!
//! | API | event | field text | key |
//! |---|---|---|---|
//! | OpenAI chat | chunk | `choices[].delta.content` (also `refusal`, `reasoning_content`, `reasoning`) | choice `index` + field |
//! | OpenAI chat | chunk | `choices[].delta.tool_calls[].function.arguments` | choice + tool `index` |
//! | OpenAI completions | chunk | `choices[].text` | choice `index` |
//! | Anthropic Messages | `content_block_delta` | `delta.text`, `delta.partial_json`, `delta.thinking` | `index` + kind |
//! | Anthropic Messages | `content_block_start` | `content_block.text` / `.thinking` | `index` + kind |
//! | OpenAI Responses | any `*.delta` with a string `delta` | `delta` | type, `item_id`, `output_index`, `content_index`, `summary_index` |
//!
//! A field ends at: a non-null `finish_reason` (its choice), `[DONE]`
//! (everything); `content_block_start`/`content_block_stop` (that
//! index), `message_start`/`message_stop` (every block); the matching
//! `*.done`, `response.created`/`completed`/`failed`/`incomplete` (every
//! Responses field). Text for a key whose field ended starts a new field.
//!
//! Events with field text are held back until the engine has committed
//! their text (up to the last space before the scan point, less any tail
//! that could still start a keyword, plus the reach of an undecided
//! detector: a token-sized delta goes out with the next one), then
//! written with only the
//! field strings that changed replaced in their raw bytes, so that the
//! concatenation of a field's output deltas is the scrubbed concatenation
//! of its input deltas; a replacement goes into the event where the value
//! started and later events covered by it get `""`. The rest of such an
//! event (ids, tool names, unknown fields) is scrubbed in JSON mode, piece
//! by piece between the field strings. Other events (`[DONE]`, role-only
//! chunks, any other JSON or text payload) are scrubbed on their own, in
//! JSON mode when the payload looks like JSON, else in text mode, and
//! keep their place in the stream. Every byte not rewritten is kept.
//!
//! Fail closed: what the tracker cannot follow ends the stream with an
//! [`SseError`] (the caller writes its error event; nothing more is
//! written, held events included) instead of being scrubbed event by
//! event, which would let a value split across events through:
//! - a `data` payload starting with `{` that the strict view cannot read
//!   (invalid JSON, duplicate keys among the fields read, a field text or
//!   index of the wrong type): it could be a delta, and clients read
//!   such payloads in ways that differ;
//! - `logprobs` (chat) or a non-empty top-level `logprobs` (Responses):
//!   they repeat the streamed text token by token;
//! - more than [`SseLimits::max_fields`] fields at once, an event over
//!   [`SseLimits::max_event_bytes`], or more than
//!   [`SseLimits::max_held_bytes`] of events held back.
//!
//! Not covered: text-only payloads split across events (each is scrubbed
//! alone), and `event:`/`id:`/comment lines, which are copied.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::core::Core;
use super::report::PiiReport;
use super::scanner::Scanner;
use crate::decision::push_json_string;
use crate::sse_frame::{fields, Event, Framer};

/// The bounds of one SSE stream; past any of them the stream fails
/// closed with an [`SseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SseLimits {
    /// Largest event, raw. Default 1 MiB (a Responses
    /// `response.completed` repeats the whole answer in one event).
    pub max_event_bytes: usize,
    /// Most fields tracked at once (choices × texts, tool calls, blocks).
    pub max_fields: usize,
    /// Most raw bytes of events held back while their text is undecided
    /// (a PEM key streamed three bytes per event is ~1 MB of events).
    pub max_held_bytes: usize,
}

impl Default for SseLimits {
    fn default() -> Self {
        Self {
            max_event_bytes: 1 << 20,
            max_fields: 64,
            max_held_bytes: 4 << 20,
        }
    }
}

/// Why an SSE stream was refused; once set the scrubber writes nothing
/// more and the caller must end the stream with an error event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// An event is larger than [`SseLimits::max_event_bytes`].
    #[error("an event is larger than the configured bound")]
    EventTooLarge,
    /// More than [`SseLimits::max_fields`] fields at once.
    #[error("too many streamed fields at once")]
    TooManyFields,
    /// More than [`SseLimits::max_held_bytes`] held back.
    #[error("too many bytes held back")]
    HeldTooLarge,
    /// A JSON-looking payload the strict view cannot read.
    #[error("an event cannot be read strictly")]
    Unreadable,
    /// A delta carrying a copy of its text the tracker cannot follow.
    #[error("an event repeats streamed text in a form not tracked")]
    Untrackable,
}

impl SseError {
    /// A short code for logs and the refusal event.
    pub fn reason(self) -> &'static str {
        match self {
            Self::EventTooLarge => "sse_event_too_large",
            Self::TooManyFields => "sse_too_many_fields",
            Self::HeldTooLarge => "sse_held_too_large",
            Self::Unreadable => "sse_unreadable_event",
            Self::Untrackable => "sse_untrackable_delta",
        }
    }
}

/// Which text of a chat choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChoiceText {
    Content,
    Refusal,
    ReasoningContent,
    Reasoning,
    /// Legacy completions `choices[].text`.
    Text,
}

/// Which text of an Anthropic content block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockText {
    Text,
    Json,
    Thinking,
}

/// What a field is the text of.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    Choice(u64, ChoiceText),
    Tool(u64, u64),
    Block(u64, BlockText),
    /// Responses API: type without `.delta`, and the indexes, raw.
    Output(Box<str>),
}

/// Fields an event ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    All,
    Choice(u64),
    Block(u64),
    AllBlocks,
    Output(Box<str>),
    AllOutputs,
}

impl End {
    fn covers(&self, k: &Key) -> bool {
        match (self, k) {
            (End::All, _) => true,
            (End::Choice(c), Key::Choice(k, _) | Key::Tool(k, _)) => c == k,
            (End::Block(b), Key::Block(k, _)) => b == k,
            (End::AllBlocks, Key::Block(..)) => true,
            (End::Output(o), Key::Output(k)) => o == k,
            (End::AllOutputs, Key::Output(_)) => true,
            _ => false,
        }
    }
}

/// The fields of an event the tracker reads, borrowed; unknown fields
/// are skipped, duplicates of these are an error.
#[derive(Deserialize)]
struct View<'a> {
    #[serde(borrow, default, rename = "type")]
    ty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    choices: Option<Vec<ChoiceView<'a>>>,
    #[serde(borrow, default)]
    index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content_block: Option<&'a RawValue>,
    #[serde(borrow, default)]
    item_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    output_index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    content_index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    summary_index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    logprobs: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChoiceView<'a> {
    #[serde(borrow, default)]
    index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    delta: Option<ChatDelta<'a>>,
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    /// `None` when absent or `null`.
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
    #[serde(borrow, default)]
    logprobs: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct ChatDelta<'a> {
    #[serde(borrow, default)]
    content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    refusal: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning_content: Option<&'a RawValue>,
    #[serde(borrow, default)]
    reasoning: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tool_calls: Option<Vec<ToolView<'a>>>,
}

#[derive(Deserialize)]
struct ToolView<'a> {
    #[serde(borrow, default)]
    index: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function: Option<FunctionView<'a>>,
}

#[derive(Deserialize)]
struct FunctionView<'a> {
    #[serde(borrow, default)]
    arguments: Option<&'a RawValue>,
}

/// Anthropic `delta` and `content_block`.
#[derive(Deserialize)]
struct BlockView<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    partial_json: Option<&'a RawValue>,
    #[serde(borrow, default)]
    thinking: Option<&'a RawValue>,
}

/// What one event says: field strings (JSON tokens borrowed from the
/// payload), and the fields it ends before and after them.
#[derive(Default)]
struct Read<'a> {
    found: Vec<(Key, &'a str)>,
    before: Vec<End>,
    after: Vec<End>,
}

/// A field text token: a JSON string, else the event is unreadable.
fn string(v: &RawValue) -> Result<&str, SseError> {
    let t = v.get();
    if t.starts_with('"') {
        Ok(t)
    } else {
        Err(SseError::Unreadable)
    }
}

/// A non-negative integer index.
fn index(v: Option<&RawValue>) -> Result<Option<u64>, SseError> {
    v.map(|v| v.get().parse::<u64>().map_err(|_| SseError::Unreadable))
        .transpose()
}

/// Reads a JSON object payload.
fn read(payload: &[u8]) -> Result<Read<'_>, SseError> {
    let view: View = serde_json::from_slice(payload).map_err(|_| SseError::Unreadable)?;
    let mut r = Read::default();
    for (slot, ch) in view.choices.iter().flatten().enumerate() {
        let choice = index(ch.index)?.unwrap_or(slot as u64);
        if ch.logprobs.is_some() {
            return Err(SseError::Untrackable);
        }
        if let Some(d) = &ch.delta {
            for (text, v) in [
                (ChoiceText::Content, d.content),
                (ChoiceText::Refusal, d.refusal),
                (ChoiceText::ReasoningContent, d.reasoning_content),
                (ChoiceText::Reasoning, d.reasoning),
            ] {
                if let Some(v) = v {
                    r.found.push((Key::Choice(choice, text), string(v)?));
                }
            }
            for (tslot, t) in d.tool_calls.iter().flatten().enumerate() {
                let tool = index(t.index)?.unwrap_or(tslot as u64);
                if let Some(a) = t.function.as_ref().and_then(|f| f.arguments) {
                    r.found.push((Key::Tool(choice, tool), string(a)?));
                }
            }
        }
        if let Some(t) = ch.text {
            r.found
                .push((Key::Choice(choice, ChoiceText::Text), string(t)?));
        }
        if ch.finish_reason.is_some() {
            r.after.push(End::Choice(choice));
        }
    }
    let ty: Option<Cow<str>> = match view.ty {
        Some(t) if t.get().starts_with('"') => {
            Some(serde_json::from_str(t.get()).map_err(|_| SseError::Unreadable)?)
        }
        _ => None,
    };
    let Some(ty) = ty else {
        return Ok(r);
    };
    match ty.as_ref() {
        "content_block_delta" | "content_block_start" => {
            let block = index(view.index)?.ok_or(SseError::Unreadable)?;
            let start = ty == "content_block_start";
            let body = if start {
                view.content_block
            } else {
                view.delta
            };
            let body = body.ok_or(SseError::Unreadable)?;
            let b: BlockView =
                serde_json::from_str(body.get()).map_err(|_| SseError::Unreadable)?;
            if start {
                r.before.push(End::Block(block));
            }
            for (text, v) in [
                (BlockText::Text, b.text),
                (BlockText::Json, b.partial_json),
                (BlockText::Thinking, b.thinking),
            ] {
                if let Some(v) = v {
                    r.found.push((Key::Block(block, text), string(v)?));
                }
            }
        }
        "content_block_stop" => {
            let block = index(view.index)?.ok_or(SseError::Unreadable)?;
            r.after.push(End::Block(block));
        }
        "message_start" | "message_stop" => r.after.push(End::AllBlocks),
        "response.created" | "response.completed" | "response.failed" | "response.incomplete" => {
            r.after.push(End::AllOutputs);
        }
        t => {
            let (base, done) = match (t.strip_suffix(".delta"), t.strip_suffix(".done")) {
                (Some(b), _) => (b, false),
                (_, Some(b)) => (b, true),
                _ => return Ok(r),
            };
            let mut key = String::from(base);
            for v in [
                view.item_id,
                view.output_index,
                view.content_index,
                view.summary_index,
            ] {
                key.push('\0');
                key.push_str(v.map_or("", RawValue::get));
            }
            let key: Box<str> = key.into();
            if done {
                r.after.push(End::Output(key));
            } else if let Some(d) = view.delta {
                if view.logprobs.is_some_and(|l| l.get().trim() != "[]") {
                    return Err(SseError::Untrackable);
                }
                r.found.push((Key::Output(key), string(d)?));
            }
        }
    }
    Ok(r)
}

/// One field string of a held event.
#[derive(Debug, Clone)]
struct Part {
    field: u64,
    /// Absolute position of the text in its field.
    start: u64,
    content: String,
    /// Byte range of the JSON string token in the held raw event.
    token: Range<usize>,
}

#[derive(Debug, Clone)]
struct Held {
    raw: Vec<u8>,
    /// Where its field strings go; empty for events already scrubbed
    /// (written as `raw`).
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
struct Field {
    key: Key,
    id: u64,
    core: Core,
    done: bool,
    /// Held events with a part of this field.
    held: usize,
    /// Replacements not yet written: absolute span and text.
    edits: VecDeque<(u64, u64, Vec<u8>)>,
}

/// Streaming SSE scrubber.
#[derive(Debug, Clone)]
pub(crate) struct SseStream {
    framer: Framer,
    queue: VecDeque<Held>,
    held_bytes: usize,
    fields: Vec<Field>,
    next_id: u64,
    report: PiiReport,
    limits: SseLimits,
    error: Option<SseError>,
    /// Pieces around field strings recently found clean.
    clean: VecDeque<Vec<u8>>,
}

/// Clean pieces remembered, and the longest one.
const CLEAN_GAPS: usize = 4;
const MAX_CLEAN_GAP: usize = 1024;

impl SseStream {
    pub(crate) fn new(limits: SseLimits) -> Self {
        Self {
            framer: Framer::new(limits.max_event_bytes),
            queue: VecDeque::new(),
            held_bytes: 0,
            fields: Vec::new(),
            next_id: 0,
            report: PiiReport::default(),
            limits,
            error: None,
            clean: VecDeque::new(),
        }
    }

    pub(crate) fn report(&self) -> PiiReport {
        let mut r = self.report;
        for f in &self.fields {
            r.merge(&f.core.report);
        }
        r
    }

    /// Why the stream was refused, if it was.
    pub(crate) fn error(&self) -> Option<SseError> {
        self.error
    }

    pub(crate) fn push(&mut self, sc: &Scanner, chunk: &[u8], out: &mut Vec<u8>) {
        if self.error.is_some() {
            return;
        }
        self.framer.push(chunk);
        loop {
            match self.framer.next_event() {
                Ok(Some(ev)) => {
                    if let Err(e) = self.event(sc, ev) {
                        return self.fail(e);
                    }
                }
                Ok(None) => break,
                Err(_) => return self.fail(SseError::EventTooLarge),
            }
        }
        if let Err(e) = self.emit(sc, false, out) {
            self.fail(e);
        }
    }

    pub(crate) fn finish(&mut self, sc: &Scanner, out: &mut Vec<u8>) {
        if self.error.is_some() {
            return;
        }
        if let Some(ev) = self.framer.finish() {
            if let Err(e) = self.event(sc, ev) {
                return self.fail(e);
            }
        }
        for f in &mut self.fields {
            f.done = true;
        }
        if let Err(e) = self.emit(sc, true, out) {
            self.fail(e);
        }
    }

    /// Refuses the rest of the stream: nothing held is written.
    fn fail(&mut self, e: SseError) {
        self.report = self.report();
        self.error = Some(e);
        self.queue.clear();
        self.fields.clear();
        self.framer = Framer::new(0);
    }

    fn event(&mut self, sc: &Scanner, ev: Event) -> Result<(), SseError> {
        let f = fields(&ev);
        let payload = f.data.as_deref().unwrap_or(&[]);
        let trimmed = payload.trim_ascii_start();
        let is_object = trimmed.first() == Some(&b'{');
        if is_object {
            let r = read(payload)?;
            self.end(&r.before);
            if !r.found.is_empty() {
                let mut tokens = Vec::with_capacity(r.found.len());
                for (key, token) in &r.found {
                    let at = (token.as_ptr() as usize)
                        .checked_sub(payload.as_ptr() as usize)
                        .ok_or(SseError::Unreadable)?;
                    let span = f.raw_range(at, token.len()).ok_or(SseError::Unreadable)?;
                    if ev.raw.get(span.clone()) != Some(token.as_bytes()) {
                        return Err(SseError::Unreadable);
                    }
                    let content: String =
                        serde_json::from_str(token).map_err(|_| SseError::Unreadable)?;
                    tokens.push((key.clone(), content, span));
                }
                tokens.sort_by_key(|t| t.2.start);
                self.hold(sc, &ev.raw, tokens)?;
                self.end(&r.after);
                return Ok(());
            }
            self.end(&r.after);
        } else if trimmed.trim_ascii_end() == b"[DONE]" {
            self.end(&[End::All]);
        }
        let mut scrubbed = Vec::with_capacity(ev.raw.len());
        let r = if is_object || trimmed.first() == Some(&b'[') {
            sc.scrub_json(&ev.raw, &mut scrubbed)
        } else {
            sc.scrub_text(&ev.raw, &mut scrubbed)
        };
        self.report.merge(&r);
        self.queue_event(Held {
            raw: scrubbed,
            parts: Vec::new(),
        })
    }

    /// Marks the fields `ends` covers as done.
    fn end(&mut self, ends: &[End]) {
        for e in ends {
            for f in &mut self.fields {
                if e.covers(&f.key) {
                    f.done = true;
                }
            }
        }
    }

    /// Feeds an event's field strings (sorted by place) to their fields and
    /// holds it; the bytes around them are scrubbed in JSON mode now.
    fn hold(
        &mut self,
        sc: &Scanner,
        raw: &[u8],
        tokens: Vec<(Key, String, Range<usize>)>,
    ) -> Result<(), SseError> {
        let mut out = Vec::with_capacity(raw.len());
        let mut parts = Vec::with_capacity(tokens.len());
        let mut written = 0;
        for (key, content, span) in tokens {
            let gap = raw.get(written..span.start).unwrap_or(&[]);
            self.scrub_gap(sc, gap, &mut out);
            let at = out.len();
            out.extend_from_slice(raw.get(span.clone()).unwrap_or(&[]));
            written = span.end;
            let field = self.field(key)?;
            field.held += 1;
            let start = field.core.end();
            field.core.text.extend_from_slice(content.as_bytes());
            parts.push(Part {
                field: field.id,
                start,
                content,
                token: at..out.len(),
            });
        }
        self.scrub_gap(sc, raw.get(written..).unwrap_or(&[]), &mut out);
        self.queue_event(Held { raw: out, parts })
    }

    /// Scrubs the bytes between field strings in JSON mode, appending them
    /// to `out`. Streams repeat the same bytes around their deltas (ids,
    /// model, `"finish_reason":null`), so pieces found clean recently are
    /// copied without a scan: scrubbing is a function of the bytes alone.
    fn scrub_gap(&mut self, sc: &Scanner, gap: &[u8], out: &mut Vec<u8>) {
        if gap.is_empty() || self.clean.iter().any(|c| c.as_slice() == gap) {
            out.extend_from_slice(gap);
            return;
        }
        let at = out.len();
        let mut piece = Vec::with_capacity(gap.len());
        let r = sc.scrub_json(gap, &mut piece);
        self.report.merge(&r);
        out.extend_from_slice(&piece);
        if r.total() == 0 && out.get(at..) == Some(gap) && gap.len() <= MAX_CLEAN_GAP {
            if self.clean.len() >= CLEAN_GAPS {
                self.clean.pop_front();
            }
            self.clean.push_back(gap.to_vec());
        }
    }

    /// The open field for `key`, created if needed (within the bound).
    fn field(&mut self, key: Key) -> Result<&mut Field, SseError> {
        let found = self.fields.iter().position(|f| !f.done && f.key == key);
        let i = match found {
            Some(i) => i,
            None => {
                if self.fields.len() >= self.limits.max_fields {
                    return Err(SseError::TooManyFields);
                }
                self.next_id += 1;
                self.fields.push(Field {
                    key,
                    id: self.next_id,
                    core: Core::new(false),
                    done: false,
                    held: 0,
                    edits: VecDeque::new(),
                });
                self.fields.len() - 1
            }
        };
        self.fields.get_mut(i).ok_or(SseError::TooManyFields)
    }

    fn queue_event(&mut self, held: Held) -> Result<(), SseError> {
        self.held_bytes += held.raw.len();
        self.queue.push_back(held);
        if self.held_bytes > self.limits.max_held_bytes {
            return Err(SseError::HeldTooLarge);
        }
        Ok(())
    }

    /// Runs the engines, writes every event at the front of the queue
    /// whose text is final, and drops the fields that are over.
    fn emit(&mut self, sc: &Scanner, eof: bool, out: &mut Vec<u8>) -> Result<(), SseError> {
        for f in &mut self.fields {
            f.core.run(sc, eof || f.done);
            let core = &mut f.core;
            for e in &core.edits {
                let repl = core.repl.get(e.repl.clone()).unwrap_or(&[]).to_vec();
                f.edits.push_back((e.start, e.end, repl));
            }
            core.clear_edits();
            let commit = core.commit;
            core.compact(commit);
        }
        while let Some(front) = self.queue.front() {
            let ready = front.parts.iter().all(|p| {
                self.fields
                    .iter()
                    .find(|f| f.id == p.field)
                    .is_none_or(|f| f.core.commit >= p.start + p.content.len() as u64)
            });
            if !ready {
                break;
            }
            let Some(held) = self.queue.pop_front() else {
                break;
            };
            self.held_bytes = self.held_bytes.saturating_sub(held.raw.len());
            self.write(held, out);
        }
        let mut i = 0;
        while let Some(f) = self.fields.get(i) {
            if f.done && f.held == 0 && f.core.commit >= f.core.end() {
                let f = self.fields.swap_remove(i);
                self.report.merge(&f.core.report);
            } else {
                i += 1;
            }
        }
        if eof && !self.queue.is_empty() {
            // Every engine ran to its end: nothing can stay held.
            return Err(SseError::HeldTooLarge);
        }
        Ok(())
    }

    /// Writes a held event, replacing the field strings that changed.
    fn write(&mut self, held: Held, out: &mut Vec<u8>) {
        let mut written = 0;
        let mut token = String::new();
        for p in &held.parts {
            let Some(f) = self.fields.iter_mut().find(|f| f.id == p.field) else {
                continue;
            };
            f.held = f.held.saturating_sub(1);
            let Some(text) = render_part(&mut f.edits, p.start, p.content.as_bytes()) else {
                continue;
            };
            // Tokens come in order; `written` never passes one.
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
        let mut s = SseStream::new(SseLimits::default());
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
    fn chunks_the_view_cannot_read_end_the_stream() {
        let sc = Scanner::default();
        for (payload, want) in [
            (
                r#"{"choices":[7,{"delta":{"content":"bob@example.org"}}]}"#,
                SseError::Unreadable,
            ),
            (
                r#"{"choices":[{"delta":{"content":"bob@example.org"}}],"choices":[]}"#,
                SseError::Unreadable,
            ),
            (
                r#"{"choices":[{"index":"0","delta":{"content":"bob@"}}]}"#,
                SseError::Unreadable,
            ),
            (
                r#"{"choices":[{"index":0,"delta":{"content":5}}]}"#,
                SseError::Unreadable,
            ),
            (
                r#"{"choices":[{"index":0,"delta":{"content":"x"}}"#,
                SseError::Unreadable,
            ),
            (
                r#"{"choices":[{"index":0,"delta":{"content":"x"},"logprobs":{"content":[]}}]}"#,
                SseError::Untrackable,
            ),
        ] {
            let input = format!("data: {}\n\ndata: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"late\"}}}}]}}\n\n", payload);
            let mut s = SseStream::new(SseLimits::default());
            let mut out = Vec::new();
            s.push(&sc, input.as_bytes(), &mut out);
            s.finish(&sc, &mut out);
            assert_eq!(s.error(), Some(want), "{payload}");
            assert!(
                out.is_empty(),
                "{payload}: {}",
                String::from_utf8_lossy(&out)
            );
        }
    }

    #[test]
    fn events_are_released_before_the_end_when_clean() {
        let sc = Scanner::default();
        let mut s = SseStream::new(SseLimits::default());
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
