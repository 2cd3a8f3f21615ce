//! API tokens, each recognised by its documented prefix:
//!
//! - GitHub: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36 or more letters
//!   and digits; `github_pat_` + 22 or more of `[A-Za-z0-9_]`;
//! - Slack: `xoxb-`, `xoxa-`, `xoxp-`, `xoxr-`, `xoxs-` + 10 or more of
//!   `[A-Za-z0-9-]`;
//! - Stripe: `sk_live_`, `sk_test_`, `rk_live_`, `rk_test_` + 16 or more
//!   letters and digits (publishable `pk_` keys are public, not matched);
//! - Google API keys: `AIza` + exactly 35 of `[A-Za-z0-9_-]`;
//! - JWTs: `eyJ` + a header of at most 1 KiB that decodes to a JSON
//!   object, a dot, and at least two base64url bytes; the token then runs
//!   over base64url and inner dots (three segments for JWS, five for JWE);
//! - `Bearer <credential>` (also `bearer`, `BEARER`): only the credential
//!   is replaced; it must be 16+ bytes of `[A-Za-z0-9-._~+/]` (then `=`
//!   padding) and hold a digit or punctuation, so prose such as "Bearer
//!   authentication" is left alone (a run of 256 letters is a credential).
//!
//! None of them match when glued to a preceding word, or when the body is
//! too short. Except Google keys (fixed length), they are confirmed by
//! their prefix and minimum body, and then run to the end of their
//! character class however long they are (see `open`): a token followed
//! by a word byte outside its class is replaced up to that byte.

use crate::pii::config::PiiType;
use crate::pii::open::Tail;
use crate::pii::window::{is_word, Found, Step, Win};

/// Longest JWT header (first segment) accepted.
const MAX_JWT_HEADER: usize = 1024;
/// A `Bearer` credential made only of letters is confirmed at this length.
const BEARER_LETTERS: usize = 256;

/// `prefix` + at least `min` bytes of the tail's class, confirmed as soon
/// as the `min`-th byte arrives.
fn token(w: &Win, p: usize, prefix: usize, min: usize, tail: Tail) -> Step<Option<Found>> {
    if !w.left_ok(p) {
        return Ok(None);
    }
    let f = |b: u8| match tail {
        Tail::Word => is_word(b),
        Tail::AlnumDash => b.is_ascii_alphanumeric() || b == b'-',
        _ => b.is_ascii_alphanumeric(),
    };
    let n = w.run(p + prefix, min, f)?;
    if n < min {
        return Ok(None);
    }
    Ok(Some(Found::open(p, p + prefix + n, PiiType::Token, tail)))
}

/// `ghp_` and friends.
pub(crate) fn github(w: &Win, p: usize) -> Step<Option<Found>> {
    token(w, p, 4, 36, Tail::Alnum)
}

/// `github_pat_…`.
pub(crate) fn github_pat(w: &Win, p: usize) -> Step<Option<Found>> {
    token(w, p, 11, 22, Tail::Word)
}

/// `xoxb-…` and friends.
pub(crate) fn slack(w: &Win, p: usize) -> Step<Option<Found>> {
    token(w, p, 5, 10, Tail::AlnumDash)
}

/// `sk_live_…` and friends.
pub(crate) fn stripe(w: &Win, p: usize) -> Step<Option<Found>> {
    token(w, p, 8, 16, Tail::Alnum)
}

/// `AIza…`: exactly 35 bytes after the prefix.
pub(crate) fn google(w: &Win, p: usize) -> Step<Option<Found>> {
    if !w.left_ok(p) {
        return Ok(None);
    }
    let w = w.limit(p + 4 + 36 + 1);
    let n = w.run(p + 4, 36, is_b64url)?;
    if n != 35 || w.is(p + 4 + n, is_word)? {
        return Ok(None);
    }
    Ok(Some(Found::new(p, p + 4 + n, PiiType::Token)))
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `eyJ…` JSON Web Tokens, confirmed by a JSON header, a dot and two
/// bytes of the next segment.
pub(crate) fn jwt(w: &Win, p: usize) -> Step<Option<Found>> {
    if !w.left_ok(p) {
        return Ok(None);
    }
    let w = w.limit(p + MAX_JWT_HEADER + 3);
    let header = w.run(p, MAX_JWT_HEADER + 1, is_b64url)?;
    let dot1 = p + header;
    if header > MAX_JWT_HEADER || w.at(dot1)? != Some(b'.') {
        return Ok(None);
    }
    if w.run(dot1 + 1, 2, is_b64url)? < 2 {
        return Ok(None);
    }
    let ok = b64url_decode(w.slice(p, dot1)).is_some_and(|h| {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&h).is_ok()
    });
    Ok(ok.then(|| Found::open(p, dot1 + 3, PiiType::Token, Tail::Jwt)))
}

/// Decodes unpadded base64url; `None` on a bad length.
fn b64url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let val = |b: u8| -> Option<u32> {
        Some(match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut acc = 0u32;
        for (k, &b) in chunk.iter().enumerate() {
            acc |= val(b)? << (18 - 6 * k);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(bytes.get(1..chunk.len()).unwrap_or(&[]));
    }
    Some(out)
}

fn is_cred(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// `Bearer <credential>`: the credential only, confirmed once it has 16
/// bytes including a non-letter (or [`BEARER_LETTERS`] letters).
pub(crate) fn bearer(w: &Win, p: usize) -> Step<Option<Found>> {
    if !w.left_ok(p) {
        return Ok(None);
    }
    let spaces = w.run(p + 6, 4, |b| b == b' ')?;
    if spaces == 0 {
        return Ok(None);
    }
    let s = p + 6 + spaces;
    let mut n = 0;
    let mut other = false;
    while let Some(b) = w.at(s + n)?.filter(|&b| is_cred(b)) {
        other |= !b.is_ascii_alphabetic();
        n += 1;
        if (n >= 16 && other) || n >= BEARER_LETTERS {
            let tail = Tail::Bearer { pad: false };
            return Ok(Some(Found::open(s, s + n, PiiType::Token, tail)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url() {
        assert_eq!(
            b64url_decode(b"eyJhbGciOiJIUzI1NiJ9").unwrap(),
            br#"{"alg":"HS256"}"#
        );
        assert_eq!(b64url_decode(b"YQ").unwrap(), b"a");
        assert_eq!(b64url_decode(b"YWI").unwrap(), b"ab");
        assert!(b64url_decode(b"Y").is_none());
        assert!(b64url_decode(b"Y*==").is_none());
    }
}
