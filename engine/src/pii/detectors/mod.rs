//! The detectors. Each one is a hand-written byte scanner that runs in
//! time linear in the bytes it reads, never backtracks across the input,
//! and reads only through a [`Win`](super::window::Win), so its reach is
//! bounded and its answer is the same however the input was chunked.

pub(crate) mod aws;
pub(crate) mod card;
pub(crate) mod email;
pub(crate) mod iban;
pub(crate) mod ip;
pub(crate) mod pem;
pub(crate) mod phone;
pub(crate) mod ssn;
pub(crate) mod terms;
pub(crate) mod tokens;

use super::window::{is_word, Step, Win};

/// A number may start at `p`: not glued to a word, not the continuation
/// of a dotted, signed or separated digit sequence.
pub(crate) fn number_left_clear(w: &Win, p: usize) -> bool {
    if !w.left_ok(p) {
        return false;
    }
    match w.before(p) {
        Some(b'+' | b'/' | b'$' | b'#') => false,
        Some(b'.' | b'-' | b' ' | b',' | b':') => {
            !w.before(p - 1).is_some_and(|c| c.is_ascii_digit())
        }
        _ => true,
    }
}

/// A number may end at `i`: no word byte or `@` follows, and no
/// separator (or `.`/`,`) followed by another digit.
pub(crate) fn number_right_clear(w: &Win, i: usize, is_sep: impl Fn(u8) -> bool) -> Step<bool> {
    match w.at(i)? {
        None => Ok(true),
        Some(b) if is_word(b) || b == b'@' => Ok(false),
        Some(b) if is_sep(b) || matches!(b, b'.' | b',' | b'-' | b':') => {
            Ok(!w.is(i + 1, |c| c.is_ascii_digit())?)
        }
        Some(_) => Ok(true),
    }
}
