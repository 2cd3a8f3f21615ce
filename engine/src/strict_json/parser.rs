//! The single-pass recursive-descent reader behind [`super::parse`].
//!
//! Recursion is bounded by [`Options::max_depth`], so the stack use is
//! bounded whatever the input.

use std::collections::BTreeSet;
use std::str::FromStr;

use serde_json::{Map, Number, Value};

use super::keys::fold_key;
use super::{ErrorKind, FloatTexts, Options, StrictJsonError};

type Result<T> = std::result::Result<T, StrictJsonError>;

pub(super) fn parse(
    bytes: &[u8],
    options: Options,
    floats: Option<&mut FloatTexts>,
) -> Result<Value> {
    check_encoding(bytes)?;
    let mut p = Parser {
        text: bytes,
        pos: 0,
        options,
        floats,
    };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != bytes.len() {
        return Err(p.error(ErrorKind::TrailingData));
    }
    Ok(value)
}

/// The double a number was read as, when it was not read as an integer.
fn float_of(number: &Number) -> Option<f64> {
    if number.is_f64() {
        number.as_f64()
    } else {
        None
    }
}

fn err(kind: ErrorKind, offset: usize) -> StrictJsonError {
    StrictJsonError { kind, offset }
}

/// BOMs, UTF-16/32 text and invalid UTF-8, before any parsing.
fn check_encoding(bytes: &[u8]) -> Result<()> {
    const BOMS: [&[u8]; 5] = [
        b"\xEF\xBB\xBF",
        b"\x00\x00\xFE\xFF",
        b"\xFF\xFE\x00\x00",
        b"\xFE\xFF",
        b"\xFF\xFE",
    ];
    if BOMS.iter().any(|bom| bytes.starts_with(bom)) {
        return Err(err(ErrorKind::Bom, 0));
    }
    // RFC 4627 section 3: UTF-16 and UTF-32 JSON has a NUL in its first
    // four bytes; UTF-8 JSON never does.
    if let Some(at) = bytes.iter().take(4).position(|&b| b == 0) {
        return Err(err(ErrorKind::NotUtf8, at));
    }
    if let Err(e) = std::str::from_utf8(bytes) {
        let at = e.valid_up_to();
        // A surrogate encoded as UTF-8 (CESU-8 / WTF-8) is ED A0..BF xx.
        let kind = match bytes.get(at..at.saturating_add(2)) {
            Some([0xED, 0xA0..=0xBF]) => ErrorKind::LoneSurrogate,
            _ => ErrorKind::NotUtf8,
        };
        return Err(err(kind, at));
    }
    Ok(())
}

struct Parser<'a, 'f> {
    text: &'a [u8],
    pos: usize,
    options: Options,
    /// Where the text of every number read as a double is kept, when asked.
    floats: Option<&'f mut FloatTexts>,
}

