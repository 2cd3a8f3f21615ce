//! Decoding of the values Envoy returns for `get_property` on dynamic
//! metadata (e.g. `jwt_authn`'s verified payload).
//!
//! Envoy serialises a metadata value by its CEL type: strings raw, numbers
//! as 8-byte little-endian `f64`, booleans as one byte, and maps and lists
//! in proxy-wasm's pairs encoding (`u32` count, then `u32` key and value
//! lengths, then each key and value followed by a NUL), nested. A list is
//! encoded as pairs whose *keys* are the encoded elements and whose values
//! are empty (verified against Envoy 1.40). The type is not on the wire, so
//! decoding recognises the pairs layout exactly, reads pairs with only empty
//! values as a list, and treats 8-byte values holding control bytes as
//! numbers. Known ambiguity: an object whose values are all empty strings
//! reads as the list of its keys.

use serde_json::{Map, Number, Value};
use thiserror::Error;

/// Why a metadata value could not be decoded as a claim object.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PairsError {
    /// The top-level value is not a pairs-encoded map.
    #[error("metadata value is not a pairs-encoded map")]
    NotAMap,
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("metadata nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

/// Deepest nesting accepted; bounds recursion on hostile input.
pub const MAX_DEPTH: usize = 16;

/// Parses one pairs-encoded buffer into borrowed (key, value) slices.
/// Returns `None` unless the layout is exact: every length in bounds, every
/// NUL terminator in place and no trailing bytes.
pub fn parse_pairs(buf: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let count = read_u32(buf, 0)? as usize;
    let header_len = count.checked_mul(8)?.checked_add(4)?;
    if header_len > buf.len() {
        return None;
    }
    let mut pos = header_len;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let key_len = read_u32(buf, 4 + i * 8)? as usize;
        let value_len = read_u32(buf, 8 + i * 8)? as usize;
        let key = take_terminated(buf, &mut pos, key_len)?;
        let value = take_terminated(buf, &mut pos, value_len)?;
        out.push((key, value));
    }
    (pos == buf.len()).then_some(out)
}

/// Decodes the payload map `jwt_authn` stored in metadata into claims.
pub fn decode_claim_map(buf: &[u8]) -> Result<Map<String, Value>, PairsError> {
    let pairs = parse_pairs(buf).ok_or(PairsError::NotAMap)?;
    decode_map(&pairs, 0)
}

fn decode_map(pairs: &[(&[u8], &[u8])], depth: usize) -> Result<Map<String, Value>, PairsError> {
    let mut map = Map::new();
    for (key, value) in pairs {
        map.insert(
            String::from_utf8_lossy(key).into_owned(),
            decode_value(value, depth + 1)?,
        );
    }
    Ok(map)
}

/// Decodes a single metadata value, guessing its type from its layout.
pub fn decode_value(buf: &[u8], depth: usize) -> Result<Value, PairsError> {
    if depth > MAX_DEPTH {
        return Err(PairsError::TooDeep);
    }
    if let Some(pairs) = parse_pairs(buf) {
        if !pairs.is_empty() && pairs.iter().all(|(_, v)| v.is_empty()) {
            let items = pairs
                .iter()
                .map(|(k, _)| decode_value(k, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Value::Array(items));
        }
        return decode_map(&pairs, depth).map(Value::Object);
    }
    if buf.len() == 8 && buf.iter().any(|b| *b < 0x20) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(buf);
        let n = f64::from_le_bytes(bytes);
        return Ok(Number::from_f64(n).map_or(Value::Null, Value::Number));
    }
    if buf.len() == 1 && buf[0] <= 1 {
        return Ok(Value::Bool(buf[0] == 1));
    }
    Ok(Value::String(String::from_utf8_lossy(buf).into_owned()))
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn take_terminated<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = pos.checked_add(len)?;
    let slice = buf.get(*pos..end)?;
    if *buf.get(end)? != 0 {
        return None;
    }
    *pos = end + 1;
    Some(slice)
}

/// Encodes pairs the way proxy-wasm hosts do; used by tests and tools that
/// need to build metadata values.
pub fn encode_pairs(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_strings_numbers_bools_and_nesting() {
        let exp = 1.7e9f64.to_le_bytes();
        let roles = encode_pairs(&[(b"admin", b""), (b"user", b"")]);
        let realm = encode_pairs(&[(b"roles", &roles)]);
        let top = encode_pairs(&[
            (b"sub", b"alice"),
            (b"exp", &exp),
            (b"admin", &[1]),
            (b"realm_access", &realm),
        ]);
        let map = decode_claim_map(&top).unwrap();
        assert_eq!(map["sub"], "alice");
        assert_eq!(map["exp"].as_f64(), Some(1.7e9));
        assert_eq!(map["admin"], true);
        assert_eq!(map["realm_access"]["roles"][1], "user");
    }

    /// The exact bytes Envoy 1.40 returned for `{"roles":["model-user","x"],
    /// "nest":{"a":[1,"z"]},"e":[]}` (captured from a real `jwt_authn` run).
    #[test]
    fn decodes_bytes_captured_from_envoy() {
        let roles = b"\x02\0\0\0\x0a\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0model-user\0\0x\0\0";
        let nest = b"\x01\0\0\0\x01\0\0\0\x21\0\0\0a\0\x02\0\0\0\x08\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0\0\0\xf0?\0\0z\0\0\0";
        let top = encode_pairs(&[(b"roles", roles), (b"nest", nest), (b"e", b"\0\0\0\0")]);
        let map = decode_claim_map(&top).unwrap();
        assert_eq!(map["roles"], serde_json::json!(["model-user", "x"]));
        assert_eq!(map["nest"], serde_json::json!({"a": [1.0, "z"]}));
        assert_eq!(map["e"], serde_json::json!({}));
    }

    #[test]
    fn eight_letter_strings_stay_strings() {
        let top = encode_pairs(&[(b"tenant", b"acmecorp")]);
        assert_eq!(decode_claim_map(&top).unwrap()["tenant"], "acmecorp");
    }

    #[test]
    fn garbage_is_rejected_not_panicking() {
        assert_eq!(decode_claim_map(b"alice"), Err(PairsError::NotAMap));
        assert_eq!(decode_claim_map(&[]), Err(PairsError::NotAMap));
        assert_eq!(
            decode_claim_map(&[255, 255, 255, 255]),
            Err(PairsError::NotAMap)
        );
        let mut truncated = encode_pairs(&[(b"sub", b"alice")]);
        truncated.pop();
        assert_eq!(decode_claim_map(&truncated), Err(PairsError::NotAMap));
    }

    #[test]
    fn hostile_nesting_is_bounded() {
        let mut v = encode_pairs(&[(b"k", b"v")]);
        for _ in 0..40 {
            v = encode_pairs(&[(b"k", &v)]);
        }
        assert_eq!(decode_claim_map(&v), Err(PairsError::TooDeep));
    }
}
