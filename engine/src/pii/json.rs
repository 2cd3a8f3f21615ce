//! JSON-aware scrubbing (also NDJSON: one value per line works as is).
//!
//! A small streaming lexer follows strings, containers and keys. Only
//! string *values* are scanned; each one is decoded (`\u0040` is `@`,
//! `\/`, `\n`, surrogate pairs) and scanned as its own text, and each
//! value found is replaced in the raw bytes by ASCII that needs no
//! escaping, so the document stays valid. Nothing is re-serialised: key
//! order, whitespace, escapes outside values found, and every other byte
//! come out exactly as they went in.
//!
//! Keys are never changed (renaming a key breaks the schema), but a key
//! containing `secret` makes the value after it a context for AWS secret
//! keys, and a key naming an SSN (`ssn`, `social_security_number`, …, see
//! `label`) makes a bare 9-digit value one. Numbers, `true`/`false`/`null`
//! are never changed, with one exception: an issuable 9-digit integer
//! right after an SSN key becomes the string `"[SSN]"` (the type changes,
//! the document stays valid, the SSN does not leak). A card number sent
//! as a JSON number is documented as not covered. Invalid JSON never
//! panics: bytes outside strings are copied, strings are decoded leniently.

use memchr::memchr2;

use super::action::render;
use super::config::{Action, PiiType};
use super::core::Core;
use super::detectors::ssn;
use super::label;
use super::raw_map::RawMap;
use super::report::PiiReport;
use super::scanner::Scanner;

/// Deepest nesting tracked; deeper containers count as arrays.
const MAX_DEPTH: usize = 512;
/// Key bytes kept to recognise an SSN key. The buffer drops its older
/// half when full (so a huge key costs constant time per byte) and so
/// always holds the key's last 32 bytes or more: longer than any label,
/// so a cut word can never complete one.
const KEY_TAIL: usize = 64;

/// The key word that makes the next value a context for AWS secret keys.
const SECRET: &[u8] = b"secret";

/// Bytes before the next `"` or `\\`. Keys and values are mostly short:
/// a plain loop over the first bytes beats setting up a vector search
/// (which cost a tenth of the time on a typical JSON answer); longer
/// runs go on with `memchr2`.
#[inline]
fn plain_run(rest: &[u8]) -> usize {
    const SHORT: usize = 16;
    if let Some(i) = rest
        .iter()
        .take(SHORT)
        .position(|&b| b == b'"' || b == b'\\')
    {
        return i;
    }
    match rest.get(SHORT..) {
        Some(tail) => SHORT + memchr2(b'"', b'\\', tail).unwrap_or(tail.len()),
        None => rest.len(),
    }
}

/// One byte of a key against `secret`, case-insensitively: how much of
/// the word the key now ends with. A counter rather than a window of the
/// last six bytes, which cost a shift and a wide compare per key byte
/// (a third of the time scrubbing a typical JSON answer). `secret` has
/// no proper prefix that is also its suffix, so a mismatch restarts at 1
/// when the byte is `s`, else at 0.
#[inline]
fn secret_step(matched: u8, b: u8) -> u8 {
    let b = b.to_ascii_lowercase();
    match SECRET.get(usize::from(matched)) {
        Some(&want) if want == b => matched + 1,
        // Already matched in full: stays set through `key_secret`.
        _ if b == b's' => 1,
        _ => 0,
    }
}

/// A JSON number being read after an SSN key: raw start, digits seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Num {
    start: u64,
    len: u8,
    digits: [u8; 9],
}

/// What recognising SSN keys needs (boxed: it is rarely used and would
/// double the size of the stream).
#[derive(Debug, Clone)]
struct SsnKey {
    /// Last (unescaped) bytes of the current key, `len` of them.
    last: [u8; KEY_TAIL],
    len: usize,
    /// A number after an SSN key, held back until it ends.
    num: Option<Num>,
    /// Answers for keys seen before in this document.
    known: KnownKeys,
}

/// Slots in [`KnownKeys`].
const KNOWN_KEYS: usize = 16;

/// Whether recent keys named an SSN, by key bytes: the keys of an array
/// of objects repeat, and splitting each into words again was a tenth of
/// the time scrubbing a typical JSON answer. Direct-mapped by a hash of
/// the key, and an entry answers only when its stored bytes are equal,
/// so a collision costs a recomputation, never a wrong answer.
#[derive(Debug, Clone)]
struct KnownKeys {
    keys: [[u8; KEY_TAIL]; KNOWN_KEYS],
    /// Length of each stored key; `usize::MAX` marks an empty slot.
    lens: [usize; KNOWN_KEYS],
    answers: [bool; KNOWN_KEYS],
}

