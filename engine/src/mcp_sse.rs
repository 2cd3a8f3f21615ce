//! MCP list filtering for answers streamed as server-sent events
//! (MCP "streamable HTTP": a POST answered with `text/event-stream`).
//!
//! [`McpSseFilter`] cuts the stream into events exactly as the PII
//! scrubber does (CR/LF/CRLF lines, joined `data` lines, BOM), parses the
//! `data` of each event as JSON, and runs [`filter_list_answers`] on it, so
//! a `tools/list`, `resources/list` or `prompts/list` answer whose id
//! matches a list call of the request loses the entries the caller may not
//! use, as a buffered JSON answer does. A changed event is written with
//! one `data:` line holding the filtered JSON in place of its `data`
//! lines; every other line and every other event is written unchanged.
//!
//! Fail closed: while a list call has no answer yet, an event whose data
//! is not JSON ends the stream with [`McpSseError::Unreadable`] (it might
//! be the answer in a form a client still reads); after that, an event
//! whose data opens with `{` or `[` but is not JSON the filter reads ends
//! it too (a client may read it as another pending list answer). Every JSON answer is
//! filtered for the whole stream, not only the first per id, so a second
//! answer repeating an id cannot bring hidden entries back. An event over
//! the size bound ends the stream with [`McpSseError::EventTooLarge`].
//! Once failed, nothing more is written; the caller ends the stream with
//! its error event.
//!
//! Compose with PII scrubbing by filtering first, then scrubbing: push
//! each chunk here, then push this filter's output into the SSE
//! [`StreamScrubber`](crate::pii::StreamScrubber); call `finish` on both
//! in the same order.

use serde_json::Value;

use crate::mcp::{filter_list_answers_pinned, McpCall, TargetKind};
use crate::pins::{OnChange, SharedPins, ToolDigest};
use crate::sse_frame::{fields, Event, Framer};

/// Largest event by default, raw.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// Why a streamed MCP answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum McpSseError {
    /// An event is larger than the bound.
    #[error("an event is larger than the configured bound")]
    EventTooLarge,
    /// An event whose data is not JSON while a list answer is awaited.
    #[error("an event cannot be read while a list answer is awaited")]
    Unreadable,
    /// A pinned tool changed and the pins say `refuse`.
    #[error("a pinned tool's definition changed")]
    ToolPinMismatch,
}

impl McpSseError {
    /// A short code for logs and the refusal event.
    pub fn reason(self) -> &'static str {
        match self {
            Self::EventTooLarge => "mcp_sse_event_too_large",
            Self::Unreadable => "mcp_sse_unreadable_event",
            Self::ToolPinMismatch => "tool_pin_mismatch",
        }
    }
}

/// Streaming list filter for one SSE response.
#[derive(Debug, Clone)]
pub struct McpSseFilter {
    framer: Framer,
    /// The request's list calls.
    calls: Vec<McpCall>,
    /// Indexes in `calls` not answered yet.
    awaited: Vec<usize>,
    removed: usize,
    error: Option<McpSseError>,
    /// Tool pins checked on every `tools` list.
    pins: Option<SharedPins>,
    /// Pinned tools advertised since the last [`Self::take_advertised`].
    advertised: Vec<(String, ToolDigest)>,
    /// Pinned tools seen changed since the last take.
    changed: Vec<String>,
}

impl McpSseFilter {
    /// A filter for the answers to `calls` (the request's MCP calls; only
    /// list calls matter), with the default event bound.
    pub fn new(calls: &[McpCall]) -> Self {
        Self::with_max_event_bytes(calls, DEFAULT_MAX_EVENT_BYTES)
    }

    /// A filter with another bound on the size of one event.
    pub fn with_max_event_bytes(calls: &[McpCall], max_event_bytes: usize) -> Self {
        let calls: Vec<McpCall> = calls
            .iter()
            .filter(|c| TargetKind::of_list_method(&c.method).is_some())
            .cloned()
            .collect();
        Self {
            framer: Framer::new(max_event_bytes),
            awaited: (0..calls.len()).collect(),
            calls,
            removed: 0,
            error: None,
            pins: None,
            advertised: Vec::new(),
            changed: Vec::new(),
        }
    }

    /// Also checks `tools` lists against tool pins: a changed pinned tool
    /// is removed, or ends the stream with
    /// [`McpSseError::ToolPinMismatch`] when the pins say `refuse`.
    pub fn with_pins(mut self, pins: Option<SharedPins>) -> Self {
        self.pins = pins;
        self
    }

    /// Pinned tools the stream advertised since the last call (the host
    /// remembers them), and the pinned tools seen changed.
    pub fn take_advertised(&mut self) -> (Vec<(String, ToolDigest)>, Vec<String>) {
        (
            std::mem::take(&mut self.advertised),
            std::mem::take(&mut self.changed),
        )
    }

    /// Entries removed so far.
    pub fn removed(&self) -> usize {
        self.removed
    }

