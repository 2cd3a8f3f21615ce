//! Telephone numbers.
//!
//! Matches, with single spaces, dots or dashes between digit groups:
//! - international: `+` country code (1–3 digits, not starting with 0),
//!   8–15 digits in total (E.164), groups of 1–8 digits, optionally one
//!   parenthesised group: `+1 (415) 555-0132`, `+44 20 7946 0958`,
//!   `+49 30 901820`, `+33 1 23 45 67 89`, `+91 98765 43210`, `+4930901820`,
//!   and the country code then the national number unbroken
//!   (`+91 9876543210`, `+44 7700900123`; at most 12 digits after it);
//! - US national: `(415) 555-0132`, `415-555-0132`, `415.555.0132`,
//!   `415 555 0132`, `1-800-555-0199` (area and exchange start with 2–9);
//! - trunk-prefix national (UK, DE, FR, IN, …): a first group of 2–6
//!   digits starting with a single `0`, then 1–4 groups of 2–8 digits,
//!   9–12 digits in total, one kind of separator: `020 7946 0958`,
//!   `07700 900123`, `030 901820`, `01 23 45 67 89`, `098765 43210`;
//! - Indian mobile without trunk prefix: `98765 43210`.
//!
//! A `(` before the first digit is a US area-code parenthesis when the
//! number reads that way, and otherwise plain punctuation, so numbers in
//! parentheses (`(07700 900123)`, `(415-555-0132)`) are found too; the
//! country code may be parenthesised as well (`(+44) 20 7946 0958`).
//!
//! Deliberately not matched: plain digit runs without a `+` (epoch
//! timestamps, order numbers, national numbers written without
//! separators), dates (`2024-01-15`), versions (`1.2.3`), times, IPs
//! (group shapes differ), UUIDs (letters around the digits), card numbers
//! (four groups of four fit no template), anything glued to letters or
//! digits, numbers followed by a separator and more digits, and the SSN
//! layout `ddd-dd-dddd` (also for never-issued SSNs such as `087-32-0000`).

// Group tables are indexed by a group count the parser caps below their length before every write (see `MAX_GROUPS`); hot detector path.
#![allow(clippy::indexing_slicing)]

use crate::pii::config::PiiType;
use crate::pii::window::{is_word, Found, Step, Win};

/// Longest phone span read, in bytes.
const MAX_SPAN: usize = 32;
const MAX_GROUPS: usize = 8;

#[derive(Default)]
struct Shape {
    plus: bool,
    groups: [u8; MAX_GROUPS],
    firsts: [u8; MAX_GROUPS],
    n: usize,
    /// Separator after each group (`b')'` for a closing parenthesis).
    seps: [u8; MAX_GROUPS],
    paren: Option<usize>,
    digits: usize,
    /// Second digit of the first group (`00` is an international prefix).
    second: u8,
}

fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.')
}

/// Tries a phone number whose first digit run starts at `p`. A `(` right
/// before it opens a US area code (`(415) 555-0132`) when that reading
/// works, and is plain punctuation otherwise (`(020 7946 0958)`).
pub(crate) fn detect(w: &Win, p: usize) -> Step<Option<Found>> {
    let first_paren = match w.before(p) {
        Some(b'(') => Some(Lead::AreaParen),
        Some(b'+') if p >= 2 && w.before(p - 1) == Some(b'(') => Some(Lead::CodeParen),
        _ => None,
    };
    if let Some(lead) = first_paren {
        if let Some(f) = parse(w, p, lead)? {
            return Ok(Some(f));
        }
    }
    parse(w, p, Lead::Plain)
}

/// How the text right before the first digit run is read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Lead {
    /// `+` opens an international number, anything else is a boundary.
    Plain,
    /// `(415) 555-0132`: the `(` opens the first group.
    AreaParen,
    /// `(+44) 20 7946 0958`: the `(` opens the country code.
    CodeParen,
}

