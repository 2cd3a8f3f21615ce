//! Credentials: AWS keys, API tokens, JWTs and PEM private keys.

use crate::rng::Rng;

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// An AWS access key id (`AKIA…` long-term, `ASIA…` temporary).
pub fn aws_key_id(rng: &mut Rng) -> String {
    let prefix = if rng.chance(75) { "AKIA" } else { "ASIA" };
    format!("{prefix}{}", rng.from_alphabet(BASE32, 16))
}

/// A 40-character AWS secret access key.
pub fn aws_secret(rng: &mut Rng) -> String {
    loop {
        let s = rng.b64(40);
        let upper = s.bytes().any(|b| b.is_ascii_uppercase());
        let lower = s.bytes().any(|b| b.is_ascii_lowercase());
        let other = s
            .bytes()
            .any(|b| b.is_ascii_digit() || b == b'/' || b == b'+');
        if upper && lower && other {
            return s;
        }
    }
}

/// An API token with a documented prefix: GitHub, Slack, Stripe or Google.
pub fn token(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => format!("ghp_{}", rng.alnum(36)),
        1 => format!("{}_{}", rng.pick(&["gho", "ghs", "ghu"]), rng.alnum(36)),
        2 => format!("github_pat_11{}_{}", rng.alnum(20), rng.alnum(59)),
        3 => format!(
            "xoxb-{}-{}-{}",
            rng.digits(12),
            rng.digits(13),
            rng.alnum(24)
        ),
        4 => format!(
            "xoxp-{}-{}-{}-{}",
            rng.digits(11),
            rng.digits(11),
            rng.digits(13),
            rng.hex(32)
        ),
        5 => {
            let n = rng.range(24, 99) as usize;
            format!("sk_live_{}", rng.alnum(n))
        }
        6 => format!("{}_{}", rng.pick(&["sk_test", "rk_live"]), rng.alnum(24)),
        _ => format!("AIza{}", rng.b64url(35)),
    }
}

fn b64url_encode(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, &b)| a | u32::from(b) << (16 - 8 * i));
        for k in 0..=chunk.len() {
            out.push(char::from(A[(n >> (18 - 6 * k) & 63) as usize]));
        }
    }
    out
}

/// A signed JWT with a JSON header and claims.
pub fn jwt(rng: &mut Rng) -> String {
    let alg = *rng.pick(&["HS256", "RS256", "ES256"]);
    let header = if rng.chance(50) {
        format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#)
    } else {
        format!(r#"{{"alg":"{alg}","kid":"{}","typ":"JWT"}}"#, rng.hex(8))
    };
    let iat = rng.range(1_600_000_000, 1_760_000_000);
    let claims = format!(
        r#"{{"sub":"{}","email":"user{}@example.com","iat":{iat},"exp":{}}}"#,
        rng.digits(8),
        rng.digits(3),
        iat + 3600
    );
    let sig_len = if alg == "HS256" { 43 } else { 86 };
    format!(
        "{}.{}.{}",
        b64url_encode(header.as_bytes()),
        b64url_encode(claims.as_bytes()),
        rng.b64url(sig_len)
    )
}

/// An opaque OAuth access token, as sent after `Bearer`.
pub fn bearer_credential(rng: &mut Rng) -> String {
    match rng.below(4) {
        0 => jwt(rng),
        1 => format!("ya29.a0{}", rng.b64url(60)),
        2 => format!("{}{}", rng.alnum(30), rng.digits(2)),
        _ => format!("gho_{}", rng.alnum(36)),
    }
}

/// A PEM private key; lines joined with `nl` (a newline, or the two
/// characters `\n` inside a JSON string).
pub fn pem_key(rng: &mut Rng, nl: &str) -> String {
    let label = *rng.pick(&[
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
    ]);
    let lines = rng.range(3, 12);
    let mut out = format!("-----BEGIN {label}-----");
    for _ in 0..lines {
        out.push_str(nl);
        out.push_str(&rng.b64(64));
    }
    out.push_str(nl);
    let tail = rng.range(8, 60) as usize;
    out.push_str(&rng.b64(tail));
    out.push_str("==");
    out.push_str(nl);
    out.push_str(&format!("-----END {label}-----"));
    out
}
