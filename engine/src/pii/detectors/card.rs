//! Payment card numbers.
//!
//! Matches 13–19 digits, either unbroken or grouped with one kind of
//! single separator (space or dash) in a card layout (`4-4-4-4`,
//! `4-4-4-4-3`, `4-4-4-1..4`, Amex `4-6-5`, Diners `4-6-4`), with a known
//! brand prefix and length, and a valid Luhn check digit. Brands: Visa
//! (4; 13, 16, 19), Mastercard (51–55, 2221–2720; 16), Amex (34, 37; 15),
//! Discover (6011, 644–649, 65), JCB (3528–3589), Diners (300–305, 3095,
//! 36, 38, 39), UnionPay (62), Maestro (50, 56–58, 6304, 6759, 676x),
//! Mir (2200–2204).
//!
//! Deliberately not matched: numbers glued to letters or other digit
//! groups, longer digit runs (20+), unknown prefixes, failing Luhn, mixed
//! separators. JSON numbers are not strings, so JSON mode leaves them.

// Digit and group buffers are indexed by counts the loop caps below their length before every write; hot detector path.
#![allow(clippy::indexing_slicing)]

use crate::pii::config::PiiType;
use crate::pii::window::{Found, Step, Win};

const MAX_SPAN: usize = 24;

fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'-'
}

/// Tries a card number starting at `p`.
pub(crate) fn detect(w: &Win, p: usize) -> Step<Option<Found>> {
    if !super::number_left_clear(w, p) {
        return Ok(None);
    }
    let w = w.limit(p + MAX_SPAN);
    let mut digits = [0u8; 19];
    let mut nd = 0;
    let mut groups = [0u8; 8];
    let mut ng = 0;
    let mut sep = None;
    let mut i = p;
    loop {
        let mut len = 0;
        while let Some(b) = w.at(i)?.filter(u8::is_ascii_digit) {
            if nd == digits.len() {
                return Ok(None);
            }
            digits[nd] = b - b'0';
            nd += 1;
            len += 1;
            i += 1;
        }
        if ng == groups.len() {
            return Ok(None);
        }
        groups[ng] = len;
        ng += 1;
        match w.at(i)? {
            Some(s) if is_sep(s) && sep.is_none_or(|x| x == s) => {
                if !w.is(i + 1, |b| b.is_ascii_digit())? {
                    break;
                }
                sep = Some(s);
                i += 1;
            }
            _ => break,
        }
    }
    if !super::number_right_clear(&w, i, is_sep)? {
        return Ok(None);
    }
    let digits = &digits[..nd];
    let ok =
        (13..=19).contains(&nd) && layout_ok(&groups[..ng]) && brand_ok(digits) && luhn_ok(digits);
    Ok(ok.then(|| Found::new(p, i, PiiType::Card)))
}

fn layout_ok(groups: &[u8]) -> bool {
    match groups {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [body @ .., last] => {
            body.len() >= 3 && body.iter().all(|&g| g == 4) && (1..=4).contains(last)
        }
        [] => false,
    }
}

fn prefix(d: &[u8], n: usize) -> u32 {
    d.iter().take(n).fold(0, |a, &x| a * 10 + x as u32)
}

fn brand_ok(d: &[u8]) -> bool {
    let len = d.len();
    let (p1, p2, p3, p4) = (prefix(d, 1), prefix(d, 2), prefix(d, 3), prefix(d, 4));
    let long = (16..=19).contains(&len);
    match p1 {
        4 => matches!(len, 13 | 16 | 19),
        5 if (51..=55).contains(&p2) => len == 16,
        5 => matches!(p2, 50 | 56..=58) && (12..=19).contains(&len),
        2 if (2221..=2720).contains(&p4) => len == 16,
        2 => (2200..=2204).contains(&p4) && long,
        3 if p2 == 34 || p2 == 37 => len == 15,
        3 if (3528..=3589).contains(&p4) => long,
        3 => {
            ((300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39))
                && (14..=19).contains(&len)
        }
        6 if p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) => long,
        6 if p2 == 62 => long,
        6 => (p4 == 6304 || p4 == 6759 || (6760..=6769).contains(&p4)) && (12..=19).contains(&len),
        _ => false,
    }
}

/// The Luhn mod-10 check.
pub(crate) fn luhn_ok(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = x as u32;
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}
