//! International bank account numbers.
//!
//! Matches two uppercase country letters, two check digits and the BBAN
//! (uppercase letters and digits), either unbroken or with single spaces
//! after every four characters (`GB82 WEST 1234 5698 7654 32`), when the
//! total length equals the country's registered length and the ISO 7064
//! mod-97 check gives 1.
//!
//! Deliberately not matched: lowercase IBANs, unknown countries, other
//! spacings, anything glued to a word.

use crate::pii::config::PiiType;
use crate::pii::window::{is_word, Found, Step, Win};

/// Country code and IBAN length, from the IBAN registry.
const LENGTHS: &[(&[u8; 2], u8)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// Longest IBAN, in characters.
const MAX_LEN: usize = 34;

fn is_bban(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

/// Tries an IBAN whose check digits start at `p` (the country code is the
/// two bytes before).
pub(crate) fn detect(w: &Win, p: usize) -> Step<Option<Found>> {
    let Some(start) = p.checked_sub(2) else {
        return Ok(None);
    };
    let (Some(c1), Some(c2)) = (w.before(start + 1), w.before(p)) else {
        return Ok(None);
    };
    if !c1.is_ascii_uppercase() || !c2.is_ascii_uppercase() || !w.left_ok(start) {
        return Ok(None);
    }
    let Some(len) = LENGTHS
        .iter()
        .find(|(cc, _)| **cc == [c1, c2])
        .map(|&(_, l)| l as usize)
    else {
        return Ok(None);
    };
    let w = w.limit(start + MAX_LEN + MAX_LEN / 4 + 2);
    let mut chars = [0u8; MAX_LEN];
    chars[0] = c1;
    chars[1] = c2;
    let mut n = 2;
    let mut i = p;
    let spaced = w.at(p + 2)? == Some(b' ');
    while n < len {
        if spaced && n % 4 == 0 {
            if w.at(i)? != Some(b' ') {
                return Ok(None);
            }
            i += 1;
        }
        match w.at(i)? {
            Some(b) if is_bban(b) => {
                if let Some(slot) = chars.get_mut(n) {
                    *slot = b;
                }
                n += 1;
                i += 1;
            }
            _ => return Ok(None),
        }
    }
    if w.at(i)?.is_some_and(is_word) {
        return Ok(None);
    }
    if !chars[2].is_ascii_digit() || !chars[3].is_ascii_digit() {
        return Ok(None);
    }
    Ok(mod97_ok(chars.get(..len).unwrap_or(&[])).then(|| Found::new(start, i, PiiType::Iban)))
}

/// ISO 7064 mod 97-10 over the rearranged IBAN, letters as 10..35.
fn mod97_ok(iban: &[u8]) -> bool {
    let (head, tail) = iban.split_at(4.min(iban.len()));
    let mut r: u32 = 0;
    for &b in tail.iter().chain(head) {
        r = if b.is_ascii_digit() {
            (r * 10 + (b - b'0') as u32) % 97
        } else {
            (r * 100 + (b - b'A' + 10) as u32) % 97
        };
    }
    r == 1
}
