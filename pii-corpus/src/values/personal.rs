//! Names, e-mail addresses and telephone numbers.

use crate::rng::Rng;

const FIRST: &[&str] = &[
    "jane", "john", "maria", "wei", "priya", "lukas", "amelie", "oliver", "fatima", "diego",
    "sofia", "noah", "aisha", "kenji", "elena", "marc", "chloe", "arjun", "hannah", "tomas",
];
const LAST: &[&str] = &[
    "doe", "smith", "garcia", "chen", "patel", "muller", "dubois", "brown", "khan", "rossi",
    "nguyen", "schmidt", "martin", "sharma", "okafor", "kowalski", "tanaka", "silva", "moreau",
    "oconnor",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "mail.example.net",
    "acme-corp.example",
    "northwind.io",
    "contoso.co.uk",
    "globex.de",
    "initech.fr",
    "umbrella-health.in",
    "fabrikam.solutions",
    "eng.hooli.dev",
    "students.uni-example.edu",
];

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

/// A capitalised first name.
pub fn first_name(rng: &mut Rng) -> String {
    capitalize(rng.word(FIRST))
}

/// A capitalised last name.
pub fn last_name(rng: &mut Rng) -> String {
    capitalize(rng.word(LAST))
}

/// An e-mail address in one of the usual local-part styles.
pub fn email(rng: &mut Rng) -> String {
    let f = *rng.pick(FIRST);
    let l = *rng.pick(LAST);
    let local = match rng.below(9) {
        0 => format!("{f}.{l}"),
        1 => format!("{}{l}", &f[..1]),
        2 => format!("{f}_{l}{}", rng.range(1, 99)),
        3 => format!("{f}+{}", rng.pick(&["billing", "ai", "test", "news"])),
        4 => format!("{}.{}", capitalize(f), capitalize(l)),
        5 => format!("{f}{}", rng.range(1970, 2005)),
        6 => rng
            .pick(&["support", "no-reply", "billing", "hr", "security"])
            .to_string(),
        7 => format!("{f}.{l}-{}", rng.alnum(3).to_ascii_lowercase()),
        _ => f.to_string(),
    };
    let domain = *rng.pick(DOMAINS);
    let domain = if rng.chance(8) {
        domain.to_ascii_uppercase()
    } else {
        domain.to_string()
    };
    format!("{local}@{domain}")
}

/// A digit 2–9 followed by `n - 1` digits (NANP area / exchange codes).
fn nanp(rng: &mut Rng, n: usize) -> String {
    format!("{}{}", rng.range(2, 9), rng.digits(n - 1))
}

/// A telephone number: US, UK, German, French or Indian, national or
/// international, with the separators each country customarily uses.
pub fn phone(rng: &mut Rng) -> String {
    match rng.below(5) {
        0 => us_phone(rng),
        1 => uk_phone(rng),
        2 => de_phone(rng),
        3 => fr_phone(rng),
        _ => in_phone(rng),
    }
}

fn us_phone(rng: &mut Rng) -> String {
    let (a, e, l) = (nanp(rng, 3), nanp(rng, 3), rng.digits(4));
    match rng.below(10) {
        0 => format!("+1 {a} {e} {l}"),
        1 => format!("+1-{a}-{e}-{l}"),
        2 => format!("+1 ({a}) {e}-{l}"),
        3 => format!("({a}) {e}-{l}"),
        4 => format!("{a}-{e}-{l}"),
        5 => format!("{a}.{e}.{l}"),
        6 => format!("{a} {e} {l}"),
        7 => format!("1-{a}-{e}-{l}"),
        8 => format!("+1{a}{e}{l}"),
        _ => format!("+1.{a}.{e}.{l}"),
    }
}

fn uk_phone(rng: &mut Rng) -> String {
    let (x, y) = (rng.digits(4), rng.digits(4));
    let mobile = format!("7{}", rng.digits(3));
    let m6 = rng.digits(6);
    match rng.below(8) {
        0 => format!("+44 20 {x} {y}"),
        1 => format!("020 {x} {y}"),
        2 => format!("+44 {mobile} {m6}"),
        3 => format!("0{mobile} {m6}"),
        4 => format!("+44 (0)20 {x} {y}"),
        5 => format!("0161 {} {y}", rng.digits(3)),
        6 => format!("+44{mobile}{m6}"),
        _ => format!("+44 161 {} {y}", rng.digits(3)),
    }
}

fn de_phone(rng: &mut Rng) -> String {
    let city = *rng.pick(&["30", "89", "40", "69", "221"]);
    let sub_len = rng.range(5, 7) as usize;
    let sub = format!("{}{}", rng.range(1, 9), rng.digits(sub_len));
    let mob = format!("15{}", rng.range(1, 9));
    let msub = rng.digits(8);
    match rng.below(7) {
        0 => format!("+49 {city} {sub}"),
        1 => format!("0{city} {sub}"),
        2 => format!("+49 {mob} {msub}"),
        3 => format!("0{mob} {msub}"),
        4 => format!("+49 (0){city} {sub}"),
        5 => format!("0{city}-{sub}"),
        _ => format!("+49{mob}{msub}"),
    }
}

fn fr_phone(rng: &mut Rng) -> String {
    let lead = rng.range(1, 7);
    let pairs: Vec<String> = (0..4).map(|_| rng.digits(2)).collect();
    let sp = pairs.join(" ");
    match rng.below(6) {
        0 => format!("+33 {lead} {sp}"),
        1 => format!("0{lead} {sp}"),
        2 => format!("0{lead}.{}", pairs.join(".")),
        3 => format!("+33 (0){lead} {sp}"),
        4 => format!("0{lead}-{}", pairs.join("-")),
        _ => format!("+33{lead}{}", pairs.concat()),
    }
}

fn in_phone(rng: &mut Rng) -> String {
    let a = format!("{}{}", rng.range(6, 9), rng.digits(4));
    let b = rng.digits(5);
    match rng.below(6) {
        0 => format!("+91 {a} {b}"),
        1 => format!("{a} {b}"),
        2 => format!("+91-{a}-{b}"),
        3 => format!("+91 {a}{b}"),
        4 => format!("0{a} {b}"),
        _ => format!("+91{a}{b}"),
    }
}
