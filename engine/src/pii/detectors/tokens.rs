//! API tokens, each recognised by its documented prefix:
//!
//! - GitHub: `ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` + 36 or more letters
//!   and digits; `github_pat_` + 22 or more of `[A-Za-z0-9_]`;
//! - Slack: `xoxb-`, `xoxa-`, `xoxp-`, `xoxr-`, `xoxs-` + 10 or more of
//!   `[A-Za-z0-9-]`;
//! - Stripe: `sk_live_`, `sk_test_`, `rk_live_`, `rk_test_` + 16 or more
//!   letters and digits (publishable `pk_` keys are public, not matched);
//! - Google API keys: `AIza` + exactly 35 of `[A-Za-z0-9_-]`;
//! - JWTs: `eyJ` + three base64url segments separated by dots (the third
//!   may be empty for unsigned tokens), at most 4 KiB, whose first segment
//!   decodes to a JSON object;
//! - `Bearer <credential>` (also `bearer`, `BEARER`): only the credential
//!   is replaced; it must be 16+ bytes of `[A-Za-z0-9-._~+/]` (then `=`
//!   padding) and hold a digit or punctuation, so prose such as "Bearer
//!   authentication" is left alone.
//!
//! None of them match when glued to a preceding word, or when the body is
//! too short; bodies are capped at 255 bytes (4 KiB for JWTs).

use crate::pii::config::PiiType;
use crate::pii::window::{is_word, Found, Step, Win};

const MAX_BODY: usize = 255;
/// Longest JWT matched.
pub(crate) const MAX_JWT: usize = 4096;

fn token(
    w: &Win,
    p: usize,
    prefix: usize,
    min: usize,
    f: impl Fn(u8) -> bool,
) -> Step<Option<Found>> {
    if !w.left_ok(p) {
        return Ok(None);
    }
    let w = w.limit(p + prefix + MAX_BODY + 1);
    let n = w.run(p + prefix, MAX_BODY + 1, &f)?;
    let end = p + prefix + n;
    if n < min || n > MAX_BODY || w.is(end, is_word)? {
        return Ok(None);
    }
    Ok(Some(Found::new(p, end, PiiType::Token)))
}

/// `ghp_` and friends.
pub(crate) fn github(w: &Win, p: usize) -> Step<Option<Found>> {
    token(w, p, 4, 36, |b| b.is_ascii_alphanumeric())
}

/// `github_pat_…`.
pub(crate) fn github_pat(w: &Win, p: usize) -> Step<Option<Found>> {
    token(w, p, 11, 22, is_word)
}

/// `xoxb-…` and friends.
pub(crate) fn slack(w: &Win, p: usize) -> Step<Option<Found>> {
    token(w, p, 5, 10, |b| b.is_ascii_alphanumeric() || b == b'-')
}

/// `sk_live_…` and friends.
pub(crate) fn stripe(w: &Win, p: usize) -> Step<Option<Found>> {
    token(w, p, 8, 16, |b| b.is_ascii_alphanumeric())
}

/// `AIza…`.
pub(crate) fn google(w: &Win, p: usize) -> Step<Option<Found>> {
    let f = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
    match token(w, p, 4, 35, f)? {
        Some(found) if found.end - found.start == 39 => Ok(Some(found)),
        _ => Ok(None),
    }
}

fn is_b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// `eyJ…` JSON Web Tokens.
pub(crate) fn jwt(w: &Win, p: usize) -> Step<Option<Found>> {
    if !w.left_ok(p) {
        return Ok(None);
    }
    let w = w.limit(p + MAX_JWT + 1);
    let header = w.run(p, MAX_JWT, is_b64url)?;
    let dot1 = p + header;
    if w.at(dot1)? != Some(b'.') || header > 1024 {
        return Ok(None);
    }
    let payload = w.run(dot1 + 1, MAX_JWT, is_b64url)?;
    let dot2 = dot1 + 1 + payload;
    if payload < 2 || w.at(dot2)? != Some(b'.') {
        return Ok(None);
    }
    let sig = w.run(dot2 + 1, MAX_JWT, is_b64url)?;
    let end = dot2 + 1 + sig;
    if end - p > MAX_JWT || w.is(end, |b| is_b64url(b) || b == b'.' || b == b'=')? {
        return Ok(None);
    }
    let ok = b64url_decode(w.slice(p, dot1)).is_some_and(|h| {
        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&h).is_ok()
    });
    Ok(ok.then(|| Found::new(p, end, PiiType::Token)))
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

/// `Bearer <credential>`: returns the credential only.
pub(crate) fn bearer(w: &Win, p: usize) -> Step<Option<Found>> {
    if !w.left_ok(p) {
        return Ok(None);
    }
    let w = w.limit(p + 6 + 4 + MAX_JWT + 8);
    let spaces = w.run(p + 6, 4, |b| b == b' ')?;
    if spaces == 0 {
        return Ok(None);
    }
    let s = p + 6 + spaces;
    let n = w.run(s, MAX_JWT + 1, is_cred)?;
    if !(16..=MAX_JWT).contains(&n) {
        return Ok(None);
    }
    let pad = w.run(s + n, 3, |b| b == b'=')?;
    let end = s + n + pad;
    if w.is(end, is_word)? {
        return Ok(None);
    }
    let cred = w.slice(s, s + n);
    if !cred.iter().any(|&b| !b.is_ascii_alphabetic()) {
        return Ok(None);
    }
    Ok(Some(Found::new(s, end, PiiType::Token)))
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
