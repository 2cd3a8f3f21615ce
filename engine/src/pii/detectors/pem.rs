//! PEM private-key blocks.
//!
//! Matches from `-----BEGIN <LABEL>-----` to the matching
//! `-----END <LABEL>-----`, where the label (at most 48 bytes of
//! uppercase letters, digits and spaces) ends in `PRIVATE KEY` (`RSA`,
//! `EC`, `ENCRYPTED`, `OPENSSH`, plain PKCS#8 …). The body may hold real
//! newlines or, in raw JSON, `\n` escapes; it is not validated.
//!
//! The block is confirmed by its header alone, replaced at once, and
//! runs over the body (see [`Tail::Pem`]) to the first `-----END
//! <label>-----` line, however long it is; an unterminated block ends at
//! the first byte that cannot be part of a PEM body (or at the end of the
//! text). Public keys and certificates are not matched.

use crate::pii::config::PiiType;
use crate::pii::open::Tail;
use crate::pii::window::{Found, Step, Win};

const BEGIN: &[u8] = b"-----BEGIN ";
const MAX_LABEL: usize = 48;

/// Tries a block at `p` (where `-----BEGIN ` was found).
pub(crate) fn detect(w: &Win, p: usize) -> Step<Option<Found>> {
    let w = w.limit(p + BEGIN.len() + MAX_LABEL + 6);
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
    Ok(Some(Found::open(
        p,
        body + 5,
        PiiType::PrivateKey,
        Tail::Pem,
    )))
}
