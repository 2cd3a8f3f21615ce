//! IP addresses.
//!
//! IPv4: four decimal octets 0–255 without leading zeros (`010` is
//! ambiguous between octal and decimal, so `10.010.0.1` is not matched),
//! not part of a longer dotted sequence (`1.2.3.4.5`, `v1.2.3.4` glued to
//! a word). Version strings with exactly four parts (`1.2.3.4`) are valid
//! addresses and are matched; three-part versions never are.
//!
//! IPv6: full form (eight groups of 1–4 hex digits), compressed form with
//! one `::` (fewer groups), and an embedded IPv4 tail (`::ffff:1.2.3.4`).
//! To keep `12:30:45`, MAC addresses (six groups) and C++/Rust paths
//! (`std::vec`, `a::b`) out, an address without `::` needs exactly eight
//! groups, every address needs at least one group and one decimal digit,
//! and it cannot be glued to a word, a `:` or a dotted number. A final
//! `.`, or a `:` followed by whitespace, is punctuation (`… at ::1.`,
//! `fe80::1: reachable`).

use crate::pii::config::PiiType;
use crate::pii::window::{is_word, Found, Step, Win};

/// Tries an IPv4 address starting at `p`.
pub(crate) fn detect_v4(w: &Win, p: usize) -> Step<Option<Found>> {
    if !w.left_ok(p) || matches!(w.before(p), Some(b'.')) {
        return Ok(None);
    }
    let w = w.limit(p + 17);
    let Some(end) = octets(&w, p)? else {
        return Ok(None);
    };
    if !v4_right_clear(&w, end)? {
        return Ok(None);
    }
    Ok(Some(Found::new(p, end, PiiType::Ip)))
}

/// Parses `a.b.c.d` at `i`; returns the end.
fn octets(w: &Win, mut i: usize) -> Step<Option<usize>> {
    for k in 0..4 {
        if k > 0 {
            if w.at(i)? != Some(b'.') {
                return Ok(None);
            }
            i += 1;
        }
        let n = w.run(i, 4, |b| b.is_ascii_digit())?;
        if n == 0 || n > 3 {
            return Ok(None);
        }
        let s = w.slice(i, i + n);
        if s.len() != n || (n > 1 && s.first() == Some(&b'0')) {
            return Ok(None);
        }
        let v = s.iter().fold(0u32, |a, &b| a * 10 + (b - b'0') as u32);
        if v > 255 {
            return Ok(None);
        }
        i += n;
    }
    Ok(Some(i))
}

fn v4_right_clear(w: &Win, end: usize) -> Step<bool> {
    match w.at(end)? {
        Some(b) if is_word(b) || b == b'@' => Ok(false),
        Some(b'.') => Ok(!w.is(end + 1, is_word)?),
        _ => Ok(true),
    }
}

/// Tries an IPv6 address around the `:` at `p` (up to four hex digits of
/// the first group precede it).
pub(crate) fn detect_v6(w: &Win, p: usize) -> Step<Option<Found>> {
    let mut start = p;
    while p - start < 4 && w.before(start).is_some_and(|b| b.is_ascii_hexdigit()) {
        start -= 1;
    }
    match w.before(start) {
        Some(b) if is_word(b) || b == b':' || b == b'.' => return Ok(None),
        _ => {}
    }
    if !w.left_ok(start) {
        return Ok(None);
    }
    let w = w.limit(start + 48);
    let mut i = start;
    let mut groups = 0usize;
    let mut double = false;
    let mut digit = false;
    loop {
        if w.at(i)? == Some(b':') && w.at(i + 1)? == Some(b':') {
            if double {
                return Ok(None);
            }
            double = true;
            i += 2;
            if !w.is(i, |b| b.is_ascii_hexdigit())? {
                break;
            }
            continue;
        }
        let n = w.run(i, 5, |b| b.is_ascii_hexdigit())?;
        if n == 0 || n > 4 {
            return Ok(None);
        }
        if w.at(i + n)? == Some(b'.') {
            // Embedded IPv4 tail: counts as two groups and ends the address.
            // Otherwise the dot is punctuation (`… ::1.`); a dot followed
            // by a digit is rejected by the right-boundary check below.
            if let Some(end) = octets(&w, i)? {
                if groups > 6 {
                    return Ok(None);
                }
                groups += 2;
                digit = true;
                i = end;
                break;
            }
        }
        digit |= w.slice(i, i + n).iter().any(u8::is_ascii_digit);
        groups += 1;
        i += n;
        if groups > 8 {
            return Ok(None);
        }
        if w.at(i)? == Some(b':') {
            if w.at(i + 1)? == Some(b':') {
                continue;
            }
            if w.is(i + 1, |b| b.is_ascii_hexdigit())? {
                i += 1;
                continue;
            }
        }
        break;
    }
    let shape_ok = if double {
        (1..=7).contains(&groups)
    } else {
        groups == 8
    };
    if !shape_ok || !digit {
        return Ok(None);
    }
    match w.at(i)? {
        Some(b) if is_word(b) || b == b'@' => return Ok(None),
        // A colon ends the address only as punctuation (`::1: up`), not
        // glued to what follows (`::1:x`, `::1::`).
        Some(b':') if !w.is(i + 1, |b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))? => {
            return Ok(None)
        }
        Some(b'.') if w.is(i + 1, |b| b.is_ascii_digit())? => return Ok(None),
        _ => {}
    }
    Ok(Some(Found::new(start, i, PiiType::Ip)))
}
