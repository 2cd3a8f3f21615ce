//! Versions are the service's to assign: every stored bundle gets
//! `version = previous + 1`, whatever number was pushed. This module
//! rewrites the top-level `version` member of a bundle's JSON, touching no
//! other byte, so what the author wrote (order, spacing) is what is served.

use serde_json::Value;

/// Why the version could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// The text is not a JSON object.
    #[error("bundle is not a JSON object")]
    NotAnObject,
}

/// `bytes` (a JSON object) with its top-level `version` set to `version`.
///
/// The value of a plainly written `"version"` key is replaced in place.
/// When the key is absent or written with escapes, the document is
/// re-serialised instead (key order then becomes alphabetical), so the
/// result always carries the new version.
pub fn set_version(bytes: &[u8], version: u64) -> Result<Vec<u8>, RewriteError> {
    if let Some((start, end)) = find_top_level_value(bytes, b"version") {
        let mut out = Vec::with_capacity(bytes.len() + 20);
        out.extend_from_slice(&bytes[..start]);
        out.extend_from_slice(version.to_string().as_bytes());
        out.extend_from_slice(&bytes[end..]);
        if version_of(&out) == Some(version) {
            return Ok(out);
        }
    }
    let mut value: Value = serde_json::from_slice(bytes).map_err(|_| RewriteError::NotAnObject)?;
    let object = value.as_object_mut().ok_or(RewriteError::NotAnObject)?;
    object.insert("version".into(), Value::from(version));
    serde_json::to_vec_pretty(&value).map_err(|_| RewriteError::NotAnObject)
}

/// The top-level `version` of a JSON object, if it is an unsigned integer.
pub fn version_of(bytes: &[u8]) -> Option<u64> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    value.get("version")?.as_u64()
}

/// Byte range of the value of the first top-level member whose key is
/// written exactly as `key` (no escapes), in a JSON object. `None` if the
/// text is not a well-formed object or has no such key.
fn find_top_level_value(bytes: &[u8], key: &[u8]) -> Option<(usize, usize)> {
    let mut at = skip_ws(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_ws(bytes, at);
        match bytes.get(at)? {
            b'}' => return None,
            b',' => {
                at += 1;
                continue;
            }
            b'"' => {}
            _ => return None,
        }
        let key_end = skip_string(bytes, at)?;
        let this_key = &bytes[at + 1..key_end - 1];
        at = skip_ws(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_ws(bytes, at + 1);
        let value_end = skip_value(bytes, at)?;
        if this_key == key {
            return Some((at, value_end));
        }
        at = value_end;
    }
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// End (exclusive) of the string starting at the quote at `at`.
fn skip_string(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        match bytes.get(i)? {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
}

/// End (exclusive) of the value starting at `at`.
fn skip_value(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => skip_string(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match bytes.get(i)? {
                    b'"' => {
                        i = skip_string(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let mut i = at;
            while bytes
                .get(i)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            (i > at).then_some(i)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str, v: u64) -> String {
        String::from_utf8(set_version(text.as_bytes(), v).expect("rewritten")).expect("utf-8")
    }

    #[test]
    fn replaces_in_place() {
        assert_eq!(
            set(
                "{ \"name\": \"d\",\n  \"version\": 42,\n  \"rules\": [] }\n",
                7
            ),
            "{ \"name\": \"d\",\n  \"version\": 7,\n  \"rules\": [] }\n"
        );
        assert_eq!(set(r#"{"version":1}"#, 10), r#"{"version":10}"#);
    }

    #[test]
    fn ignores_nested_and_string_lookalikes() {
        let text = r#"{"description":"\"version\": 1","identity":{"version":5},"version":3}"#;
        assert_eq!(
            set(text, 4),
            r#"{"description":"\"version\": 1","identity":{"version":5},"version":4}"#
        );
    }

    #[test]
    fn falls_back_to_reserialising() {
        let out = set(r#"{"name":"d","\u0076ersion":3}"#, 9);
        assert_eq!(version_of(out.as_bytes()), Some(9));
        let out = set(r#"{"name":"d"}"#, 2);
        assert_eq!(version_of(out.as_bytes()), Some(2));
        assert_eq!(set_version(b"[1]", 1), Err(RewriteError::NotAnObject));
    }
}
