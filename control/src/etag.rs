//! Entity tags for bundles, and the `If-None-Match` test that lets a filter
//! poll cheaply: an unchanged bundle costs a 304 and no body.

use std::fmt;

use sha2::{Digest, Sha256};

/// Hex digits of the SHA-256 kept in a tag: 128 bits, plenty to tell
/// versions of one bundle apart, and short enough for logs.
const TAG_HEX_LEN: usize = 32;

/// A strong entity tag derived from a bundle's bytes: `"` + the first 32 hex
/// digits of their SHA-256 + `"`.
///
/// Derived from content rather than assigned, so it is the same on every
/// replica and across restarts, and changes whenever a byte does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ETag(String);

impl ETag {
    /// The tag of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut tag = String::with_capacity(TAG_HEX_LEN + 2);
        tag.push('"');
        for byte in digest.iter().take(TAG_HEX_LEN / 2) {
            tag.push(hex_digit(byte >> 4));
            tag.push(hex_digit(byte & 0x0f));
        }
        tag.push('"');
        Self(tag)
    }

    /// The tag as sent in the `ETag` header, quotes included.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an `If-None-Match` header value names this tag, so that the
    /// client's copy is current.
    ///
    /// The value is `*` or a comma-separated list of tags; as RFC 9110
    /// requires for `If-None-Match`, the comparison is weak (a `W/` prefix
    /// is ignored). Tags this service issues hold no commas, so splitting
    /// on commas cannot miss one of them.
    pub fn matches_if_none_match(&self, header: &str) -> bool {
        header.split(',').map(str::trim).any(|candidate| {
            candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == self.0
        })
    }
}

impl ETag {
    /// Whether an `If-Match` header value names this tag, so a conditional
    /// write may go ahead.
    ///
    /// `*` matches any current version; otherwise the comparison is strong,
    /// as RFC 9110 requires for `If-Match`: a weak (`W/`) tag never matches.
    pub fn matches_if_match(&self, header: &str) -> bool {
        header
            .split(',')
            .map(str::trim)
            .any(|candidate| candidate == "*" || candidate == self.0)
    }
}

impl fmt::Display for ETag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_the_quoted_sha256_prefix() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(
            ETag::of(b"abc").as_str(),
            "\"ba7816bf8f01cfea414140de5dae2223\""
        );
    }

    #[test]
    fn if_none_match_forms() {
        let tag = ETag::of(b"abc");
        let t = tag.as_str();
        assert!(tag.matches_if_none_match(t));
        assert!(tag.matches_if_none_match("*"));
        assert!(tag.matches_if_none_match(&format!("W/{t}")));
        assert!(tag.matches_if_none_match(&format!("\"other\", {t}")));
        assert!(!tag.matches_if_none_match("\"other\""));
        assert!(!tag.matches_if_none_match(t.trim_matches('"')));
        assert!(!tag.matches_if_none_match(""));
    }

    #[test]
    fn if_match_is_strong() {
        let tag = ETag::of(b"abc");
        let t = tag.as_str();
        assert!(tag.matches_if_match(t));
        assert!(tag.matches_if_match("*"));
        assert!(tag.matches_if_match(&format!("\"x\", {t}")));
        assert!(!tag.matches_if_match(&format!("W/{t}")));
        assert!(!tag.matches_if_match("\"x\""));
    }
}
