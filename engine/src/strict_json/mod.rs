//! A strict reader for JSON that other parsers could read differently.
//!
//! The filter authorises what it parses, while the upstream (or the IdP,
//! or Envoy) acts on what *it* parses. Wherever parsers disagree an
//! attacker can show one thing to the policy and another to the upstream:
//! duplicate keys (first-wins versus last-wins), keys that differ only in
//! case (case-insensitive struct binding), a UTF-8 BOM or UTF-16 text that
//! one side skips, `NaN`, lone surrogates, trailing data after the value.
//! This reader accepts only one strict RFC 8259 value in UTF-8 and refuses
//! everything a lenient parser might read another way, with a stable
//! reason code per refusal. Everything it accepts, `serde_json` reads to
//! the same [`Value`] (tested), so the rest of the engine works on
//! `serde_json` values.
//!
//! Cost: one UTF-8 check over the input plus one pass building the value;
//! key checks use an ordered set per object, so a body is read in
//! O(n log k) for objects of k members.

mod keys;
mod parser;

use serde_json::{Map, Value};

pub use keys::{fold_key, is_case_variant};

/// How strict one kind of document is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Deepest nesting of arrays and objects accepted (`[[1]]` is 2).
    pub max_depth: usize,
    /// Refuse two keys of one object that are equal under case folding
    /// ([`fold_key`]), e.g. `"name"` next to `"Name"`.
    pub fold_case: bool,
}

impl Options {
    /// Request bodies the policy reads: attacker-controlled and read by
    /// upstreams of any language, so case-colliding keys are refused too.
    pub const REQUEST: Self = Self {
        max_depth: 64,
        fold_case: true,
    };
    /// Upstream answers the filter rewrites (MCP list answers): duplicate
    /// keys are refused, case variants are not (tool schemas may hold
    /// property names that differ only in case).
    pub const RESPONSE: Self = Self {
        max_depth: 128,
        fold_case: false,
    };
    /// JWT headers and payloads: duplicate claims refused, the depth that
    /// `serde_json` allowed before.
    pub const TOKEN: Self = Self {
        max_depth: 128,
        fold_case: false,
    };
}

/// Why a document was refused; [`ErrorKind::code`] names it in replies and
/// logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Starts with a byte order mark (UTF-8, UTF-16 or UTF-32).
    Bom,
    /// Not UTF-8 (invalid bytes, or UTF-16/UTF-32 text without a BOM).
    NotUtf8,
    /// A UTF-16 surrogate without its pair, escaped (`"\ud800"`) or raw.
    LoneSurrogate,
    /// `NaN`, `Infinity` or `-Infinity`.
    NonFiniteNumber,
    /// A number outside the range `serde_json` reads (e.g. `1e400`).
    BadNumber,
    /// Nested deeper than [`Options::max_depth`].
    TooDeep,
    /// Bytes other than whitespace after the value.
    TrailingData,
    /// The same key twice in one object (after unescaping).
    DuplicateKey,
    /// Two keys of one object equal under [`fold_key`].
    CaseCollidingKey,
    /// A key containing U+0000, which C parsers cut short.
    NulInKey,
    /// Anything else that is not RFC 8259 JSON (including empty input,
    /// comments, single quotes, trailing commas, raw control characters).
    NotJson,
}

impl ErrorKind {
    /// Stable snake_case code, used as the decision detail.
    pub fn code(self) -> &'static str {
        match self {
            Self::Bom => "bom",
            Self::NotUtf8 => "not_utf8",
            Self::LoneSurrogate => "lone_surrogate",
            Self::NonFiniteNumber => "non_finite_number",
            Self::BadNumber => "bad_number",
            Self::TooDeep => "too_deep",
            Self::TrailingData => "trailing_data",
            Self::DuplicateKey => "duplicate_key",
            Self::CaseCollidingKey => "case_colliding_key",
            Self::NulInKey => "nul_in_key",
            Self::NotJson => "not_json",
        }
    }
}

/// A refused document: what is wrong and at which byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} at byte {offset}", kind.code())]
pub struct StrictJsonError {
    /// What is wrong.
    pub kind: ErrorKind,
    /// Byte offset in the input where it was found.
    pub offset: usize,
}

impl StrictJsonError {
    /// The stable code of [`Self::kind`].
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

/// Reads `bytes` as exactly one strict JSON value.
pub fn parse(bytes: &[u8], options: Options) -> Result<Value, StrictJsonError> {
    parser::parse(bytes, options, None)
}

/// Reads `bytes` like [`parse`] and also keeps the source text of every
/// number that was read as a double (`1.5`, `1e2`, integers beyond 64
/// bits): a double loses digits (`1000.0000000000000001` reads as
/// `1000.0`), and a policy comparing numbers must compare what was sent.
pub fn parse_keeping_floats(
    bytes: &[u8],
    options: Options,
) -> Result<(Value, FloatTexts), StrictJsonError> {
    let mut floats = FloatTexts::default();
    let value = parser::parse(bytes, options, Some(&mut floats))?;
    Ok((value, floats))
}

/// The source texts of a document's numbers that were read as doubles,
/// by the double's bits. Several texts can round to one double; a reader
/// must then assume any of them was the one it is looking at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloatTexts(std::collections::BTreeMap<u64, Vec<Box<str>>>);

impl FloatTexts {
    fn record(&mut self, double: f64, text: &str) {
        let texts = self.0.entry(double.to_bits()).or_default();
        if !texts.iter().any(|t| &**t == text) {
            texts.push(text.into());
        }
    }

    /// Every source text that was read as `double`; empty when the
    /// document held none.
    pub fn texts_of(&self, double: f64) -> &[Box<str>] {
        self.0.get(&double.to_bits()).map_or(&[], Vec::as_slice)
    }

    /// Whether no number was read as a double.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads `bytes` as one strict JSON object ([`Options::TOKEN`]); `None` for
/// anything else.
pub(crate) fn parse_object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match parse(bytes, Options::TOKEN) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
