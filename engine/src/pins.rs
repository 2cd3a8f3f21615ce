//! Tool pinning against "rug pulls": an MCP server that changes a tool's
//! description or input schema after the tool was reviewed.
//!
//! The bundle's `tool_pins` section maps tool names to the SHA-256 of the
//! reviewed definition ([`tool_digest`]). `tools/list` answers are checked
//! tool by tool ([`ToolPins::scan`]): a pinned tool whose definition
//! differs is removed from the list (`on_change: filter`) or the whole
//! answer is refused (`refuse`). Tools without a pin pass unchecked (limit
//! them with rules' `mcp.tools`). The digests the server last advertised
//! are remembered process-wide by the host, and a `tools/call` to a pinned
//! tool whose last advertised digest differs from its pin is denied
//! ([`ToolPins::judge_call`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};
use sha2::{Digest as _, Sha256};

use crate::strict_json::fold_key;

/// Most tools one bundle may pin; bounds what the filter remembers per
/// bundle (only pinned names are ever remembered).
pub const MAX_PINNED_TOOLS: usize = 1024;

/// The members of a tool object the digest covers, in the order JCS
/// sorts them (UTF-16 code units: `description` < `inputSchema` < `name`).
pub const PINNED_FIELDS: [&str; 3] = ["description", "inputSchema", "name"];

/// A SHA-256 digest of a tool definition, written `sha256:<64 hex>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ToolDigest(pub [u8; 32]);

/// Why a pin string cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a pin must be `sha256:` followed by 64 hex digits")]
pub struct PinSyntaxError;

impl ToolDigest {
    /// Reads `sha256:<64 hex>` (hex digits in either case).
    pub fn parse(text: &str) -> Result<Self, PinSyntaxError> {
        let hex = text.strip_prefix("sha256:").ok_or(PinSyntaxError)?;
        if hex.len() != 64 {
            return Err(PinSyntaxError);
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
            let text = std::str::from_utf8(pair).map_err(|_| PinSyntaxError)?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(PinSyntaxError);
            }
            *byte = u8::from_str_radix(text, 16).map_err(|_| PinSyntaxError)?;
        }
        Ok(Self(out))
    }
}

impl std::fmt::Display for ToolDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Serialize for ToolDigest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ToolDigest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// What a changed pinned tool in a `tools/list` answer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnChange {
    /// Remove the tool from the list; the rest of the answer passes.
    #[default]
    Filter,
    /// Refuse the whole answer (502 / an SSE error event).
    Refuse,
}

/// What a call to a pinned tool the server never advertised (through this
/// proxy) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unobserved {
    /// Let it through. The default, because MCP clients may call a tool
    /// without listing first (a stateless client that cached the list, a
    /// new proxy process, a list that went through another replica), and
    /// denying those would break working deployments; the list check
    /// still catches a changed definition whenever it is listed here.
    #[default]
    Allow,
    /// Deny it until a `tools/list` answer showed the pinned definition.
    Deny,
}

/// The bundle's `tool_pins` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolPins {
    /// What a changed pinned tool in a list answer does.
    #[serde(default)]
    pub on_change: OnChange,
    /// What a call to a pinned tool never advertised yet does.
    #[serde(default)]
    pub unobserved: Unobserved,
    /// Tool name → digest of its reviewed definition.
    pub tools: BTreeMap<String, ToolDigest>,
}

/// What one list answer showed about the pinned tools.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinReport {
    /// Pinned tools the answer advertised, with the digest to remember:
    /// the pin when every entry of that name matched it, else the first
    /// differing digest (so a call is denied after any change).
    pub advertised: Vec<(String, ToolDigest)>,
    /// Pinned tools with at least one entry that differs from its pin.
    pub mismatched: BTreeSet<String>,
}

/// How a call to a pinned tool is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallVerdict {
    /// Not pinned, or the last advertised definition is the pinned one
    /// (or it was never advertised and `unobserved` is `allow`).
    Allow,
    /// Pinned and the server last advertised another definition.
    Changed,
    /// Pinned, never advertised, and `unobserved` is `deny`.
    Unobserved,
}

impl ToolPins {
    /// Checks every `tools` list of a parsed MCP answer (or batch): the
    /// same places [`crate::mcp::filter_list_answers`] filters.
    pub fn scan(&self, answers: &Value) -> PinReport {
        let mut seen: BTreeMap<&str, ToolDigest> = BTreeMap::new();
        let mut report = PinReport::default();
        crate::mcp::for_each_tool(answers, |name, entry| {
            let Some((pinned_name, pin)) = self.tools.get_key_value(name) else {
                return;
            };
            let digest = entry_digest(entry);
            if digest != *pin {
                report.mismatched.insert(pinned_name.clone());
            }
            match seen.get(pinned_name.as_str()) {
                Some(first) if *first != *pin => {}
                _ => {
                    seen.insert(pinned_name.as_str(), digest);
                }
            }
        });
        report.advertised = seen
            .into_iter()
            .map(|(name, digest)| (name.to_owned(), digest))
            .collect();
        report
    }

    /// Judges a `tools/call` to `name` given the digest the server last
    /// advertised for it (`None`: never seen).
    pub fn judge_call(&self, name: &str, last_advertised: Option<ToolDigest>) -> CallVerdict {
        let Some(pin) = self.tools.get(name) else {
            return CallVerdict::Allow;
        };
        match last_advertised {
            Some(seen) if seen == *pin => CallVerdict::Allow,
            Some(_) => CallVerdict::Changed,
            None if self.unobserved == Unobserved::Deny => CallVerdict::Unobserved,
            None => CallVerdict::Allow,
        }
    }

