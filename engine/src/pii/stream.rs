//! Streaming scrubbers: fed a body chunk by chunk, they emit everything
//! that can no longer be part of a value and hold back a bounded tail.
//!
//! Hold-back bound: at most 80 bytes (the engine's look-behind) before the
//! earliest undecided trigger, plus that detector's reach until it
//! decides: about 1 KiB for a JWT header, 256 bytes for a `Bearer`
//! credential, a few hundred bytes for everything else (4 KiB with the
//! `hash` action on a long value). Long secrets (PEM keys, JWTs, API
//! tokens) are confirmed by their prefix: the replacement is written then
//! and the rest of the value is dropped as it arrives, so their length
//! does not count. A chunk is processed before the call returns, so
//! nothing else accumulates. The output for any chunking equals the
//! output of the buffered functions on the whole body.
//!
//! Should a bound be reached with bytes still undecided (the engine's
//! backstop, or too many SSE events held), the report says
//! [`overflowed`](PiiReport::overflowed): the undecided bytes are never
//! written, the scrubber writes nothing more, and the caller ends the
//! response.

use std::sync::Arc;

use super::core::Core;
use super::json::JsonStream;
use super::report::PiiReport;
use super::scanner::Scanner;
use super::sse::{SseError, SseLimits, SseStream};

/// How a body is parsed before scanning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentMode {
    /// Any text: every byte is scanned.
    Text,
    /// JSON or NDJSON: only string values are scanned.
    Json,
    /// Server-sent events: JSON `data:` payloads scanned as JSON, and
    /// OpenAI-style `choices[].delta.content` fragments scanned as one
    /// text across events.
    Sse,
}

impl ContentMode {
    /// Picks the mode for a `content-type` header value: JSON types
    /// (`application/json`, `*+json`, NDJSON) → JSON, `text/event-stream`
    /// → SSE, anything else → text.
    pub fn from_content_type(content_type: &str) -> Self {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime == "text/event-stream" {
            ContentMode::Sse
        } else if mime == "application/json"
            || mime.ends_with("+json")
            || mime == "application/x-ndjson"
            || mime == "application/ndjson"
            || mime == "application/jsonl"
        {
            ContentMode::Json
        } else {
            ContentMode::Text
        }
    }
}

/// Text-mode streaming over one [`Core`].
#[derive(Debug, Clone)]
pub(crate) struct TextStream {
    core: Core,
    /// Absolute position up to which output was written.
    written: u64,
}

impl TextStream {
    pub(crate) fn new(escapes: bool) -> Self {
        Self {
            core: Core::new(escapes),
            written: 0,
        }
    }

    pub(crate) fn push(&mut self, sc: &Scanner, chunk: &[u8], out: &mut Vec<u8>) {
        self.core.text.extend_from_slice(chunk);
        self.drain(sc, false, out);
    }

    pub(crate) fn finish(&mut self, sc: &Scanner, out: &mut Vec<u8>) {
        self.drain(sc, true, out);
    }

    pub(crate) fn report(&self) -> PiiReport {
        self.core.report
    }

    fn drain(&mut self, sc: &Scanner, eof: bool, out: &mut Vec<u8>) {
        let core = &mut self.core;
        core.run(sc, eof);
        let base = core.base;
        let slice = |a: u64, b: u64| {
            core.text
                .get((a - base) as usize..(b - base) as usize)
                .unwrap_or(&[])
        };
        for e in &core.edits {
            out.extend_from_slice(slice(self.written, e.start));
            out.extend_from_slice(core.repl.get(e.repl.clone()).unwrap_or(&[]));
            self.written = e.end;
        }
        if core.commit > self.written {
            out.extend_from_slice(slice(self.written, core.commit));
            self.written = core.commit;
        }
        core.clear_edits();
        let upto = self.written;
        core.compact(upto);
    }
}

enum Inner {
    Text(TextStream),
    Json(JsonStream),
    Sse(SseStream),
}

/// A streaming scrubber for one response body.
///
/// Feed chunks with [`push`](Self::push) as they arrive and call
/// [`finish`](Self::finish) at the end of the body; each call appends the
/// output that is final to `out` (it never clears `out`).
pub struct StreamScrubber {
    scanner: Arc<Scanner>,
    inner: Inner,
}

impl std::fmt::Debug for StreamScrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamScrubber").finish_non_exhaustive()
    }
}

impl StreamScrubber {
    /// A scrubber for one body in `mode`.
    pub fn new(scanner: Arc<Scanner>, mode: ContentMode) -> Self {
        let inner = match mode {
            ContentMode::Text => Inner::Text(TextStream::new(true)),
            ContentMode::Json => Inner::Json(JsonStream::new()),
            ContentMode::Sse => Inner::Sse(SseStream::new(SseLimits::default())),
        };
        Self { scanner, inner }
    }

    /// An SSE scrubber with other bounds than [`SseLimits::default`].
    pub fn sse_with_limits(scanner: Arc<Scanner>, limits: SseLimits) -> Self {
        Self {
            scanner,
            inner: Inner::Sse(SseStream::new(limits)),
        }
    }

    /// Set once an SSE stream cannot be scrubbed safely: the scrubber
    /// then writes nothing more and the caller must end the stream with
    /// an error event. Check it after each push, like
    /// [`PiiReport::blocked`]. Always `None` in other modes.
    pub fn error(&self) -> Option<SseError> {
        match &self.inner {
            Inner::Sse(s) => s.error(),
            _ => None,
        }
    }

    /// Scrubs the next chunk; appends final output to `out` (nothing
    /// once the stream [overflowed](PiiReport::overflowed)).
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.report().overflowed() {
            return;
        }
        let sc = &*self.scanner;
        match &mut self.inner {
            Inner::Text(s) => s.push(sc, chunk, out),
            Inner::Json(s) => s.push(sc, chunk, out),
            Inner::Sse(s) => s.push(sc, chunk, out),
        }
    }

    /// Ends the body; appends the remaining output to `out` (nothing
    /// once the stream [overflowed](PiiReport::overflowed)).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.report().overflowed() {
            return;
        }
        let sc = &*self.scanner;
        match &mut self.inner {
            Inner::Text(s) => s.finish(sc, out),
            Inner::Json(s) => s.finish(sc, out),
            Inner::Sse(s) => s.finish(sc, out),
        }
    }

    /// What was replaced so far. Check [`PiiReport::blocked`] and
    /// [`PiiReport::overflowed`] after each push: once either is set, the
    /// caller should end the response.
    pub fn report(&self) -> PiiReport {
        match &self.inner {
            Inner::Text(s) => s.report(),
            Inner::Json(s) => s.report(),
            Inner::Sse(s) => s.report(),
        }
    }
}
