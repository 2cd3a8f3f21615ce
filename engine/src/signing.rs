//! Bundle signatures: the control service signs every bundle it stores with
//! Ed25519, and the filter checks the signature before it activates a
//! bundle, so a bundle altered in transit or by anything between the
//! service and the proxy is never enforced.
//!
//! The signature travels in one HTTP header ([`SIGNATURE_HEADER`]) whose
//! value is `ed25519=<base64 signature>; key=<key id>`: the signature covers
//! the body bytes exactly as served, and the key id
//! ([`key_id`], the first 8 bytes of SHA-256 of the public key, in hex) says
//! which of the trusted keys made it, so keys can be rotated by trusting the
//! old and the new key for a while.
//!
//! Pure Rust (`ed25519-dalek`), builds for `wasm32-wasip1`; verification
//! uses `verify_strict`, which refuses the malleable and small-order edge
//! cases plain Ed25519 verification lets through.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// The response header carrying a bundle's signature.
pub const SIGNATURE_HEADER: &str = "x-bundle-signature";

/// Bytes of SHA-256 of the public key kept in a key id: 64 bits tell a
/// handful of trusted keys apart and stay short in logs.
const KEY_ID_BYTES: usize = 8;

/// Why a signature header does not prove a bundle authentic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// No header, or an empty one: the bundle is unsigned.
    #[error("the bundle is not signed")]
    Missing,
    /// The header is not `ed25519=<base64>; key=<id>`.
    #[error("malformed signature header: {0}")]
    Malformed(String),
    /// The header names a key that is not trusted here.
    #[error("signed with key {0:?}, which is not trusted")]
    UnknownKey(String),
    /// The signature does not match the bytes under the named key: the
    /// bundle was altered or signed by someone else.
    #[error("signature does not match the bundle (key {0:?})")]
    BadSignature(String),
}

/// Why a key could not be read from text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    /// Neither 64 hex digits nor base64 of 32 bytes.
    #[error("expected 32 bytes as base64 or 64 hex digits")]
    Encoding,
    /// 32 bytes that are not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    NotAPublicKey,
}

/// The id of a public key: hex of the first 8 bytes of SHA-256 of its 32
/// bytes. Derived, not assigned, so the service and every filter agree on
/// it without coordination.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    hex(&digest[..KEY_ID_BYTES])
}

/// Signs `bytes` and returns the [`SIGNATURE_HEADER`] value:
/// `ed25519=<standard base64 of the 64-byte signature>; key=<key id>`.
pub fn sign(bytes: &[u8], key: &SigningKey) -> String {
    let signature = key.sign(bytes);
    format!(
        "ed25519={}; key={}",
        STANDARD.encode(signature.to_bytes()),
        key_id(&key.verifying_key())
    )
}

/// Checks that `header` (the [`SIGNATURE_HEADER`] value, `None` or empty
/// when absent) is a valid signature of `bytes` by one of `trusted`.
///
/// Accepts `&str` or `Option<&str>`, so callers can pass a header lookup
/// straight through. The header must have exactly the two parameters
/// `ed25519` and `key`, in any order; anything else is
/// [`SignatureError::Malformed`] rather than ignored, so a future format is
/// never mistaken for this one.
pub fn verify<'a>(
    bytes: &[u8],
    header: impl Into<Option<&'a str>>,
    trusted: &[VerifyingKey],
) -> Result<(), SignatureError> {
    let header = header.into().map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let parsed = parse_header(header)?;
    let key = trusted
        .iter()
        .find(|k| key_id(k) == parsed.key_id)
        .ok_or_else(|| SignatureError::UnknownKey(parsed.key_id.clone()))?;
    key.verify_strict(bytes, &parsed.signature)
        .map_err(|_| SignatureError::BadSignature(parsed.key_id))
}

/// A parsed header.
struct ParsedHeader {
    signature: Signature,
    key_id: String,
}

fn parse_header(header: &str) -> Result<ParsedHeader, SignatureError> {
    let malformed = |why: &str| SignatureError::Malformed(why.to_owned());
    let mut signature = None;
    let mut key = None;
    for part in header.split(';') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("expected name=value parameters"))?;
        let slot = match name.trim() {
            "ed25519" => &mut signature,
            "key" => &mut key,
            _ => return Err(malformed("unknown parameter")),
        };
        if slot.replace(value.trim()).is_some() {
            return Err(malformed("repeated parameter"));
        }
    }
    let signature = signature.ok_or_else(|| malformed("no ed25519 parameter"))?;
    let key_id = key.ok_or_else(|| malformed("no key parameter"))?;
    if key_id.len() != KEY_ID_BYTES * 2 || !key_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(malformed("key id must be 16 hex digits"));
    }
    let raw = STANDARD
        .decode(signature)
        .map_err(|_| malformed("signature is not base64"))?;
    let raw: [u8; 64] = raw
        .try_into()
        .map_err(|_| malformed("signature is not 64 bytes"))?;
    Ok(ParsedHeader {
        signature: Signature::from_bytes(&raw),
        key_id: key_id.to_ascii_lowercase(),
    })
}

/// A signing key from its 32-byte seed written as base64 (standard or
/// URL-safe, padded or not) or 64 hex digits; surrounding whitespace (a
/// trailing newline in a key file) is ignored.
pub fn signing_key_from_text(text: &str) -> Result<SigningKey, KeyError> {
    Ok(SigningKey::from_bytes(&decode_32(text)?))
}