    /// Set once the stream was refused; nothing more is written.
    pub fn error(&self) -> Option<McpSseError> {
        self.error
    }

    /// Filters the next chunk; appends what is final to `out` (whole
    /// events; an incomplete one waits for its end).
    pub fn push(
        &mut self,
        chunk: &[u8],
        mut allowed: impl FnMut(TargetKind, &str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<(), McpSseError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        // With pins every event is read: a server may carry a list
        // answer for another pending request in any stream it answers.
        if self.calls.is_empty() && self.pins.is_none() {
            out.extend_from_slice(chunk);
            return Ok(());
        }
        self.framer.push(chunk);
        loop {
            let ev = match self.framer.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => return Ok(()),
                Err(_) => return self.fail(McpSseError::EventTooLarge),
            };
            if let Err(e) = self.event(ev, &mut allowed, out) {
                return self.fail(e);
            }
        }
    }

    /// Ends the stream: an unended last event is filtered like the others.
    pub fn finish(
        &mut self,
        mut allowed: impl FnMut(TargetKind, &str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<(), McpSseError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if let Some(ev) = self.framer.finish() {
            if let Err(e) = self.event(ev, &mut allowed, out) {
                return self.fail(e);
            }
        }
        Ok(())
    }

    fn fail(&mut self, e: McpSseError) -> Result<(), McpSseError> {
        self.error = Some(e);
        self.framer = Framer::new(0);
        Err(e)
    }

    fn event(
        &mut self,
        ev: Event,
        allowed: &mut impl FnMut(TargetKind, &str) -> bool,
        out: &mut Vec<u8>,
    ) -> Result<(), McpSseError> {
        let f = fields(&ev);
        let Some(data) = f.data.as_deref() else {
            out.extend_from_slice(&ev.raw);
            return Ok(());
        };
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            // Once the awaited answers went by, plain text passes; data
            // that opens like a JSON object or array does not, as a
            // client's more lenient parser (`1e400`, lone surrogates) may
            // read it as a list answer for another pending id.
            if self.awaited.is_empty() && !looks_like_json(data) {
                out.extend_from_slice(&ev.raw);
                return Ok(());
            }
            return Err(McpSseError::Unreadable);
        };
        self.mark_answered(&value);
        let outcome = match filter_list_answers_pinned(data, self.pins.as_deref(), &mut *allowed) {
            Ok(outcome) => outcome,
            // An answer the filter cannot read strictly could show
            // entries it was meant to hide: the stream is refused.
            Err(_) => return Err(McpSseError::Unreadable),
        };
        self.advertised.extend(outcome.pins.advertised);
        if !outcome.pins.mismatched.is_empty() {
            self.changed.extend(outcome.pins.mismatched);
            let refuse = self
                .pins
                .as_ref()
                .is_some_and(|p| p.on_change == OnChange::Refuse);
            if refuse {
                return Err(McpSseError::ToolPinMismatch);
            }
        }
        let (filtered, removed) = match outcome.body {
            Some(filtered) => (filtered, outcome.removed),
            None => {
                out.extend_from_slice(&ev.raw);
                return Ok(());
            }
        };
        self.removed += removed;
        // The filtered JSON has no raw line break: one `data:` line takes
        // the place of the first, the others go.
        let mut written = 0;
        for (i, &(start, text_end, end)) in f.data_lines.iter().enumerate() {
            out.extend_from_slice(ev.raw.get(written..start).unwrap_or(&[]));
            if i == 0 {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&filtered);
                out.extend_from_slice(ev.raw.get(text_end..end).unwrap_or(&[]));
            }
            written = end;
        }
        out.extend_from_slice(ev.raw.get(written..).unwrap_or(&[]));
        Ok(())
    }

    /// Drops from `awaited` the calls `value` answers.
    fn mark_answered(&mut self, value: &Value) {
        let answers: &[Value] = match value {
            Value::Array(items) => items,
            other => std::slice::from_ref(other),
        };
        for a in answers {
            let is_answer = a.get("result").is_some() || a.get("error").is_some();
            if !is_answer {
                continue;
            }
            let id = a.get("id").cloned();
            let only = self.calls.len() == 1;
            let calls = &self.calls;
            self.awaited.retain(|&i| {
                calls
                    .get(i)
                    .is_none_or(|c| !(c.id == id || (only && c.id.is_none())))
            });
        }
    }
}

/// Whether `data` opens like a JSON object or array once JSON whitespace
/// is skipped: something a JSON-RPC client may parse as a message.
fn looks_like_json(data: &[u8]) -> bool {
    // A JSON-RPC message is an object, or a batch: an array of objects
    // (`[DONE]` and other text cannot be one).
    let mut bytes = data
        .iter()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    match bytes.next() {
        Some(b'{') => true,
        Some(b'[') => matches!(bytes.next(), Some(b'{') | None),
        _ => false,
    }
}
