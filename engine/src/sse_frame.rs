//! Event-stream framing (WHATWG "server-sent events"), shared by the PII
//! tracker and the MCP list filter so both cut a stream the same way a
//! browser or SDK does.
//!
//! Lines end at CRLF, LF or CR, mixed freely; an event ends at a blank
//! line; a byte-order mark at the very start of the stream is ignored.
//! Fields are `name: value` (one leading space of the value dropped),
//! `name` alone (empty value) or a comment (`:` first). Several `data`
//! lines join with `\n`. Events keep their raw bytes, so a consumer that
//! rewrites nothing writes exactly what it read. Hand-written: SSE client
//! crates parse whole streams for an application, while the filter frames
//! bytes as they pass, chunk by chunk, and must keep each event's raw bytes.

use std::borrow::Cow;

/// The UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// An event larger than the framer's bound: the stream must be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event is larger than {0} bytes")]
pub(crate) struct TooLarge(pub usize);

/// One event, raw, with the blank line that ended it.
#[derive(Debug)]
pub(crate) struct Event {
    pub raw: Vec<u8>,
    /// First event of the stream: a leading BOM is not part of a field.
    pub first: bool,
}

/// Cuts a byte stream, pushed in arbitrary pieces, into events.
#[derive(Debug, Clone)]
pub(crate) struct Framer {
    buf: Vec<u8>,
    /// Start of the pending event in `buf`.
    start: usize,
    /// `buf[..scanned]` was searched for line ends.
    scanned: usize,
    /// Start of the current line.
    line: usize,
    first: bool,
    max_event: usize,
}

impl Framer {
    pub(crate) fn new(max_event: usize) -> Self {
        Self {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            line: 0,
            first: true,
            max_event,
        }
    }

    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.scanned = 0;
            self.line = 0;
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete event, or `None` until more bytes come. An event
    /// (complete or not) over the bound is an error whatever the chunking.
    pub(crate) fn next_event(&mut self) -> Result<Option<Event>, TooLarge> {
        if self.first && self.start == 0 && self.line == 0 {
            let head = self.buf.get(..BOM.len().min(self.buf.len())).unwrap_or(&[]);
            if head.len() < BOM.len() && BOM.starts_with(head) && !head.is_empty() {
                return Ok(None);
            }
            if head == BOM {
                self.line = BOM.len();
                self.scanned = self.scanned.max(BOM.len());
            }
        }
        loop {
            let rest = self.buf.get(self.scanned..).unwrap_or(&[]);
            let Some(k) = memchr::memchr2(b'\n', b'\r', rest) else {
                self.scanned = self.buf.len();
                break;
            };
            let i = self.scanned + k;
            let len = match (self.buf.get(i), self.buf.get(i + 1)) {
                (Some(b'\r'), None) => {
                    // CR or CRLF: wait for the next byte.
                    self.scanned = i;
                    break;
                }
                (Some(b'\r'), Some(b'\n')) => 2,
                _ => 1,
            };
            let blank = i == self.line;
            self.scanned = i + len;
            self.line = self.scanned;
            if blank {
                let end = self.scanned;
                let raw = if self.start == 0 && end == self.buf.len() {
                    // The usual chunk is one whole event: it moves.
                    self.scanned = 0;
                    self.line = 0;
                    std::mem::take(&mut self.buf)
                } else {
                    let raw = self.buf.get(self.start..end).unwrap_or(&[]).to_vec();
                    self.start = end;
                    raw
                };
                if raw.len() > self.max_event {
                    return Err(TooLarge(self.max_event));
                }
                let first = std::mem::replace(&mut self.first, false);
                return Ok(Some(Event { raw, first }));
            }
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.line -= self.start;
            self.start = 0;
        }
        if self.buf.len() > self.max_event {
            return Err(TooLarge(self.max_event));
        }
        Ok(None)
    }

    /// What is left at the end of the stream: an event without its blank
    /// line, processed like the others.
    pub(crate) fn finish(&mut self) -> Option<Event> {
        let raw = self.buf.get(self.start..).unwrap_or(&[]).to_vec();
        self.buf.clear();
        self.start = 0;
        self.scanned = 0;
        self.line = 0;
        if raw.is_empty() {
            return None;
        }
        let first = std::mem::replace(&mut self.first, false);
        Some(Event { raw, first })
    }
}

/// The fields of one event that consumers read.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    /// The `data` lines joined with `\n`; `None` when there is none.
    pub data: Option<Cow<'a, [u8]>>,
    /// For each `data` line: where its value starts in `data` and in the
    /// raw event.
    pub segments: Vec<(usize, usize)>,
    /// How many lines are not `data` (comments, `event`, `id`, ...).
    pub other_lines: usize,
    /// Each `data` line in the raw event: start, end of its text, end
    /// after its line end.
    pub data_lines: Vec<(usize, usize, usize)>,
}

