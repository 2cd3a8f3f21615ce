//! US social security numbers.
//!
//! Matches `AAA-GG-SSSS` and `AAA GG SSSS` (one kind of separator)
//! anywhere, and the nine digits unbroken (`123456789`) only right after
//! a label naming an SSN (`SSN: 123456789`, `"ssn": "123456789"`,
//! `social security number 123456789`, see [`label`](crate::pii::label)).
//! Area `000`, `666` and `900`–`999`, group `00` and serial `0000` are
//! never issued and never matched.
//!
//! Deliberately not matched: unlabelled 9-digit runs: far too many order
//! numbers, ids and amounts look like that; numbers glued to words or to
//! further digit groups.

use crate::pii::config::PiiType;
use crate::pii::label;
use crate::pii::window::{Found, Step, Win};

/// Tries an SSN starting at `p`.
pub(crate) fn detect(w: &Win, p: usize) -> Step<Option<Found>> {
    let sep = match w.limit(p + 4).at(p + 3)? {
        Some(s @ (b'-' | b' ')) => s,
        Some(d) if d.is_ascii_digit() => return bare(w, p),
        _ => return Ok(None),
    };
    if !super::number_left_clear(w, p) {
        return Ok(None);
    }
    let w = w.limit(p + 13);
    if w.at(p + 6)? != Some(sep) {
        return Ok(None);
    }
    let mut v = [0u8; 9];
    for (slot, off) in v.iter_mut().zip([0, 1, 2, 4, 5, 7, 8, 9, 10]) {
        match w.at(p + off)? {
            Some(d) if d.is_ascii_digit() => *slot = d,
            _ => return Ok(None),
        }
    }
    let end = p + 11;
    if !super::number_right_clear(&w, end, |b| b == b'-' || b == b' ')? {
        return Ok(None);
    }
    Ok(issuable(&v).then(|| Found::new(p, end, PiiType::Ssn)))
}

/// Nine digits unbroken at `p`, right after an SSN label.
fn bare(w: &Win, p: usize) -> Step<Option<Found>> {
    let lw = w.limit(p + 11);
    if lw.run(p, 10, |b| b.is_ascii_digit())? != 9 {
        return Ok(None);
    }
    let end = p + 9;
    // A space counts as a separator: `123456789 12` may be a longer number.
    if !super::number_right_clear(&lw, end, |b| b == b' ')? {
        return Ok(None);
    }
    let mut v = [0u8; 9];
    for (slot, &d) in v.iter_mut().zip(lw.slice(p, end)) {
        *slot = d;
    }
    let ok = issuable(&v) && label::ssn_label_before(w, p);
    Ok(ok.then(|| Found::new(p, end, PiiType::Ssn)))
}

/// The nine ASCII digits of an SSN form an issuable number.
pub(crate) fn issuable(d: &[u8; 9]) -> bool {
    let n = |r: std::ops::Range<usize>| {
        d.get(r)
            .unwrap_or(&[])
            .iter()
            .fold(0u32, |a, &b| a * 10 + u32::from(b.wrapping_sub(b'0')))
    };
    let (area, group, serial) = (n(0..3), n(3..5), n(5..9));
    d.iter().all(u8::is_ascii_digit)
        && area != 0
        && area != 666
        && area < 900
        && group != 0
        && serial != 0
}
