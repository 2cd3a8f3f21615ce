//! Payment cards, IBANs and US social security numbers.

use crate::rng::Rng;

/// The Luhn check digit completing `body`.
pub fn luhn_digit(body: &[u8]) -> u8 {
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 0 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    ((10 - sum % 10) % 10) as u8
}

/// Card digits (Luhn-valid) with a brand prefix, and the brand's layout.
pub fn card_digits(rng: &mut Rng) -> (Vec<u8>, &'static [usize]) {
    const G16: &[usize] = &[4, 4, 4, 4];
    let (prefix, len, layout): (String, usize, &'static [usize]) = match rng.below(10) {
        0 | 1 => ("4".into(), 16, G16),
        2 => (format!("5{}", rng.range(1, 5)), 16, G16),
        3 => (format!("{}", rng.range(2221, 2720)), 16, G16),
        4 => (format!("3{}", rng.pick(&[4, 7])), 15, &[4, 6, 5]),
        5 => (rng.pick(&["6011", "65", "644", "649"]).to_string(), 16, G16),
        6 => (format!("{}", rng.range(3528, 3589)), 16, G16),
        7 => ("36".into(), 14, &[4, 6, 4]),
        8 => ("62".into(), 16, G16),
        _ => ("4".into(), 13, &[13]),
    };
    let mut d: Vec<u8> = prefix.bytes().map(|b| b - b'0').collect();
    while d.len() < len - 1 {
        d.push(rng.below(10) as u8);
    }
    d.push(luhn_digit(&d));
    (d, layout)
}

/// Renders card digits unbroken or grouped by the brand layout with one
/// separator.
pub fn render_card(rng: &mut Rng, d: &[u8], layout: &[usize]) -> String {
    let digits: String = d.iter().map(|&x| char::from(b'0' + x)).collect();
    let sep = match rng.below(10) {
        0..=3 => " ",
        4..=5 => "-",
        _ => "",
    };
    if sep.is_empty() || layout.len() == 1 {
        return digits;
    }
    let mut out = String::new();
    let mut at = 0;
    for (k, g) in layout.iter().enumerate() {
        if k > 0 {
            out.push_str(sep);
        }
        out.push_str(&digits[at..at + g]);
        at += g;
    }
    out
}

/// A valid payment card number in a customary layout.
pub fn card(rng: &mut Rng) -> String {
    let (d, layout) = card_digits(rng);
    render_card(rng, &d, layout)
}

