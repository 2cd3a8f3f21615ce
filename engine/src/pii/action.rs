//! Replacement text for each action. Every replacement is printable ASCII
//! without `"` or `\`, so it can be written inside a JSON string as is.

use super::config::{Action, PiiType};
use super::scanner::Scanner;

/// Writes the replacement for `value` of type `ty` to `out`.
pub(crate) fn render(sc: &Scanner, ty: PiiType, value: &[u8], out: &mut Vec<u8>) {
    out.push(b'[');
    out.extend_from_slice(ty.label().as_bytes());
    match sc.action(ty) {
        Action::Mask | Action::Block => {}
        Action::Hash => {
            if let Some(h) = &sc.hasher {
                out.push(b':');
                h.token(ty.label(), &normalise(ty, value), out);
            }
        }
        Action::Partial => partial(ty, value, out),
    }
    out.push(b']');
}

/// The form hashed: separators and case do not change the token.
fn normalise(ty: PiiType, value: &[u8]) -> Vec<u8> {
    match ty {
        PiiType::Phone | PiiType::Card | PiiType::Ssn | PiiType::Iban => value
            .iter()
            .filter(|b| b.is_ascii_alphanumeric() || **b == b'+')
            .map(u8::to_ascii_uppercase)
            .collect(),
        PiiType::Email | PiiType::Custom => value.to_ascii_lowercase(),
        _ => value.to_vec(),
    }
}

fn last_digits(value: &[u8], n: usize) -> Vec<u8> {
    let mut d: Vec<u8> = value
        .iter()
        .rev()
        .filter(|b| b.is_ascii_digit())
        .take(n)
        .copied()
        .collect();
    d.reverse();
    d
}

fn safe(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':')
}

fn partial(ty: PiiType, value: &[u8], out: &mut Vec<u8>) {
    out.push(b' ');
    match ty {
        PiiType::Email => {
            out.extend_from_slice(b"***@");
            let at = value
                .iter()
                .position(|&b| b == b'@')
                .map_or(value.len(), |i| i + 1);
            out.extend(value.iter().skip(at).copied().filter(|&b| safe(b)));
        }
        PiiType::Phone => {
            out.extend_from_slice(b"****");
            out.extend(last_digits(value, 2));
        }
        PiiType::Card => {
            out.extend_from_slice(b"****");
            out.extend(last_digits(value, 4));
        }
        PiiType::Ssn => {
            out.extend_from_slice(b"***-**-");
            out.extend(last_digits(value, 4));
        }
        PiiType::Iban => {
            out.extend(value.iter().take(2).copied().filter(|&b| safe(b)));
            out.extend_from_slice(b"****");
            let alnum: Vec<u8> = value
                .iter()
                .copied()
                .filter(u8::is_ascii_alphanumeric)
                .collect();
            out.extend(alnum.iter().skip(alnum.len().saturating_sub(4)).copied());
        }
        PiiType::Ip => {
            if value.contains(&b':') {
                let first = value.split(|&b| b == b':').next().unwrap_or(&[]);
                out.extend(first.iter().copied().filter(|&b| safe(b)));
                out.extend_from_slice(b":*");
            } else {
                let mut parts = value.split(|&b| b == b'.');
                for _ in 0..2 {
                    out.extend(
                        parts
                            .next()
                            .unwrap_or(&[])
                            .iter()
                            .copied()
                            .filter(|&b| safe(b)),
                    );
                    out.push(b'.');
                }
                out.extend_from_slice(b"*.*");
            }
        }
        PiiType::AwsKey => {
            out.extend(value.iter().take(4).copied().filter(|&b| safe(b)));
            out.extend_from_slice(b"****");
        }
        PiiType::Token => {
            let cut = value
                .iter()
                .take(11)
                .rposition(|&b| b == b'_' || b == b'-')
                .map_or(3, |i| i + 1)
                .min(value.len());
            out.extend(value.iter().take(cut).copied().filter(|&b| safe(b)));
            out.extend_from_slice(b"****");
        }
        PiiType::AwsSecret | PiiType::PrivateKey | PiiType::Custom => {
            out.pop();
        }
    }
}
