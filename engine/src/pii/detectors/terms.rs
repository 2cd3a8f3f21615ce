//! Custom terms: words or phrases from the configuration, matched ASCII
//! case-insensitively (via `aho-corasick`) as whole words: the bytes
//! around a match must not be ASCII letters, digits or `_` (only checked
//! on a side where the term itself ends in such a byte, so `C++` works).
//! Non-ASCII letters do not count as word bytes; case folding is ASCII
//! only. When terms overlap, the longest one starting first is tried.

use crate::pii::config::PiiType;
use crate::pii::window::{is_word, Found, Step, Win};

/// Tries the term occupying `p..end`.
pub(crate) fn detect(w: &Win, p: usize, end: usize) -> Step<Option<Found>> {
    let first = w.at(p)?;
    let last = w.at(end.saturating_sub(1))?;
    if first.is_some_and(is_word) && !w.left_ok(p) {
        return Ok(None);
    }
    if last.is_some_and(is_word) && w.at(end)?.is_some_and(is_word) {
        return Ok(None);
    }
    Ok(Some(Found::new(p, end, PiiType::Custom)))
}
