//! Document genres. Each module writes one kind of document through a
//! [`DocBuilder`], labelling every sensitive value it places.

mod chat;
mod code;
mod json;
mod labelled;
mod log;
mod negative;
mod tricky;

use mcp_guard_engine::pii::PiiType;

use crate::doc::{DocBuilder, Document, Genre};
use crate::rng::Rng;
use crate::values;

/// Writes document `id` of `genre`.
pub fn generate(rng: &mut Rng, id: usize, genre: Genre) -> Document {
    let mut b = DocBuilder::new();
    match genre {
        Genre::Chat => chat::write(rng, &mut b),
        Genre::Json => json::write(rng, &mut b),
        Genre::Log => log::write(rng, &mut b),
        Genre::Code => code::write(rng, &mut b),
        Genre::Negative => negative::write(rng, &mut b),
    }
    b.build(id, genre)
}

/// The types a prose sentence may mention (private keys and AWS secrets
/// need their own context and are placed by the genres that have it).
const PROSE_TYPES: &[PiiType] = &[
    PiiType::Email,
    PiiType::Email,
    PiiType::Phone,
    PiiType::Phone,
    PiiType::Card,
    PiiType::Ssn,
    PiiType::Iban,
    PiiType::Ip,
    PiiType::AwsKey,
    PiiType::Token,
];

/// A random structured type suited to prose.
pub(crate) fn prose_type(rng: &mut Rng) -> PiiType {
    *rng.pick(PROSE_TYPES)
}

/// A fresh valid value of `ty` (single-line forms).
pub(crate) fn value(rng: &mut Rng, ty: PiiType) -> String {
    match ty {
        PiiType::Email => values::email(rng),
        PiiType::Phone => values::phone(rng),
        PiiType::Card => values::card(rng),
        PiiType::Ssn => values::ssn(rng),
        PiiType::Iban => values::iban(rng),
        PiiType::Ip => {
            if rng.chance(70) {
                values::ipv4(rng)
            } else {
                values::ipv6(rng)
            }
        }
        PiiType::AwsKey => values::aws_key_id(rng),
        PiiType::AwsSecret => values::aws_secret(rng),
        PiiType::Token => {
            if rng.chance(30) {
                values::jwt(rng)
            } else {
                values::token(rng)
            }
        }
        PiiType::PrivateKey => values::pem_key(rng, "\n"),
        PiiType::Custom => String::new(),
    }
}

/// How a value of `ty` is introduced in prose.
pub(crate) fn noun(rng: &mut Rng, ty: PiiType) -> &'static str {
    let options: &[&'static str] = match ty {
        PiiType::Email => &["email", "e-mail address", "contact email", "Email"],
        PiiType::Phone => &["phone", "mobile number", "Tel.", "phone number"],
        PiiType::Card => &["card number", "Visa/Mastercard", "PAN", "card"],
        PiiType::Ssn => &["SSN", "social security number", "SSN#"],
        PiiType::Iban => &["IBAN", "bank account (IBAN)", "account"],
        PiiType::Ip => &["IP", "client address", "host", "source IP"],
        PiiType::AwsKey => &["access key id", "AWS key", "key"],
        PiiType::Token => &["token", "API key", "credential"],
        _ => &["value"],
    };
    rng.word(options)
}

/// Writes `value` wrapped the way prose and markdown wrap values:
/// parentheses, quotes, backticks, bold, angle brackets, or bare; then
/// a trailing punctuation mark.
pub(crate) fn wrapped(rng: &mut Rng, b: &mut DocBuilder, ty: PiiType, value: &str) {
    let (open, close) = *rng.pick(&[
        ("", ""),
        ("", ""),
        ("", ""),
        ("(", ")"),
        ("\"", "\""),
        ("'", "'"),
        ("`", "`"),
        ("**", "**"),
        ("<", ">"),
        ("[", "]"),
    ]);
    let end = *rng.pick(&["", "", ".", ",", ";", ")", "!", "?", ":"]);
    b.text(open).pii(ty, value).text(close).text(end);
}