/// Parses the number whose first digit run starts at `p`.
fn parse(w: &Win, p: usize, lead: Lead) -> Step<Option<Found>> {
    let mut shape = Shape::default();
    let mut start = p;
    let mut open_first = false;
    if lead == Lead::AreaParen {
        open_first = true;
        start = p - 1;
    } else if lead == Lead::CodeParen {
        open_first = true;
        shape.plus = true;
        start = p - 2;
    } else if w.before(p) == Some(b'+') {
        shape.plus = true;
        start = p - 1;
    }
    if !left_clear(w, start) {
        return Ok(None);
    }
    let w = w.limit(start + MAX_SPAN + 2);
    let mut i = p;
    let mut in_paren = open_first;
    if open_first {
        shape.paren = Some(0);
    }
    loop {
        let len = w.run(i, 16, |b| b.is_ascii_digit())?;
        // Only an international number has a group over 8 digits: all of
        // it unbroken, or the whole national number after the country code
        // (`+91 9876543210`; `international` rejects any group after it).
        let long_ok = shape.plus && (shape.n == 0 && len <= 15 || shape.n == 1 && len <= 12);
        if len == 0 || (len > 8 && !long_ok) || shape.n == MAX_GROUPS {
            return Ok(None);
        }
        let idx = shape.n;
        shape.groups[idx] = len as u8;
        shape.firsts[idx] = w.at(i)?.unwrap_or(b'0');
        if idx == 0 {
            shape.second = w.at(i + 1)?.unwrap_or(b'0');
        }
        shape.n += 1;
        shape.digits += len;
        i += len;
        // Separator, then the next group must start with a digit. A `(`
        // opens a group only when a digit follows it: `+31 6 12878407
        // (mobile)` ends before the note.
        let b = w.at(i)?;
        let (sep, adv, opens) = match b {
            Some(b')') if in_paren => {
                in_paren = false;
                if w.at(i + 1)? == Some(b' ') || w.at(i + 1)? == Some(b'-') {
                    (b')', 2, false)
                } else {
                    (b')', 1, false)
                }
            }
            Some(s) if is_sep(s) => {
                if w.at(i + 1)? == Some(b'(') && shape.paren.is_none() && s == b' ' {
                    (s, 2, true)
                } else {
                    (s, 1, false)
                }
            }
            Some(b'(') if shape.paren.is_none() && shape.plus => (b' ', 1, true),
            _ => break,
        };
        if !w.is(i + adv, |b| b.is_ascii_digit())? {
            if sep == b')' {
                // `(415)` followed by something else ends the number here.
                shape.seps[idx] = b')';
                i += 1;
                break;
            }
            break;
        }
        if opens {
            in_paren = true;
            shape.paren = Some(idx + 1);
        }
        shape.seps[idx] = sep;
        i += adv;
    }
    if in_paren {
        return Ok(None);
    }
    // Right boundary: no word byte, no `@`, no separator + digit.
    let next = w.at(i)?;
    if next.is_some_and(|b| is_word(b) || b == b'@') {
        return Ok(None);
    }
    if next.is_some_and(is_sep) && w.is(i + 1, |b| b.is_ascii_digit())? {
        return Ok(None);
    }
    Ok(valid(&shape).then(|| Found::new(start, i, PiiType::Phone)))
}

/// No word byte, `+` or dotted/dashed digit right before the number.
fn left_clear(w: &Win, start: usize) -> bool {
    if !w.left_ok(start) {
        return false;
    }
    match w.before(start) {
        Some(b'+' | b'.' | b'/' | b'$' | b'#') => false,
        Some(b) if is_sep(b) || b == b'(' => !w
            .before(start - 1)
            .is_some_and(|c| c.is_ascii_digit() || c == b'+'),
        _ => true,
    }
}

fn valid(s: &Shape) -> bool {
    let groups = &s.groups[..s.n];
    let seps = &s.seps[..s.n.saturating_sub(1)];
    if s.plus {
        return international(s, groups);
    }
    us(s, groups, seps) || trunk(s, groups, seps) || india_mobile(s, groups, seps)
}

fn international(s: &Shape, groups: &[u8]) -> bool {
    if !(8..=15).contains(&s.digits) || s.firsts[0] == b'0' {
        return false;
    }
    match groups {
        [_] => true,
        [first, national] => *first <= 3 && *national <= 12,
        [first, rest @ ..] => *first <= 3 && rest.iter().all(|&g| g <= 8),
        [] => false,
    }
}

fn us(s: &Shape, groups: &[u8], seps: &[u8]) -> bool {
    // An optional leading `1` trunk digit, then area, exchange, line.
    let skip = match groups {
        [1, 3, 3, 4] if s.firsts[0] == b'1' => 1,
        [3, 3, 4] => 0,
        _ => return false,
    };
    let firsts = s.firsts.get(skip..).unwrap_or(&[]);
    let seps = seps.get(skip..).unwrap_or(&[]);
    if !matches!(firsts.first(), Some(b'2'..=b'9')) || !matches!(firsts.get(1), Some(b'2'..=b'9')) {
        return false;
    }
    match s.paren {
        Some(p) if p == skip => {
            seps.first() == Some(&b')') && matches!(seps.get(1), Some(b' ' | b'-'))
        }
        Some(_) => false,
        None => seps.iter().all(|&x| Some(&x) == seps.first()) && !seps.contains(&b')'),
    }
}

fn trunk(s: &Shape, groups: &[u8], seps: &[u8]) -> bool {
    if s.paren.is_some() || groups.len() < 2 || groups.len() > 5 {
        return false;
    }
    let first_ok = groups.first().is_some_and(|g| (2..=6).contains(g))
        && s.firsts[0] == b'0'
        && s.second != b'0';
    let rest_ok = groups[1..].iter().all(|&g| (2..=8).contains(&g));
    // `ddd-dd-dddd` is the SSN layout (never-issued ones included), not
    // a national phone layout.
    let ssn_shaped = groups == [3, 2, 4];
    let one_sep = seps.iter().all(|&x| Some(&x) == seps.first());
    first_ok && rest_ok && !ssn_shaped && one_sep && (9..=12).contains(&s.digits)
}

fn india_mobile(s: &Shape, groups: &[u8], seps: &[u8]) -> bool {
    groups == [5, 5] && seps == [b' '] && matches!(s.firsts[0], b'6'..=b'9') && s.paren.is_none()
}
