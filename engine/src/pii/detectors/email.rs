//! E-mail addresses.
//!
//! Matches `local@domain` where the local part is 1–64 bytes of
//! `[A-Za-z0-9._%+-]` (no leading, trailing dot) and the domain has at
//! least two labels of `[A-Za-z0-9-]` (no empty label, no label starting
//! or ending with `-`) and a final label of two or more letters.
//!
//! Deliberately not matched: quoted local parts, IP-literal domains
//! (`x@[1.2.3.4]`, `x@1.2.3.4`), single-label hosts (`user@localhost`),
//! non-ASCII (IDN) addresses. A local part longer than 64 bytes is cut to
//! its last 64 bytes (the address is still masked; the excess stays).
//!
//! JSON safety: an address never absorbs a quote or a backslash, and in
//! text mode an escape right before the address (`\n`, `\u0041`) is kept
//! whole, so the output stays valid JSON.

use crate::pii::config::PiiType;
use crate::pii::window::{Found, Step, Win};

/// Longest local part considered.
pub(crate) const MAX_LOCAL: usize = 64;
/// Longest domain considered.
const MAX_DOMAIN: usize = 253;

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Tries the address around the `@` at `at`.
pub(crate) fn detect(w: &Win, at: usize) -> Step<Option<Found>> {
    let mut start = at;
    while at - start < MAX_LOCAL && w.before(start).is_some_and(is_local) {
        start -= 1;
    }
    if w.escapes {
        start = skip_escape_tail(w, start, at);
    }
    while start < at && w.at(start)? == Some(b'.') {
        start += 1;
    }
    if start == at || w.before(at) == Some(b'.') {
        return Ok(None);
    }
    let w = w.limit(at + 2 + MAX_DOMAIN);
    let mut end = at + 1;
    while w.is(end, is_domain)? {
        end += 1;
    }
    while end > at + 1 && w.at(end - 1)?.is_some_and(|b| matches!(b, b'.' | b'-')) {
        end -= 1;
    }
    let domain = w.slice(at + 1, end);
    Ok(valid_domain(domain).then(|| Found::new(start, end, PiiType::Email)))
}

/// If a backslash escape opens just before `start`, moves `start` past the
/// escape's payload (`n`, or `uXXXX`) so the escape stays intact.
fn skip_escape_tail(w: &Win, start: usize, at: usize) -> usize {
    let mut backslashes = 0;
    let mut k = start;
    while w.before(k) == Some(b'\\') {
        backslashes += 1;
        k -= 1;
    }
    if backslashes % 2 == 0 || start >= at {
        return start;
    }
    let skip = if w.at(start) == Ok(Some(b'u')) { 5 } else { 1 };
    (start + skip).min(at)
}

/// At least two labels, none empty or dash-edged, a final label of two or
/// more letters.
fn valid_domain(domain: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in domain.split(|&b| b == b'.') {
        let edged = label.first() == Some(&b'-') || label.last() == Some(&b'-');
        if label.is_empty() || edged || label.len() > 63 {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2 && last.len() >= 2 && last.iter().all(u8::is_ascii_alphabetic)
}