impl KnownKeys {
    fn new() -> Self {
        Self {
            keys: [[0; KEY_TAIL]; KNOWN_KEYS],
            lens: [usize::MAX; KNOWN_KEYS],
            answers: [false; KNOWN_KEYS],
        }
    }

    /// Does `key` (at most `KEY_TAIL` bytes) name an SSN?
    fn ssn_key(&mut self, key: &[u8]) -> bool {
        let hash = key.iter().fold(0x811c_9dc5_u32, |h, &b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        let slot = hash as usize % KNOWN_KEYS;
        let (Some(stored), Some(len), Some(answer)) = (
            self.keys.get_mut(slot),
            self.lens.get_mut(slot),
            self.answers.get_mut(slot),
        ) else {
            return label::ssn_key(key);
        };
        if *len == key.len() && stored.get(..key.len()) == Some(key) {
            return *answer;
        }
        let fresh = label::ssn_key(key);
        if let Some(dst) = stored.get_mut(..key.len()) {
            dst.copy_from_slice(key);
            *len = key.len();
            *answer = fresh;
        }
        fresh
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    Backslash { start: u64 },
    Unicode { start: u64, n: u8, val: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Out,
    Key(Esc),
    Value(Esc),
}

/// Streaming JSON scrubber.
#[derive(Debug, Clone)]
pub(crate) struct JsonStream {
    core: Core,
    /// Raw bytes kept for output, starting at absolute `raw_start`.
    raw: Vec<u8>,
    raw_start: u64,
    /// Output was written up to this absolute raw position.
    written: u64,
    /// Absolute position of the next byte to lex.
    pos: u64,
    state: State,
    stack: Vec<u8>,
    overflow: usize,
    expect_key: bool,
    /// Raw start of each decoded byte of the current value (aligned with
    /// `core.text`).
    map: RawMap,
    /// Raw position after the last decoded unit of the current value.
    raw_after: u64,
    /// A high surrogate waiting for its low half: (code unit, raw start).
    high: Option<(u32, u64)>,
    /// How much of `secret` the key's last bytes spell (0..=6).
    secret_match: u8,
    key_secret: bool,
    secret_next: bool,
    ssn: Box<SsnKey>,
    /// The last key named an SSN; cleared by `,`, `{`, `[` and the value.
    label_next: bool,
}

impl JsonStream {
    pub(crate) fn new() -> Self {
        Self {
            core: Core::new(false),
            raw: Vec::new(),
            raw_start: 0,
            written: 0,
            pos: 0,
            state: State::Out,
            stack: Vec::new(),
            overflow: 0,
            expect_key: false,
            map: RawMap::default(),
            raw_after: 0,
            high: None,
            secret_match: 0,
            key_secret: false,
            secret_next: false,
            ssn: Box::new(SsnKey {
                last: [0; KEY_TAIL],
                len: 0,
                num: None,
                known: KnownKeys::new(),
            }),
            label_next: false,
        }
    }

    pub(crate) fn report(&self) -> PiiReport {
        self.core.report
    }

    pub(crate) fn push(&mut self, sc: &Scanner, chunk: &[u8], out: &mut Vec<u8>) {
        self.raw.extend_from_slice(chunk);
        let mut i = 0;
        while let Some(&b) = chunk.get(i) {
            if let State::Value(Esc::None) = self.state {
                // Fast path: a run of plain string bytes.
                let rest = chunk.get(i..).unwrap_or(&[]);
                let n = plain_run(rest);
                if n > 0 {
                    self.flush_high();
                    let run = rest.get(..n).unwrap_or(&[]);
                    self.map.push_plain(self.core.end(), self.pos, n as u64);
                    self.core.text.extend_from_slice(run);
                    self.pos += n as u64;
                    self.raw_after = self.pos;
                    i += n;
                    continue;
                }
            }
            if let State::Key(Esc::None) = self.state {
                // Fast path: a run of plain key bytes only feeds the
                // `secret` tail.
                let rest = chunk.get(i..).unwrap_or(&[]);
                let n = plain_run(rest);
                if n > 0 {
                    for &c in rest.get(..n).unwrap_or(&[]) {
                        self.key_byte(c);
                    }
                    self.pos += n as u64;
                    i += n;
                    continue;
                }
            }
            self.byte(sc, b, out);
            self.pos += 1;
            i += 1;
        }
        if let State::Value(_) = self.state {
            self.flush_value(sc, false, out);
        } else {
            let to = self.ssn.num.map_or(self.pos, |n| n.start);
            self.write_to(to, out);
        }
        let drop = ((self.written - self.raw_start) as usize).min(self.raw.len());
        self.raw.drain(..drop);
        self.raw_start += drop as u64;
    }

    pub(crate) fn finish(&mut self, sc: &Scanner, out: &mut Vec<u8>) {
        self.end_number(sc, false, out);
        if let State::Value(_) = self.state {
            self.end_value(sc, out);
            self.state = State::Out;
        }
        let to = self.pos;
        self.write_to(to, out);
        self.raw_start += self.raw.len() as u64;
        self.raw.clear();
    }

    /// Writes raw bytes up to absolute `to`.
    fn write_to(&mut self, to: u64, out: &mut Vec<u8>) {
        if to <= self.written {
            return;
        }
        let a = (self.written.saturating_sub(self.raw_start) as usize).min(self.raw.len());
        let b = (to.saturating_sub(self.raw_start) as usize).min(self.raw.len());
        out.extend_from_slice(self.raw.get(a..b).unwrap_or(&[]));
        self.written = to;
    }

    fn byte(&mut self, sc: &Scanner, b: u8, out: &mut Vec<u8>) {
        let pos = self.pos;
        match self.state {
            State::Out => {
                if let Some(n) = self.ssn.num.as_mut() {
                    if b.is_ascii_digit() {
                        match n.digits.get_mut(usize::from(n.len)) {
                            Some(d) => {
                                *d = b;
                                n.len += 1;
                            }
                            // Ten digits or more: not an SSN, stop
                            // holding it back.
                            None => self.ssn.num = None,
                        }
                        return;
                    }
                    // A fraction or an exponent makes it another number.
                    let more = matches!(b, b'.' | b'e' | b'E');
                    self.end_number(sc, more, out);
                } else if self.label_next && b.is_ascii_digit() {
                    self.label_next = false;
                    self.ssn.num = Some(Num {
                        start: pos,
                        len: 1,
                        digits: [b, 0, 0, 0, 0, 0, 0, 0, 0],
                    });
                    return;
                } else if self.label_next
                    && !matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b':' | b'"')
                {
                    // `-123456789`, `true`, `[`: not a bare SSN value.
                    self.label_next = false;
                }
                self.structural(b)
            }
            State::Key(esc) => {
                self.state = match (esc, b) {
                    (Esc::None, b'"') => {
                        self.secret_next = self.key_secret;
                        let k = &mut *self.ssn;
                        let key = k.last.get(..k.len).unwrap_or(&[]);
                        self.label_next = k.known.ssn_key(key);
                        State::Out
                    }
                    (Esc::None, b'\\') => State::Key(Esc::Backslash { start: pos }),
                    (Esc::None, _) => {
                        self.key_byte(b);
                        State::Key(Esc::None)
                    }
                    (Esc::Backslash { start }, b'u') => State::Key(Esc::Unicode {
                        start,
                        n: 0,
                        val: 0,
                    }),
                    (Esc::Unicode { start, n, val }, _) if n < 3 && b.is_ascii_hexdigit() => {
                        State::Key(Esc::Unicode {
                            start,
                            n: n + 1,
                            val: val * 16 + (b as char).to_digit(16).unwrap_or(0),
                        })
                    }
                    (Esc::Unicode { val, .. }, _) if b.is_ascii_hexdigit() => {
                        // `"\u0073sn"` is the key `ssn`.
                        let u = val * 16 + (b as char).to_digit(16).unwrap_or(0);
                        if let Ok(c) = u8::try_from(u) {
                            if c.is_ascii() {
                                self.key_byte(c);
                            }
                        }
                        State::Key(Esc::None)
                    }
                    _ => State::Key(Esc::None),
                };
            }
            State::Value(esc) => match (esc, b) {
                (Esc::None, b'"') => {
                    self.end_value(sc, out);
                    self.state = State::Out;
                }
                (Esc::None, b'\\') => self.state = State::Value(Esc::Backslash { start: pos }),
                (Esc::None, _) => {
                    self.flush_high();
                    self.unit(pos, pos + 1, &[b]);
                }
                (Esc::Backslash { start }, b'u') => {
                    self.state = State::Value(Esc::Unicode {
                        start,
                        n: 0,
                        val: 0,
                    });
                }
                (Esc::Backslash { start }, _) => {
                    let d = match b {
                        b'n' => b'\n',
                        b't' => b'\t',
                        b'r' => b'\r',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        other => other,
                    };
                    self.flush_high();
                    self.unit(start, pos + 1, &[d]);
                    self.state = State::Value(Esc::None);
                }
                (Esc::Unicode { start, n, val }, _) => {
                    match (b as char).to_digit(16) {
                        Some(d) if n < 3 => {
                            self.state = State::Value(Esc::Unicode {
                                start,
                                n: n + 1,
                                val: val * 16 + d,
                            });
                        }
                        Some(d) => {
                            self.code_unit(start, pos + 1, val * 16 + d);
                            self.state = State::Value(Esc::None);
                        }
                        None => {
                            // Broken escape: decode as U+FFFD, then lex the
                            // byte again as ordinary string content.
                            self.flush_high();
                            self.unit_char(start, pos, '\u{fffd}');
                            self.state = State::Value(Esc::None);
                            self.byte(sc, b, out);
                        }
                    }
                }
            },
        }
    }

    /// One plain byte of a key: keys containing `secret` (any case) make
    /// the next value a context for AWS secret keys.
    #[inline]
    fn key_byte(&mut self, b: u8) {
        let k = &mut *self.ssn;
        if k.len >= KEY_TAIL {
            k.last.copy_within(KEY_TAIL / 2.., 0);
            k.len = KEY_TAIL / 2;
        }
        if let Some(slot) = k.last.get_mut(k.len) {
            *slot = b;
            k.len += 1;
        }
        self.secret_match = secret_step(self.secret_match, b);
        self.key_secret |= usize::from(self.secret_match) == SECRET.len();
    }

    fn structural(&mut self, b: u8) {
        match b {
            b'{' | b'[' => {
                if self.stack.len() < MAX_DEPTH {
                    self.stack.push(b);
                } else {
                    self.overflow += 1;
                }
                self.expect_key = b == b'{';
                self.secret_next = false;
                self.label_next = false;
            }
            b'}' | b']' => {
                if self.overflow > 0 {
                    self.overflow -= 1;
                } else {
                    self.stack.pop();
                }
                self.expect_key = false;
            }
            b':' => self.expect_key = false,
            b',' => {
                self.expect_key = self.overflow == 0 && self.stack.last() == Some(&b'{');
                self.secret_next = false;
                self.label_next = false;
            }
            b'"' => {
                let key = self.expect_key && self.overflow == 0 && self.stack.last() == Some(&b'{');
                if key {
                    self.secret_match = 0;
                    self.ssn.len = 0;
                    self.key_secret = false;
                    self.label_next = false;
                    self.state = State::Key(Esc::None);
                } else {
                    self.core.reset();
                    self.core.lead_secret = self.secret_next;
                    self.core.lead_label = self.label_next;
                    self.secret_next = false;
                    self.label_next = false;
                    self.map.clear();
                    self.raw_after = self.pos + 1;
                    self.high = None;
                    self.state = State::Value(Esc::None);
                }
            }
            _ => {}
        }
    }

    /// Ends the number held back after an SSN key (at the current
    /// position): an issuable 9-digit integer is written as `"[SSN]"`,
    /// anything else as it was. `more` says a fraction or exponent follows.
    fn end_number(&mut self, sc: &Scanner, more: bool, out: &mut Vec<u8>) {
        let Some(n) = self.ssn.num.take() else {
            return;
        };
        if more || n.len != 9 || !sc.enabled(PiiType::Ssn) || !ssn::issuable(&n.digits) {
            return;
        }
        self.write_to(n.start, out);
        out.push(b'"');
        render(sc, PiiType::Ssn, &n.digits, out);
        out.push(b'"');
        self.written = self.pos;
        self.core
            .report
            .record(PiiType::Ssn, sc.action(PiiType::Ssn) == Action::Block);
    }

    /// Adds decoded bytes produced by the raw unit `start..end`.
    fn unit(&mut self, start: u64, end: u64, bytes: &[u8]) {
        if end == start + 1 && bytes.len() == 1 {
            self.map.push_plain(self.core.end(), start, 1);
        } else {
            self.map
                .push_escape(self.core.end(), start, bytes.len() as u64);
        }
        self.core.text.extend_from_slice(bytes);
        self.raw_after = end;
    }

    fn unit_char(&mut self, start: u64, end: u64, c: char) {
        let mut buf = [0u8; 4];
        let s = c.encode_utf8(&mut buf);
        self.unit(start, end, s.as_bytes());
    }

    /// A decoded `\uXXXX` code unit (raw `start..end`); pairs surrogates.
    fn code_unit(&mut self, start: u64, end: u64, u: u32) {
        match u {
            0xD800..=0xDBFF => {
                self.flush_high();
                self.high = Some((u, start));
            }
            0xDC00..=0xDFFF => match self.high.take() {
                Some((h, hs)) => {
                    let c = 0x10000 + ((h - 0xD800) << 10) + (u - 0xDC00);
                    self.unit_char(hs, end, char::from_u32(c).unwrap_or('\u{fffd}'));
                }
                None => self.unit_char(start, end, '\u{fffd}'),
            },
            _ => {
                self.flush_high();
                self.unit_char(start, end, char::from_u32(u).unwrap_or('\u{fffd}'));
            }
        }
    }

    /// A lone high surrogate (six raw bytes) decodes as U+FFFD.
    fn flush_high(&mut self) {
        if let Some((_, hs)) = self.high.take() {
            self.unit_char(hs, hs + 6, '\u{fffd}');
        }
    }

    fn raw_of(&self, d: u64) -> u64 {
        if d < self.core.end() {
            self.map.raw_of(d).unwrap_or(self.raw_after)
        } else {
            self.raw_after
        }
    }

    fn end_value(&mut self, sc: &Scanner, out: &mut Vec<u8>) {
        if let Esc::Unicode { start, .. } | Esc::Backslash { start } = self.esc() {
            // Unterminated escape at the end: keep it raw, decode as U+FFFD.
            let end = self.pos;
            self.unit_char(start, end, '\u{fffd}');
        }
        self.flush_high();
        self.flush_value(sc, true, out);
        self.core.reset();
        self.map.clear();
    }

    fn esc(&self) -> Esc {
        match self.state {
            State::Value(e) | State::Key(e) => e,
            State::Out => Esc::None,
        }
    }

    /// Runs the engine on the current value and writes what is final.
    fn flush_value(&mut self, sc: &Scanner, eof: bool, out: &mut Vec<u8>) {
        self.core.run(sc, eof);
        let edits = std::mem::take(&mut self.core.edits);
        for e in &edits {
            let rs = self.raw_of(e.start);
            let re = self.raw_of(e.end);
            self.write_to(rs, out);
            out.extend_from_slice(self.core.repl.get(e.repl.clone()).unwrap_or(&[]));
            self.written = self.written.max(re);
        }
        self.core.edits = edits;
        self.core.clear_edits();
        let commit = self.core.commit;
        let to = self.raw_of(commit);
        self.write_to(to, out);
        // The engine keeps look-behind text past `commit`; the map keeps
        // what that text still needs.
        self.core.compact(commit);
        self.map.drop_before(self.core.base);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_run_stops_at_the_first_quote_or_backslash() {
        for len in 0..80 {
            for at in 0..=len {
                for stop in [b'"', b'\\'] {
                    let mut text = vec![b'a'; len];
                    if at < len {
                        text[at] = stop;
                    }
                    assert_eq!(plain_run(&text), at, "len {len} at {at}");
                }
            }
        }
    }

    /// The cache answers as the label check does, over keys that share
    /// slots, in any order and repeated.
    #[test]
    fn known_keys_answer_as_the_label_check() {
        let keys: Vec<Vec<u8>> = (0..200)
            .map(|i| match i % 5 {
                0 => format!("k{i}").into_bytes(),
                1 => format!("employee_ssn{}", "x".repeat(i % 3)).into_bytes(),
                2 => b"ssn".to_vec(),
                3 => format!("national_id{i}").into_bytes(),
                _ => b"socialSecurityNumber".to_vec(),
            })
            .collect();
        let mut known = KnownKeys::new();
        for round in 0..3 {
            for key in keys.iter().skip(round) {
                assert_eq!(known.ssn_key(key), label::ssn_key(key), "{key:?}");
            }
        }
    }

    /// The key matcher against a plain substring search, on keys built to
    /// restart half-way (`sesecret`, `ssecret`), in any case.
    #[test]
    fn secret_matcher_agrees_with_a_substring_search() {
        let keys = [
            "secret",
            "SECRET",
            "mySecretKey",
            "sesecret",
            "ssecret",
            "secsecret",
            "secre",
            "secrex",
            "s",
            "",
            "aws_secret_access_key",
            "SeCrEt",
            "secrsecret",
            "ecret",
            "secretsecret",
            "sssss",
            "xsecr3t",
        ];
        for key in keys {
            let mut matched = 0;
            let mut found = false;
            for &b in key.as_bytes() {
                matched = secret_step(matched, b);
                found |= usize::from(matched) == SECRET.len();
            }
            let want = key.to_ascii_lowercase().contains("secret");
            assert_eq!(found, want, "{key}");
        }
    }
}