impl Fields<'_> {
    /// Where `data[at..at + len]` is in the raw event, when it lies within
    /// one `data` line.
    pub(crate) fn raw_range(&self, at: usize, len: usize) -> Option<std::ops::Range<usize>> {
        let i = self.segments.partition_point(|&(p, _)| p <= at);
        let &(p, r) = self.segments.get(i.checked_sub(1)?)?;
        if let Some(&(next, _)) = self.segments.get(i) {
            // The `\n` joining two lines belongs to neither.
            if at + len >= next {
                return None;
            }
        }
        let start = r + (at - p);
        Some(start..start + len)
    }
}

/// Splits `raw` into lines (without their ends), with each line's offset
/// and the length of its line end.
fn lines(raw: &[u8]) -> impl Iterator<Item = (usize, &[u8], usize)> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let rest = raw.get(pos..)?;
        if rest.is_empty() {
            return None;
        }
        let at = pos;
        let (line, len) = match memchr::memchr2(b'\n', b'\r', rest) {
            Some(k) => {
                let crlf = rest.get(k) == Some(&b'\r') && rest.get(k + 1) == Some(&b'\n');
                (rest.get(..k).unwrap_or(&[]), k + if crlf { 2 } else { 1 })
            }
            None => (rest, rest.len()),
        };
        pos += len;
        Some((at, line, len - line.len()))
    })
}

/// Reads the fields of an event.
pub(crate) fn fields(event: &Event) -> Fields<'_> {
    let raw = event.raw.as_slice();
    let mut f = Fields {
        data: None,
        segments: Vec::new(),
        other_lines: 0,
        data_lines: Vec::new(),
    };
    for (mut at, mut line, ending) in lines(raw) {
        if event.first && at == 0 {
            if let Some(l) = line.strip_prefix(BOM) {
                line = l;
                at = BOM.len();
            }
        }
        if line.is_empty() {
            continue;
        }
        let (name, value, value_at) = match memchr::memchr(b':', line) {
            Some(c) => {
                let v = line.get(c + 1..).unwrap_or(&[]);
                match v.strip_prefix(b" ") {
                    Some(v) => (line.get(..c).unwrap_or(&[]), v, at + c + 2),
                    None => (line.get(..c).unwrap_or(&[]), v, at + c + 1),
                }
            }
            None => (line, &[][..], at + line.len()),
        };
        if name != b"data" {
            f.other_lines += 1;
            continue;
        }
        let end = at + line.len();
        f.data_lines.push((at, end, end + ending));
        match &mut f.data {
            None => {
                f.segments.push((0, value_at));
                f.data = Some(Cow::Borrowed(value));
            }
            Some(data) => {
                let d = data.to_mut();
                d.push(b'\n');
                f.segments.push((d.len(), value_at));
                d.extend_from_slice(value);
            }
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(input: &[u8], size: usize) -> Vec<Vec<u8>> {
        let mut fr = Framer::new(1 << 20);
        let mut out = Vec::new();
        for c in input.chunks(size) {
            fr.push(c);
            while let Some(e) = fr.next_event().unwrap() {
                out.push(e.raw);
            }
        }
        out.extend(fr.finish().map(|e| e.raw));
        out
    }

    #[test]
    fn every_line_ending_and_chunking_cuts_the_same_events() {
        let input =
            b"\xEF\xBB\xBFdata: a\r\n\r\ndata:b\r\rdata: c\n\ndata: d\r\n\n: x\rdata\n\rtail";
        let want: Vec<&[u8]> = vec![
            b"\xEF\xBB\xBFdata: a\r\n\r\n",
            b"data:b\r\r",
            b"data: c\n\n",
            b"data: d\r\n\n",
            b": x\rdata\n\r",
            b"tail",
        ];
        for size in 1..input.len() {
            assert_eq!(cut(input, size), want, "chunks of {size}");
        }
    }

    #[test]
    fn fields_join_data_lines_and_map_back_to_raw() {
        let raw = b"\xEF\xBB\xBFid: 1\rdata:{\"a\":\r\nevent: x\ndata:  \"v\"}\ndata\n\n".to_vec();
        let e = Event { raw, first: true };
        let f = fields(&e);
        assert_eq!(f.data.as_deref(), Some(&b"{\"a\":\n \"v\"}\n"[..]));
        assert_eq!(f.other_lines, 2);
        let r = f.raw_range(7, 3).unwrap();
        assert_eq!(&e.raw[r], b"\"v\"");
        assert!(f.raw_range(4, 3).is_none(), "spans the joining newline");
    }

    #[test]
    fn oversize_events_fail_whatever_the_chunking() {
        let input = b"data: 0123456789\n\ndata: 01234567890123456789\n\n";
        for size in 1..input.len() {
            let mut fr = Framer::new(20);
            let mut got = Ok(());
            let mut n = 0;
            for c in input.chunks(size) {
                fr.push(c);
                loop {
                    match fr.next_event() {
                        Ok(Some(_)) => n += 1,
                        Ok(None) => break,
                        Err(e) => {
                            got = Err(e);
                            break;
                        }
                    }
                }
                if got.is_err() {
                    break;
                }
            }
            assert_eq!((n, got), (1, Err(TooLarge(20))), "chunks of {size}");
        }
    }
}