    /// Format rules serde cannot express, as `(path, message)` pairs.
    pub fn issues(&self) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        if self.tools.len() > MAX_PINNED_TOOLS {
            issues.push((
                "$.tool_pins.tools".to_owned(),
                format!("at most {MAX_PINNED_TOOLS} tools can be pinned"),
            ));
        }
        if self.tools.keys().any(String::is_empty) {
            issues.push((
                "$.tool_pins.tools".to_owned(),
                "a tool name must not be empty".to_owned(),
            ));
        }
        issues
    }
}

/// The key a tool's last advertised digest is remembered under: 32 hex
/// digits of SHA-256 over the bundle name (length-prefixed) and the tool
/// name, so keys have a fixed size whatever the names hold, and two
/// bundles on one proxy never read each other's tools.
pub fn memory_key(bundle: &str, tool: &str) -> String {
    let mut h = Sha256::new();
    h.update((bundle.len() as u64).to_le_bytes());
    h.update(bundle.as_bytes());
    h.update(tool.as_bytes());
    let mut out = String::with_capacity(32);
    for b in h.finalize().iter().take(16) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Shared form kept in the bundle, so streams can hold the pins cheaply.
pub type SharedPins = Arc<ToolPins>;

/// The digest a list entry shows: [`tool_digest`] of its pinned fields,
/// or — when the entry is not an object or carries a case variant of a
/// pinned field (`Description`, `inputschema`) that a lenient client
/// could read instead — the digest of the whole entry, which no pin made
/// by [`tool_digest`] equals.
pub fn entry_digest(entry: &Value) -> ToolDigest {
    let Some(object) = entry.as_object() else {
        return digest_of(entry);
    };
    let ambiguous = object.keys().any(|k| {
        let folded = fold_key(k);
        PINNED_FIELDS
            .iter()
            .any(|f| k != f && folded == f.to_ascii_lowercase())
    });
    if ambiguous {
        return digest_of(&Value::Object(object.clone()));
    }
    tool_digest(object)
}

fn digest_of(value: &Value) -> ToolDigest {
    let mut text = String::new();
    write_canonical(value, &mut text);
    ToolDigest(Sha256::digest(text.as_bytes()).into())
}

/// The pin of a tool definition: SHA-256 over the canonical JSON of an
/// object holding only the tool's `name`, `description` and
/// `inputSchema` members (each omitted when the tool has none; any JSON
/// value is taken as it is, so a non-string description is pinned too).
///
/// Canonical JSON follows RFC 8785 (JCS):
/// - no whitespace anywhere;
/// - object members sorted by key, comparing keys as UTF-16 code units;
/// - strings as UTF-8 with only `"`, `\` and control characters escaped:
///   `\b \t \n \f \r` in short form, other controls as `\u00xx` (lower
///   case hex); every other character literal (so `"\u0061"` and `"a"` in
///   the server's answer pin the same);
/// - numbers as ECMAScript `Number.prototype.toString` prints them (`1`
///   for `1.0` or `1e0`, `1e+21`, `1.5e-7`, `-0` as `0`), except that an
///   integer the answer wrote without fraction or exponent and that fits
///   64 bits is written exactly (JCS would round integers past 2^53; here
///   two different large integers never share a pin), and that a
///   fraction is read by serde_json's default float parser, which can
///   land one unit in the last place off for 17+ significant digits (the
///   filter and `mcp-guard pins` share it, so they always agree);
/// - `true`, `false`, `null` as such; arrays keep their order.
///
/// The result is independent of member order and whitespace in the
/// server's answer, and any change of meaning (a description character, a
/// schema property, an enum value, a default) changes it.
pub fn tool_digest(tool: &Map<String, Value>) -> ToolDigest {
    // `PINNED_FIELDS` is already in JCS member order: the object is
    // written directly, without copying the tool.
    let mut text = String::with_capacity(256);
    text.push('{');
    let present = PINNED_FIELDS
        .iter()
        .filter_map(|field| tool.get(*field).map(|v| (*field, v)));
    for (i, (field, value)) in present.enumerate() {
        if i > 0 {
            text.push(',');
        }
        write_string(field, &mut text);
        text.push(':');
        write_canonical(value, &mut text);
    }
    text.push('}');
    ToolDigest(Sha256::digest(text.as_bytes()).into())
}

/// Appends the canonical JSON of `value` (see [`tool_digest`]).
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(key, out);
                out.push(':');
                if let Some(v) = members.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_number(n: &Number, out: &mut String) {
    if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(f) = n.as_f64() {
        write_es_number(f, out);
    } else {
        out.push_str("null");
    }
}

/// ECMAScript `Number.prototype.toString` for a finite double, from the
/// shortest round-trip digits Rust prints.
fn write_es_number(f: f64, out: &mut String) {
    if f == 0.0 || !f.is_finite() {
        // JSON has no NaN or infinity; -0 prints as 0.
        out.push('0');
        return;
    }
    if f < 0.0 {
        out.push('-');
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i64 = exp.parse().unwrap_or(0);
    let k = digits.len() as i64;
    let n = exp + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        let (first, rest) = digits.split_at(1);
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e < 0 { '-' } else { '+' }, e.abs());
    }
}

#[cfg(test)]
mod tests;
