//! US social security numbers.
//!
//! Matches `AAA-GG-SSSS` and `AAA GG SSSS` (one kind of separator),
//! excluding area `000`, `666` and `900`–`999`, group `00` and serial
//! `0000`, which are never issued.
//!
//! Deliberately not matched: unbroken 9-digit runs (`123456789`): far too
//! many order numbers, ids and amounts look like that; numbers glued to
//! words or to further digit groups.

use crate::pii::config::PiiType;
use crate::pii::window::{Found, Step, Win};

/// Tries an SSN starting at `p`.
pub(crate) fn detect(w: &Win, p: usize) -> Step<Option<Found>> {
    if !super::number_left_clear(w, p) {
        return Ok(None);
    }
    let w = w.limit(p + 13);
    let digit = |i: usize| -> Step<Option<u32>> {
        Ok(w.at(i)?
            .filter(u8::is_ascii_digit)
            .map(|b| (b - b'0') as u32))
    };
    let mut v = [0u32; 9];
    let layout = [0, 1, 2, 4, 5, 7, 8, 9, 10];
    let sep = match w.at(p + 3)? {
        Some(s @ (b'-' | b' ')) => s,
        _ => return Ok(None),
    };
    if w.at(p + 6)? != Some(sep) {
        return Ok(None);
    }
    for (slot, off) in v.iter_mut().zip(layout) {
        match digit(p + off)? {
            Some(d) => *slot = d,
            None => return Ok(None),
        }
    }
    let end = p + 11;
    if !super::number_right_clear(&w, end, |b| b == b'-' || b == b' ')? {
        return Ok(None);
    }
    let area = v[0] * 100 + v[1] * 10 + v[2];
    let group = v[3] * 10 + v[4];
    let serial = v[5] * 1000 + v[6] * 100 + v[7] * 10 + v[8];
    let ok = area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
    Ok(ok.then(|| Found::new(p, end, PiiType::Ssn)))
}