impl Parser<'_, '_> {
    fn error(&self, kind: ErrorKind) -> StrictJsonError {
        err(kind, self.pos)
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(ErrorKind::NotJson))
        }
    }

    /// One value; `depth` is the nesting of the container holding it.
    fn value(&mut self, depth: usize) -> Result<Value> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal(b"true", Value::Bool(true)),
            Some(b'f') => self.literal(b"false", Value::Bool(false)),
            Some(b'n') => self.literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'N' | b'I') => Err(self.error(ErrorKind::NonFiniteNumber)),
            _ => Err(self.error(ErrorKind::NotJson)),
        }
    }

    fn literal(&mut self, word: &[u8], value: Value) -> Result<Value> {
        let end = self.pos + word.len();
        if self.text.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(value)
        } else {
            Err(self.error(ErrorKind::NotJson))
        }
    }

    fn enter(&self, depth: usize) -> Result<()> {
        if depth > self.options.max_depth {
            Err(self.error(ErrorKind::TooDeep))
        } else {
            Ok(())
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value> {
        self.enter(depth)?;
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error(ErrorKind::NotJson)),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value> {
        self.enter(depth)?;
        self.pos += 1;
        let mut map = Map::new();
        let mut folded = BTreeSet::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(map));
        }
        loop {
            self.skip_ws();
            let key_at = self.pos;
            if self.peek() != Some(b'"') {
                return Err(self.error(ErrorKind::NotJson));
            }
            let key = self.string()?;
            if key.contains('\0') {
                return Err(err(ErrorKind::NulInKey, key_at));
            }
            // With folding, an exact duplicate is also a folded one: one
            // set lookup per key, the map only on a collision.
            let clash = if self.options.fold_case {
                !folded.insert(fold_key(&key))
            } else {
                map.contains_key(&key)
            };
            if clash {
                let kind = if map.contains_key(&key) {
                    ErrorKind::DuplicateKey
                } else {
                    ErrorKind::CaseCollidingKey
                };
                return Err(err(kind, key_at));
            }
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let value = self.value(depth)?;
            map.insert(key, value);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Value::Object(map));
                }
                _ => return Err(self.error(ErrorKind::NotJson)),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// RFC 8259 number grammar here; the conversion is `serde_json`'s own,
    /// so both read the same number.
    fn number(&mut self) -> Result<Value> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
            if matches!(self.peek(), Some(b'N' | b'I')) {
                return Err(self.error(ErrorKind::NonFiniteNumber));
            }
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error(ErrorKind::NotJson)),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error(ErrorKind::NotJson));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error(ErrorKind::NotJson));
            }
        }
        let text = self
            .text
            .get(start..self.pos)
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or(err(ErrorKind::NotJson, start))?;
        let number = Number::from_str(text).map_err(|_| err(ErrorKind::BadNumber, start))?;
        if let Some(floats) = self.floats.as_deref_mut() {
            if let Some(double) = float_of(&number) {
                floats.record(double, text);
            }
        }
        Ok(Value::Number(number))
    }

    /// A string at `"`, unescaped. The input is known to be UTF-8 and every
    /// cut is at an ASCII byte, so the slices stay UTF-8.
    fn string(&mut self) -> Result<String> {
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error(ErrorKind::NotJson)),
                Some(b'"') => {
                    self.push_run(&mut out, run)?;
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.push_run(&mut out, run)?;
                    self.pos += 1;
                    self.escape(&mut out)?;
                    run = self.pos;
                }
                Some(0..=0x1F) => return Err(self.error(ErrorKind::NotJson)),
                Some(_) => self.pos += 1,
            }
        }
    }

    fn push_run(&self, out: &mut String, from: usize) -> Result<()> {
        let run = self
            .text
            .get(from..self.pos)
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or(err(ErrorKind::NotUtf8, from))?;
        out.push_str(run);
        Ok(())
    }

    /// One escape, just after its `\`.
    fn escape(&mut self, out: &mut String) -> Result<()> {
        let at = self.pos;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let unit = self.hex4()?;
                let c = match unit {
                    0xD800..=0xDBFF => {
                        if self.text.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(err(ErrorKind::LoneSurrogate, at));
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(err(ErrorKind::LoneSurrogate, at));
                        }
                        let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                        char::from_u32(code).ok_or(err(ErrorKind::LoneSurrogate, at))?
                    }
                    0xDC00..=0xDFFF => return Err(err(ErrorKind::LoneSurrogate, at)),
                    _ => char::from_u32(unit).ok_or(err(ErrorKind::NotJson, at))?,
                };
                out.push(c);
                return Ok(());
            }
            _ => return Err(self.error(ErrorKind::NotJson)),
        };
        self.pos += 1;
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or(self.error(ErrorKind::NotJson))?;
        let mut unit = 0;
        for &d in digits {
            let v = char::from(d)
                .to_digit(16)
                .ok_or(self.error(ErrorKind::NotJson))?;
            unit = unit * 16 + v;
        }
        self.pos += 4;
        Ok(unit)
    }
}