/// A public key written as base64 or hex, as [`signing_key_from_text`].
pub fn verifying_key_from_text(text: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_bytes(&decode_32(text)?).map_err(|_| KeyError::NotAPublicKey)
}

/// The public key as standard base64, the form `GET /v1/keys` publishes
/// and [`verifying_key_from_text`] reads back.
pub fn public_key_base64(key: &VerifyingKey) -> String {
    STANDARD.encode(key.as_bytes())
}

/// The seed of a signing key as standard base64, the form of key files.
pub fn seed_base64(key: &SigningKey) -> String {
    STANDARD.encode(key.to_bytes())
}

fn decode_32(text: &str) -> Result<[u8; 32], KeyError> {
    let text = text.trim();
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        unhex(text).ok_or(KeyError::Encoding)?
    } else {
        [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(KeyError::Encoding)?
    };
    bytes.try_into().map_err(|_| KeyError::Encoding)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    const BUNDLE: &[u8] = br#"{"name":"demo","version":3}"#;

    #[test]
    fn sign_then_verify() {
        let k = key(1);
        let header = sign(BUNDLE, &k);
        assert!(header.starts_with("ed25519="), "{header}");
        assert!(
            header.ends_with(&format!("; key={}", key_id(&k.verifying_key()))),
            "{header}"
        );
        assert_eq!(
            verify(BUNDLE, header.as_str(), &[k.verifying_key()]),
            Ok(())
        );
        // Among several trusted keys, the named one is used.
        let trusted = [key(2).verifying_key(), k.verifying_key()];
        assert_eq!(verify(BUNDLE, Some(header.as_str()), &trusted), Ok(()));
    }

    #[test]
    fn key_id_is_16_hex_digits_of_the_public_key_hash() {
        let id = key_id(&key(1).verifying_key());
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(id, key_id(&key(2).verifying_key()));
    }

    #[test]
    fn tampered_byte_is_a_bad_signature() {
        let k = key(1);
        let header = sign(BUNDLE, &k);
        let mut tampered = BUNDLE.to_vec();
        tampered[10] ^= 1;
        assert!(matches!(
            verify(&tampered, header.as_str(), &[k.verifying_key()]),
            Err(SignatureError::BadSignature(_))
        ));
    }

    #[test]
    fn wrong_key_is_unknown_and_forged_id_is_bad() {
        let header = sign(BUNDLE, &key(1));
        assert!(matches!(
            verify(BUNDLE, header.as_str(), &[key(2).verifying_key()]),
            Err(SignatureError::UnknownKey(_))
        ));
        // Another key's signature relabelled with the trusted key's id.
        let forged = format!(
            "{}; key={}",
            sign(BUNDLE, &key(2)).split(';').next().unwrap_or_default(),
            key_id(&key(1).verifying_key())
        );
        assert!(matches!(
            verify(BUNDLE, forged.as_str(), &[key(1).verifying_key()]),
            Err(SignatureError::BadSignature(_))
        ));
    }

    #[test]
    fn missing_and_malformed_headers() {
        let trusted = [key(1).verifying_key()];
        assert_eq!(verify(BUNDLE, None, &trusted), Err(SignatureError::Missing));
        assert_eq!(verify(BUNDLE, "  ", &trusted), Err(SignatureError::Missing));
        let good = sign(BUNDLE, &key(1));
        let id = key_id(&trusted[0]);
        let sig = good
            .split(';')
            .next()
            .and_then(|p| p.strip_prefix("ed25519="))
            .unwrap_or_default()
            .to_owned();
        for bad in [
            "garbage".to_owned(),
            format!("ed25519={sig}"),
            format!("key={id}"),
            format!("ed25519={sig}; key={id}; ts=1"),
            format!("ed25519={sig}; key={id}; key={id}"),
            format!("ed25519=!!!; key={id}"),
            format!("ed25519=AAAA; key={id}"),
            format!("ed25519={sig}; key=xyz"),
            format!("rsa={sig}; key={id}"),
        ] {
            assert!(
                matches!(
                    verify(BUNDLE, bad.as_str(), &trusted),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad}"
            );
        }
        // Parameter order and spacing do not matter.
        let swapped = format!("key={id};ed25519={sig}");
        assert_eq!(verify(BUNDLE, swapped.as_str(), &trusted), Ok(()));
    }

    #[test]
    fn keys_from_base64_and_hex() {
        let k = key(7);
        let seed_b64 = seed_base64(&k);
        let seed_hex = hex(&k.to_bytes());
        for text in [
            seed_b64.clone(),
            format!("{seed_b64}\n"),
            seed_b64.trim_end_matches('=').to_owned(),
            seed_hex.clone(),
            seed_hex.to_ascii_uppercase(),
        ] {
            let parsed = signing_key_from_text(&text).expect("seed parses");
            assert_eq!(parsed.to_bytes(), k.to_bytes(), "{text}");
        }
        let public = public_key_base64(&k.verifying_key());
        assert_eq!(
            verifying_key_from_text(&public),
            Ok(k.verifying_key()),
            "{public}"
        );
        assert_eq!(
            verifying_key_from_text(&hex(k.verifying_key().as_bytes())),
            Ok(k.verifying_key())
        );
        assert_eq!(signing_key_from_text("abc"), Err(KeyError::Encoding));
        assert_eq!(
            signing_key_from_text(&STANDARD.encode([0u8; 31])),
            Err(KeyError::Encoding)
        );
    }
}