/// A US SSN with an issuable area, group and serial.
pub fn ssn(rng: &mut Rng) -> String {
    let area = loop {
        let a = rng.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    let group = rng.range(1, 99);
    let serial = rng.range(1, 9999);
    let sep = if rng.chance(85) { "-" } else { " " };
    format!("{area:03}{sep}{group:02}{sep}{serial:04}")
}

/// A US SSN with an issuable area, group and serial, written as nine
/// digits without separators (only ever placed right after a label).
pub fn ssn_bare(rng: &mut Rng) -> String {
    ssn(rng).replace(['-', ' '], "")
}

/// Country, total length, and BBAN pattern (`a` letter, `n` digit, `c`
/// alphanumeric) of the IBANs generated.
const IBAN_FORMATS: &[(&str, &str)] = &[
    ("DE", "nnnnnnnnnnnnnnnnnn"),
    ("GB", "aaaannnnnnnnnnnnnn"),
    ("FR", "nnnnnnnnnnnnnnnnnnnnnnn"),
    ("ES", "nnnnnnnnnnnnnnnnnnnn"),
    ("IT", "annnnnnnnnnnnnnnnnnnnnn"),
    ("NL", "aaaannnnnnnnnn"),
    ("BE", "nnnnnnnnnnnn"),
    ("CH", "nnnnnnnnnnnnnnnnn"),
    ("AT", "nnnnnnnnnnnnnnnn"),
    ("IE", "aaaannnnnnnnnnnnnn"),
    ("PL", "nnnnnnnnnnnnnnnnnnnnnnnn"),
    ("PT", "nnnnnnnnnnnnnnnnnnnnn"),
    ("SE", "nnnnnnnnnnnnnnnnnnnn"),
    ("NO", "nnnnnnnnnnn"),
    ("DK", "nnnnnnnnnnnnnn"),
    ("FI", "nnnnnnnnnnnnnn"),
    ("LU", "nnnccccccccccccc"),
    ("MT", "aaaannnnncccccccccccccccccc"),
    ("SA", "nncccccccccccccccccc"),
    ("AE", "nnnnnnnnnnnnnnnnnnn"),
];

/// ISO 7064 mod-97 of an IBAN rearranged (BBAN + country + check).
pub fn mod97(rearranged: &str) -> u32 {
    rearranged.bytes().fold(0u32, |r, b| {
        if b.is_ascii_digit() {
            (r * 10 + u32::from(b - b'0')) % 97
        } else {
            (r * 100 + u32::from(b.to_ascii_uppercase() - b'A' + 10)) % 97
        }
    })
}

/// An IBAN (electronic form) with correct length and check digits.
pub fn iban_compact(rng: &mut Rng) -> String {
    let (cc, pat) = *rng.pick(IBAN_FORMATS);
    let bban: String = pat
        .bytes()
        .map(|p| match p {
            b'a' => char::from(b'A' + rng.below(26) as u8),
            b'n' => char::from(b'0' + rng.below(10) as u8),
            _ => {
                if rng.chance(30) {
                    char::from(b'A' + rng.below(26) as u8)
                } else {
                    char::from(b'0' + rng.below(10) as u8)
                }
            }
        })
        .collect();
    let check = 98 - mod97(&format!("{bban}{cc}00"));
    format!("{cc}{check:02}{bban}")
}

/// Groups an IBAN by four characters (its print form).
pub fn group4(compact: &str) -> String {
    compact
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A valid IBAN, electronic or print form.
pub fn iban(rng: &mut Rng) -> String {
    let c = iban_compact(rng);
    if rng.chance(50) {
        group4(&c)
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Registered IBAN lengths of the countries generated.
    const REGISTRY: &[(&str, usize)] = &[
        ("DE", 22),
        ("GB", 22),
        ("FR", 27),
        ("ES", 24),
        ("IT", 27),
        ("NL", 18),
        ("BE", 16),
        ("CH", 21),
        ("AT", 20),
        ("IE", 22),
        ("PL", 28),
        ("PT", 25),
        ("SE", 24),
        ("NO", 15),
        ("DK", 18),
        ("FI", 18),
        ("LU", 20),
        ("MT", 31),
        ("SA", 24),
        ("AE", 23),
    ];

    #[test]
    fn ibans_have_registered_length_and_check() {
        let mut rng = Rng::new(1);
        for _ in 0..2000 {
            let iban = iban_compact(&mut rng);
            let want = REGISTRY
                .iter()
                .find(|(c, _)| iban.starts_with(c))
                .unwrap()
                .1;
            assert_eq!(iban.len(), want, "{iban}");
            let rearranged = format!("{}{}", &iban[4..], &iban[..4]);
            assert_eq!(mod97(&rearranged), 1, "{iban}");
        }
    }

    #[test]
    fn cards_pass_luhn() {
        let mut rng = Rng::new(2);
        for _ in 0..2000 {
            let (d, layout) = card_digits(&mut rng);
            assert_eq!(luhn_digit(&d[..d.len() - 1]), d[d.len() - 1]);
            assert_eq!(layout.iter().sum::<usize>(), d.len());
        }
        // A known-valid test number.
        assert_eq!(
            luhn_digit(&[4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
            1
        );
    }

    #[test]
    fn ssns_follow_issuance_rules() {
        let mut rng = Rng::new(3);
        for _ in 0..2000 {
            let s = ssn(&mut rng);
            let area: u32 = s[..3].parse().unwrap();
            assert!(area != 0 && area != 666 && area < 900, "{s}");
            assert_ne!(&s[4..6], "00");
            assert_ne!(&s[7..], "0000");
        }
    }
}
