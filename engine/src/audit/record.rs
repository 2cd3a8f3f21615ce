//! Reading sealed records out of access-log lines, strictly.
//!
//! Two line shapes carry a record: the line *is* the record (Envoy text
//! format `%FILTER_STATE(wasm.mcp_decision:PLAIN)%`), or the line is a JSON
//! object whose top-level member `mcp` holds the record, as raw JSON, as
//! a JSON string of its text, or as a string of its base64. `-`, empty lines and JSON lines without a
//! record are skipped. A line that mentions the chain members but cannot be
//! read is reported, never skipped: a damaged record must not vanish.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use base64::Engine as _;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::chain::{sanitize_chain_id, HASH_MEMBER};

/// The member of a JSON log line that holds the record.
pub const LOG_MEMBER: &str = "mcp";

/// What one log line holds.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRecord<'a> {
    /// `-`, empty, or a JSON line with no record: nothing to verify.
    Skipped,
    /// Not JSON and no sign of a record (another log's line).
    Unrecognised,
    /// The record's exact text.
    Record(Cow<'a, str>),
    /// It looks like a record but cannot be read: an edit.
    Damaged(String),
}

/// A record split into what the chain needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed<'a> {
    /// The chain id.
    pub chain: String,
    /// The sequence number (1 for a chain's first record).
    pub seq: u64,
    /// The claimed hash.
    pub hash: [u8; 32],
    /// The bytes the hash covers: everything before [`HASH_MEMBER`].
    pub prefix: &'a str,
    /// The whole record text.
    pub text: &'a str,
}

/// Substrings that betray a record (also inside a JSON-escaped string);
/// one edited byte cannot remove all of them.
const MARKERS: [&str; 3] = ["\"hash", "\"chain", "\"seq"];

fn looks_like_record(line: &str) -> bool {
    MARKERS
        .iter()
        .any(|m| line.contains(m) || line.contains(&m.replace('"', "\\\"")))
}

/// Classifies one log line (without its line ending).
pub fn extract(line: &str) -> LineRecord<'_> {
    let trimmed = line.trim_end_matches('\r');
    if trimmed.is_empty() || trimmed == "-" {
        return LineRecord::Skipped;
    }
    if !trimmed.starts_with('{') {
        return if looks_like_record(trimmed) {
            LineRecord::Damaged("not a JSON object".into())
        } else {
            LineRecord::Unrecognised
        };
    }
    // Fast path for the line that is the record: [`parse`] checks it
    // strictly anyway. (`"mcp":` cannot occur inside a record: strings
    // escape their quotes and record members are named otherwise.)
    if trimmed.ends_with("\"}") && trimmed.contains(HASH_MEMBER) && !trimmed.contains("\"mcp\":") {
        return LineRecord::Record(Cow::Borrowed(trimmed));
    }
    let object: StrictObject<'_> = match serde_json::from_str(trimmed) {
        Ok(o) => o,
        Err(e) if looks_like_record(trimmed) => return LineRecord::Damaged(e.to_string()),
        Err(_) => return LineRecord::Unrecognised,
    };
    if let Some(raw) = object.get(LOG_MEMBER) {
        let text = raw.get();
        if text == "null" || text == "\"-\"" || text == "\"\"" {
            return LineRecord::Skipped;
        }
        if text.starts_with('"') {
            return match serde_json::from_str::<String>(text) {
                Ok(s) if s.starts_with('{') => LineRecord::Record(Cow::Owned(s)),
                // A bytes-typed filter state may be logged as base64.
                Ok(s) => match base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                {
                    Some(decoded) if decoded.starts_with('{') => {
                        LineRecord::Record(Cow::Owned(decoded))
                    }
                    _ => LineRecord::Damaged("the mcp member is not a record".into()),
                },
                Err(e) => LineRecord::Damaged(e.to_string()),
            };
        }
        return LineRecord::Record(Cow::Borrowed(text));
    }
    if ["chain", "seq", "hash"]
        .iter()
        .any(|k| object.get(k).is_some())
    {
        return LineRecord::Record(Cow::Borrowed(trimmed));
    }
    LineRecord::Skipped
}

