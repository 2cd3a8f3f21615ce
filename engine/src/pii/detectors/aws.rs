//! AWS credentials.
//!
//! Access key ids: `AKIA`, `ASIA`, `AGPA`, `AIDA`, `AROA`, `ANPA`, `ANVA`
//! or `AIPA` followed by exactly 16 uppercase letters or digits, not glued
//! to a word.
//!
//! Secret access keys are 40 characters of `[A-Za-z0-9/+]`, which plenty
//! of harmless strings also are, so they are matched only in context:
//! right after a word containing `secret` (`aws_secret_access_key`,
//! `SecretAccessKey`, `client_secret`, in any of the cases `secret`,
//! `Secret`, `SECRET`), right after an access key id, or as the value of
//! a JSON key containing `secret`. Between the context and the key only
//! separators (spaces, quotes, `:`, `=`, `,`, backslashes, the `|` of
//! markdown tables) and up to a few digit-free identifier words may
//! appear (96 bytes at most). The key
//! itself must mix upper and lower case and contain a digit, `/` or `+`,
//! and not be glued to more base64 (`=` padding included).

use crate::pii::config::PiiType;
use crate::pii::window::{is_word, Found, Step, Win};

/// Bytes searched after a context for the secret.
const SEARCH: usize = 96;
const SECRET_LEN: usize = 40;

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
}

fn is_sep(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'"' | b'\'' | b':' | b'=' | b',' | b'\\' | b'\r' | b'\n' | b'|'
    )
}

/// Tries an access key id at `p` (its 4-byte prefix already matched), and a
/// secret right after it.
pub(crate) fn detect_key_id(w: &Win, p: usize, secret_on: bool) -> Step<Option<Found>> {
    if !w.left_ok(p) {
        return Ok(None);
    }
    let lw = w.limit(p + 21);
    let n = lw.run(p + 4, 17, |b| b.is_ascii_uppercase() || b.is_ascii_digit())?;
    let end = p + 4 + n;
    if n != 16 || lw.is(end, is_word)? {
        return Ok(None);
    }
    let mut found = Found::new(p, end, PiiType::AwsKey);
    if secret_on {
        if let Some((s, e)) = secret_after(w, end)? {
            found.extra = Some((s, e, PiiType::AwsSecret));
        }
    }
    Ok(Some(found))
}

/// Prefixes of access key ids.
const KEY_ID_PREFIXES: [&[u8; 4]; 8] = [
    b"AKIA", b"ASIA", b"AGPA", b"AIDA", b"AROA", b"ANPA", b"ANVA", b"AIPA",
];

/// `run` has the shape of an access key id (prefix + 16 of `[A-Z0-9]`).
fn is_key_id(run: &[u8]) -> bool {
    run.len() == 20
        && KEY_ID_PREFIXES.iter().any(|p| run.starts_with(*p))
        && run
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

/// Tries a secret after a `secret` keyword ending at `from`.
pub(crate) fn detect_secret(w: &Win, from: usize) -> Step<Option<Found>> {
    Ok(secret_after(w, from)?.map(|(s, e)| Found::new(s, e, PiiType::AwsSecret)))
}

/// Finds a 40-character secret after `from`, skipping separators and
/// digit-free identifier words.
pub(crate) fn secret_after(w: &Win, from: usize) -> Step<Option<(usize, usize)>> {
    let w = w.limit(from + SEARCH + SECRET_LEN + 2);
    let mut i = from;
    while i < from + SEARCH {
        let Some(b) = w.at(i)? else {
            return Ok(None);
        };
        if is_sep(b) {
            i += 1;
            continue;
        }
        if !is_b64(b) && b != b'_' && b != b'-' {
            return Ok(None);
        }
        let n = w.run(i, SECRET_LEN + 1, |c| is_b64(c) || c == b'_' || c == b'-')?;
        let run = w.slice(i, i + n);
        if n == SECRET_LEN && run.iter().all(|&c| is_b64(c)) && w.at(i + n)? != Some(b'=') {
            let upper = run.iter().any(u8::is_ascii_uppercase);
            let lower = run.iter().any(u8::is_ascii_lowercase);
            let mixed = run
                .iter()
                .any(|&c| c.is_ascii_digit() || c == b'/' || c == b'+');
            return Ok((upper && lower && mixed).then_some((i, i + n)));
        }
        // An access key id is never skipped as a word: it is reported by
        // its own detector, with this secret as its companion.
        let word = n < SECRET_LEN
            && !is_key_id(run)
            && run
                .iter()
                .all(|&c| c.is_ascii_alphabetic() || c == b'_' || c == b'-');
        if !word {
            return Ok(None);
        }
        i += n;
    }
    Ok(None)
}
