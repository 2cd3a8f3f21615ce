//! PEM private-key blocks.
//!
//! Matches from `-----BEGIN <LABEL>-----` to the matching
//! `-----END <LABEL>-----`, where the label (at most 48 bytes of
//! uppercase letters, digits and spaces) ends in `PRIVATE KEY` (`RSA`,
//! `EC`, `ENCRYPTED`, `OPENSSH`, plain PKCS#8 …). The body may hold real
//! newlines or, in raw JSON, `\n` escapes; it is not validated.
//!
//! The whole block must fit in [`MAX_BLOCK`] bytes (a 8192-bit RSA key is
//! about 6.5 KiB); longer or unterminated blocks are not matched (the
//! stream does not hold back more than that for them). Public keys and
//! certificates are not matched.

use memchr::memmem;

use crate::pii::config::PiiType;
use crate::pii::window::{Found, Step, Win};

/// Longest block matched, in bytes.
pub(crate) const MAX_BLOCK: usize = 16 * 1024;
const BEGIN: &[u8] = b"-----BEGIN ";
const MAX_LABEL: usize = 48;

/// Tries a block at `p` (where `-----BEGIN ` was found).
pub(crate) fn detect(w: &Win, p: usize) -> Step<Option<Found>> {
    let w = w.limit(p + MAX_BLOCK);
    let label_at = p + BEGIN.len();
    let n = w.run(label_at, MAX_LABEL + 1, |b| {
        b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' '
    })?;
    let label = w.slice(label_at, label_at + n);
    if n > MAX_LABEL || !label.ends_with(b"PRIVATE KEY") {
        return Ok(None);
    }
    let body = label_at + n;
    for k in 0..5 {
        if w.at(body + k)? != Some(b'-') {
            return Ok(None);
        }
    }
    let mut needle = Vec::with_capacity(label.len() + 14);
    needle.extend_from_slice(b"-----END ");
    needle.extend_from_slice(label);
    needle.extend_from_slice(b"-----");
    let (rest, more) = w.ahead(body + 5);
    match memmem::find(rest, &needle) {
        Some(k) => Ok(Some(Found::new(
            p,
            body + 5 + k + needle.len(),
            PiiType::PrivateKey,
        ))),
        None if more => Err(crate::pii::window::NeedMore),
        None => Ok(None),
    }
}