/// Splits a record into its chain members, refusing anything the sealer
/// would not have written: not exactly one JSON object, duplicate keys,
/// chain members missing, out of order or not last, a chain id that is
/// not in sanitized form, a hash that is not 64 lower-case hex digits.
pub fn parse(text: &str) -> Result<Sealed<'_>, String> {
    if !text.starts_with('{') || !text.ends_with("\"}") {
        return Err("the record is not exactly one JSON object".into());
    }
    let cut = text
        .rfind(HASH_MEMBER)
        .ok_or_else(|| "no hash member".to_string())?;
    let prefix = text.get(..cut).unwrap_or_default();
    let hex = text
        .get(cut + HASH_MEMBER.len()..text.len() - 2)
        .unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err("the hash is not 64 lower-case hex digits".into());
    }
    let hash = from_hex(hex).ok_or_else(|| "bad hash".to_string())?;
    let object: StrictObject<'_> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let n = object.0.len();
    let tail: Vec<&str> = object
        .0
        .iter()
        .skip(n.saturating_sub(3))
        .map(|(k, _)| k.as_ref())
        .collect();
    if tail != ["chain", "seq", "hash"] {
        return Err("chain, seq and hash are not the last members".into());
    }
    let chain: String = object
        .get("chain")
        .and_then(|raw| serde_json::from_str(raw.get()).ok())
        .ok_or_else(|| "chain is not a string".to_string())?;
    if chain.is_empty() || sanitize_chain_id(&chain) != chain {
        return Err("chain id is not in sanitized form".into());
    }
    let seq_text = object.get("seq").map(|r| r.get()).unwrap_or_default();
    let seq: u64 = match seq_text.parse() {
        Ok(s) if s >= 1 && !seq_text.starts_with('0') => s,
        _ => return Err("seq is not a positive integer".into()),
    };
    if !prefix.ends_with(&format!("\"chain\":\"{chain}\",\"seq\":{seq}")) {
        return Err("chain members are not in sealed form".into());
    }
    Ok(Sealed {
        chain,
        seq,
        hash,
        prefix,
        text,
    })
}

/// 32 bytes from 64 hex digits (either case); `None` otherwise.
pub fn from_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (slot, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *slot = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

/// A JSON object's members in order, refusing duplicate keys (where
/// parsers disagree on which value counts).
#[derive(Debug)]
pub struct StrictObject<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> StrictObject<'a> {
    /// The value of member `key`.
    pub fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de> Deserialize<'de> for StrictObject<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut seen = HashSet::new();
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if !seen.insert(key.clone()) {
                        return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                    }
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(StrictObject(members))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::DecisionChain;

    #[test]
    fn both_line_shapes_give_the_exact_record() {
        let mut chain = DecisionChain::new("n1");
        let rec = chain.seal("{\"decision\":\"allow\",\"sub\":\"a\\\"b\"");
        assert_eq!(
            extract(&rec),
            LineRecord::Record(Cow::Borrowed(rec.as_str()))
        );
        let json_line = format!("{{\"status\":200,\"mcp\":{rec}}}");
        assert_eq!(
            extract(&json_line),
            LineRecord::Record(Cow::Borrowed(rec.as_str()))
        );
        let string_line = serde_json::json!({ "mcp": rec }).to_string();
        assert_eq!(
            extract(&string_line),
            LineRecord::Record(Cow::Owned(rec.clone()))
        );
        let sealed = parse(&rec).expect("parses");
        assert_eq!((sealed.chain.as_str(), sealed.seq), ("n1", 1));
        for skip in [
            "-",
            "",
            "{\"status\":200}",
            "{\"mcp\":null}",
            "{\"mcp\":\"-\"}",
        ] {
            assert_eq!(extract(skip), LineRecord::Skipped, "{skip}");
        }
        assert_eq!(extract("GET / 200"), LineRecord::Unrecognised);
    }

    #[test]
    fn a_damage_report_does_not_echo_control_characters() {
        // The log is attacker-writable; its keys reach the auditor's
        // terminal through `audit verify`'s findings.
        let mut chain = DecisionChain::new("n1");
        let rec = chain.seal("{\"decision\":\"allow\"");
        let key = "\\u001b]0;x\\u0007\\n";
        let dup = rec.replacen('{', &format!("{{\"{key}\":1,\"{key}\":2,"), 1);
        let why = parse(&dup).unwrap_err();
        assert!(why.contains("duplicate"), "{why}");
        assert!(!why.chars().any(char::is_control), "{why:?}");
    }

    #[test]
    fn strictness() {
        let mut chain = DecisionChain::new("n1");
        let rec = chain.seal("{\"decision\":\"allow\"");
        let dup = rec.replacen("{", "{\"decision\":\"deny\",", 1);
        assert!(parse(&dup).unwrap_err().contains("duplicate"));
        assert!(parse(&format!("{rec} ")).is_err());
        assert!(parse(&format!(" {rec}")).is_err());
        assert!(parse(&rec.replace("\"seq\":1", "\"seq\":01")).is_err());
        assert!(matches!(
            extract(&format!("{{\"mcp\":{rec},\"mcp\":null}}")),
            LineRecord::Damaged(_)
        ));
        assert!(matches!(extract(&rec[1..]), LineRecord::Damaged(_)));
    }
}
