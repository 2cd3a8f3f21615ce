//! Hard negatives: strings that resemble sensitive values but are not,
//! which the scanner must leave alone.

use crate::rng::Rng;
use crate::values::finance::{card_digits, group4, iban_compact, luhn_digit};

/// One look-alike, chosen at random, as a short phrase.
pub fn hard_negative(rng: &mut Rng) -> String {
    match rng.below(30) {
        0 => format!(
            "created at epoch {}",
            rng.range(1_500_000_000, 1_800_000_000)
        ),
        1 => format!("ts={}", rng.range(1_500_000_000_000, 1_800_000_000_000)),
        2 => format!("Order #{}", rng.range(100_000_000, 999_999_999)),
        3 => format!(
            "invoice INV-{}-{:06}",
            rng.range(2019, 2026),
            rng.below(1_000_000)
        ),
        4 => uuid(rng),
        5 => format!(
            "version {}.{}.{}",
            rng.below(20),
            rng.below(30),
            rng.below(50)
        ),
        6 => format!(
            "v{}.{}.{}-rc.{}",
            rng.below(5),
            rng.below(20),
            rng.below(9),
            rng.range(1, 9)
        ),
        7 => format!(
            "{}-{:02}-{:02} {:02}:{:02}:{:02}",
            rng.range(2019, 2026),
            rng.range(1, 12),
            rng.range(1, 28),
            rng.below(24),
            rng.below(60),
            rng.below(60)
        ),
        8 => format!(
            "{:02}/{:02}/{}",
            rng.range(1, 28),
            rng.range(1, 12),
            rng.range(1990, 2026)
        ),
        9 => isbn(rng),
        10 => format!(
            "tracking 1Z{}{}",
            rng.alnum(6).to_ascii_uppercase(),
            rng.digits(10)
        ),
        11 => format!(
            "USPS {} {} {} {} {} {}",
            rng.digits(4),
            rng.digits(4),
            rng.digits(4),
            rng.digits(4),
            rng.digits(4),
            rng.digits(2)
        ),
        12 => format!(
            "${},{:03}.{:02}",
            rng.range(1, 99),
            rng.below(1000),
            rng.below(100)
        ),
        13 => bad_luhn_card(rng),
        14 => format!("ref {}", rng.range(100_000_000, 999_999_999)),
        15 => bad_ssn(rng),
        16 => bad_iban(rng),
        17 => format!("commit {}", rng.hex(40)),
        18 => format!("sha {}", rng.hex(7)),
        19 => {
            let n = rng.range(40, 90) as usize;
            format!("blob {}==", rng.b64(n))
        }
        20 => format!("sha256:{}", rng.hex(64)),
        21 => math(rng),
        22 => format!(
            "{:02}:{:02}:{:02}.{:03}",
            rng.below(24),
            rng.below(60),
            rng.below(60),
            rng.below(1000)
        ),
        23 => format!(
            "MAC {}",
            (0..6)
                .map(|_| rng.hex(2).to_ascii_uppercase())
                .collect::<Vec<_>>()
                .join(":")
        ),
        24 => format!(
            "{}x{}",
            rng.pick(&[1920, 1280, 3840]),
            rng.pick(&[1080, 720, 2160])
        ),
        25 => format!(
            "coordinates {}.{}, -{}.{}",
            rng.range(10, 60),
            rng.digits(4),
            rng.range(10, 130),
            rng.digits(4)
        ),
        26 => format!(
            "use std::collections::HashMap; a::b::c() took {} ms",
            rng.range(1, 9999)
        ),
        27 => format!(
            "ping @{} or mail user@localhost",
            rng.pick(&["oncall", "team-infra", "here"])
        ),
        28 => format!("pk_live_{} is the publishable key", rng.alnum(24)),
        _ => format!(
            "{} {} {}",
            rng.range(100, 999),
            rng.range(100, 999),
            rng.range(100, 999)
        ),
    }
}

/// A random version-4 UUID.
pub fn uuid(rng: &mut Rng) -> String {
    format!(
        "{}-{}-4{}-{}{}-{}",
        rng.hex(8),
        rng.hex(4),
        rng.hex(3),
        rng.pick(&["8", "9", "a", "b"]),
        rng.hex(3),
        rng.hex(12)
    )
}

fn isbn(rng: &mut Rng) -> String {
    let body: Vec<u32> = [9, 7, 8]
        .into_iter()
        .chain((0..9).map(|_| rng.below(10) as u32))
        .collect();
    let s: u32 = body
        .iter()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { *d } else { d * 3 })
        .sum();
    let check = (10 - s % 10) % 10;
    let d: String = body.iter().map(|d| char::from(b'0' + *d as u8)).collect();
    if rng.chance(50) {
        format!("ISBN {}{check}", d)
    } else {
        format!(
            "ISBN {}-{}-{}-{}-{check}",
            &d[..3],
            &d[3..4],
            &d[4..6],
            &d[6..]
        )
    }
}

fn bad_luhn_card(rng: &mut Rng) -> String {
    let (mut d, _) = card_digits(rng);
    let last = d.len() - 1;
    let good = luhn_digit(&d[..last]);
    d[last] = (good + 1 + rng.below(9) as u8) % 10;
    let s: String = d.iter().map(|&x| char::from(b'0' + x)).collect();
    if d.len() == 16 && rng.chance(50) {
        format!("{} {} {} {}", &s[..4], &s[4..8], &s[8..12], &s[12..])
    } else {
        s
    }
}

/// A US SSN in the usual layout that was never issued (area 000, 666 or
/// 9xx, group 00 or serial 0000).
pub(crate) fn bad_ssn(rng: &mut Rng) -> String {
    let serial = rng.range(1, 9999);
    match rng.below(5) {
        0 => format!("000-{:02}-{serial:04}", rng.range(1, 99)),
        1 => format!("666-{:02}-{serial:04}", rng.range(1, 99)),
        2 => format!(
            "{}-{:02}-{serial:04}",
            rng.range(900, 999),
            rng.range(1, 99)
        ),
        3 => format!("{:03}-00-{serial:04}", rng.range(1, 665)),
        _ => format!("{:03}-{:02}-0000", rng.range(1, 665), rng.range(1, 99)),
    }
}

fn bad_iban(rng: &mut Rng) -> String {
    let good = iban_compact(rng);
    let check: u32 = good[2..4].parse().unwrap_or(2);
    let bad = (check + 1 + rng.below(90) as u32) % 97 + 2;
    let bad = if bad == check {
        (bad + 1) % 97 + 2
    } else {
        bad
    };
    let s = format!("{}{bad:02}{}", &good[..2], &good[4..]);
    if rng.chance(50) {
        group4(&s)
    } else {
        s
    }
}

fn math(rng: &mut Rng) -> String {
    let (a, b, c) = (
        rng.range(100, 999),
        rng.range(100, 999),
        rng.range(1000, 9999),
    );
    match rng.below(4) {
        0 => format!("{a} * {b} - {c} = {}", a * b - c),
        1 => format!("the series 1, 2, 3, 5, 8, 13, {a}, {b}"),
        2 => format!("f({a}) = {b}.{c}"),
        _ => format!("{a} + {b} + {c} = {}", a + b + c),
    }
}
