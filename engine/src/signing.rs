//! Bundle signatures: the control service signs every bundle it stores with
//! Ed25519, and the filter checks the signature before it activates a
//! bundle, so a bundle altered in transit, or a genuine bundle served for
//! the wrong name or as the wrong version, is never enforced.
//!
//! **What is signed** is not the raw bytes but a domain-separated message
//! ([`message`]) naming the bundle, its version and the SHA-256 of the
//! bytes served:
//!
//! ```text
//! mcp-guard bundle v2\n<name>\n<version>\n<hex sha256 of the body>
//! ```
//!
//! The verifier builds that message from the name *it subscribed to* and
//! the version it was told, so another bundle's genuine signature (team B's
//! bundle served for team A's name by a proxy or a misrouted cache) does not
//! verify, and the signature cannot be reused for anything that is not an
//! mcp-guard bundle.
//!
//! **The header** ([`SIGNATURE_HEADER`]) carries one or more signatures,
//! comma-separated, each `v=2; key=<key id>; ed25519=<base64>`: the format
//! version (`v`), which key made it ([`key_id`]), the 64-byte signature.
//! During a key rotation the service signs with its current and its next
//! key, so a filter trusting either keeps verifying. Signatures of a format
//! this code does not know are skipped (a future service may send v2 and v3
//! side by side); at least one v2 signature by a trusted key must be present
//! and every v2 signature by a trusted key must verify.
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

/// The response header carrying a bundle's signatures.
pub const SIGNATURE_HEADER: &str = "x-bundle-signature";

/// The signed-message format this code makes and checks (`v=2`).
pub const FORMAT_VERSION: &str = "2";

/// First line of every signed message: what it is and in which format.
const MESSAGE_PREFIX: &str = "mcp-guard bundle v2";

/// Bytes of SHA-256 of the public key kept in a key id: 64 bits tell a
/// handful of trusted keys apart and stay short in logs.
const KEY_ID_BYTES: usize = 8;

/// Most signatures one header may carry: current and next key, with room
/// for a format migration. More is refused rather than looped over.
pub const MAX_SIGNATURES: usize = 4;

/// What a signature vouches for: this body, as version `version` of the
/// bundle called `name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed<'a> {
    /// The bundle name (the verifier passes the name it subscribed to).
    pub name: &'a str,
    /// The bundle version.
    pub version: u64,
    /// The body bytes exactly as served.
    pub bytes: &'a [u8],
}

/// Why a signature header does not prove a bundle authentic.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// No header, or an empty one: the bundle is unsigned.
    #[error("the bundle is not signed")]
    Missing,
    /// The header is not a list of `v=2; key=<id>; ed25519=<base64>`.
    #[error("malformed signature header: {0}")]
    Malformed(String),
    /// Only signatures in formats this code does not know.
    #[error("no signature in a supported format")]
    Unsupported,
    /// None of the signatures is by a trusted key.
    #[error("signed with key(s) {}, none of which is trusted", .0.join(", "))]
    UnknownKey(Vec<String>),
    /// A trusted key's signature does not match: the bytes were altered, or
    /// they are another bundle's or another version's.
    #[error("signature does not match the bundle, its name or its version (key {0})")]
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
    hex(digest.get(..KEY_ID_BYTES).unwrap_or_default())
}

/// The exact bytes signed for `signed`:
/// `mcp-guard bundle v2\n<name>\n<version>\n<hex sha256 of bytes>`.
///
/// Unambiguous even for a name containing newlines: the version and digest
/// contain none, so they are always the last two lines.
pub fn message(signed: &Signed<'_>) -> Vec<u8> {
    format!(
        "{MESSAGE_PREFIX}\n{}\n{}\n{}",
        signed.name,
        signed.version,
        hex(&Sha256::digest(signed.bytes))
    )
    .into_bytes()
}

/// Signs `signed` with every key in `keys` (the current key first, then a
/// next key during a rotation) and returns the [`SIGNATURE_HEADER`] value.
pub fn sign(signed: &Signed<'_>, keys: &[&SigningKey]) -> String {
    sign_message(&message(signed), keys, FORMAT_VERSION)
}

/// One `v=<format>; key=<id>; ed25519=<base64>` entry per key over
/// `message`, comma-separated: the header value of every signature scheme
/// here (served bundles, author signatures).
pub(crate) fn sign_message(message: &[u8], keys: &[&SigningKey], format: &str) -> String {
    keys.iter()
        .map(|key| {
            format!(
                "v={format}; key={}; ed25519={}",
                key_id(&key.verifying_key()),
                STANDARD.encode(key.sign(message).to_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks that `header` (the [`SIGNATURE_HEADER`] value, `None` or empty
/// when absent) holds a valid signature of `signed` by one of `trusted`,
/// and no failing signature by any of them. Returns the id of a key that
/// verified, for logs.
///
/// Each signature must have exactly the parameters `v`, `key` and
/// `ed25519`; anything else is [`SignatureError::Malformed`] rather than
/// ignored, so a future format is never mistaken for this one.
pub fn verify<'a>(
    signed: &Signed<'_>,
    header: impl Into<Option<&'a str>>,
    trusted: &[VerifyingKey],
) -> Result<String, SignatureError> {
    verify_message(&message(signed), header.into(), trusted, FORMAT_VERSION)
}

/// [`verify`] for any scheme: `header` must hold signatures in `format`
/// over `message`, at least one by a trusted key, none by a trusted key
/// failing.
pub(crate) fn verify_message(
    message: &[u8],
    header: Option<&str>,
    trusted: &[VerifyingKey],
    format: &str,
) -> Result<String, SignatureError> {
    let header = header.map(str::trim).unwrap_or_default();
    if header.is_empty() {
        return Err(SignatureError::Missing);
    }
    let entries = parse_header(header, format)?;
    let supported: Vec<&ParsedSignature> = entries.iter().flatten().collect();
    if supported.is_empty() {
        return Err(SignatureError::Unsupported);
    }
    let mut verified = None;
    for entry in &supported {
        let Some(key) = trusted.iter().find(|k| key_id(k) == entry.key_id) else {
            continue;
        };
        key.verify_strict(message, &entry.signature)
            .map_err(|_| SignatureError::BadSignature(entry.key_id.clone()))?;
        verified.get_or_insert_with(|| entry.key_id.clone());
    }
    verified.ok_or_else(|| {
        SignatureError::UnknownKey(supported.iter().map(|e| e.key_id.clone()).collect())
    })
}

/// One parsed signature in the expected format.
struct ParsedSignature {
    signature: Signature,
    key_id: String,
}

/// Every signature in the header: `Some` in `format`, `None` in a format
/// this code does not know.
fn parse_header(
    header: &str,
    format: &str,
) -> Result<Vec<Option<ParsedSignature>>, SignatureError> {
    let entries: Vec<&str> = header.split(',').collect();
    if entries.len() > MAX_SIGNATURES {
        return Err(SignatureError::Malformed(format!(
            "more than {MAX_SIGNATURES} signatures"
        )));
    }
    let parsed = entries
        .into_iter()
        .map(|entry| parse_one(entry, format))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids: Vec<&str> = parsed.iter().flatten().map(|p| p.key_id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w.first() == w.get(1)) {
        return Err(SignatureError::Malformed(
            "two signatures by the same key".into(),
        ));
    }
    Ok(parsed)
}

fn parse_one(entry: &str, format: &str) -> Result<Option<ParsedSignature>, SignatureError> {
    let malformed = |why: &str| SignatureError::Malformed(why.to_owned());
    let mut version = None;
    let mut signature = None;
    let mut key = None;
    let mut other = false;
    for part in entry.split(';') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| malformed("expected name=value parameters"))?;
        let slot = match name.trim() {
            "v" => &mut version,
            "ed25519" => &mut signature,
            "key" => &mut key,
            _ => {
                other = true;
                continue;
            }
        };
        if slot.replace(value.trim()).is_some() {
            return Err(malformed("repeated parameter"));
        }
    }
    match version {
        None => return Err(malformed("no v parameter")),
        Some(v) if v == format => {}
        // Another format: its parameters are its own business.
        Some(_) => return Ok(None),
    }
    if other {
        return Err(malformed("unknown parameter"));
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
    Ok(Some(ParsedSignature {
        signature: Signature::from_bytes(&raw),
        key_id: key_id.to_ascii_lowercase(),
    }))
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
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            out.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
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

    fn demo() -> Signed<'static> {
        Signed {
            name: "demo",
            version: 3,
            bytes: BUNDLE,
        }
    }

    #[test]
    fn message_names_bundle_version_and_digest() {
        let text = String::from_utf8(message(&demo())).expect("utf-8");
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert_eq!(lines.first(), Some(&"mcp-guard bundle v2"));
        assert_eq!(lines.get(1), Some(&"demo"));
        assert_eq!(lines.get(2), Some(&"3"));
        assert_eq!(lines.get(3).map(|d| d.len()), Some(64));
    }

    #[test]
    fn sign_then_verify() {
        let k = key(1);
        let header = sign(&demo(), &[&k]);
        assert!(header.starts_with("v=2; key="), "{header}");
        let id = key_id(&k.verifying_key());
        assert_eq!(
            verify(&demo(), header.as_str(), &[k.verifying_key()]),
            Ok(id.clone())
        );
        // Among several trusted keys, the named one is used.
        let trusted = [key(2).verifying_key(), k.verifying_key()];
        assert_eq!(verify(&demo(), Some(header.as_str()), &trusted), Ok(id));
    }

    #[test]
    fn another_name_or_version_does_not_verify() {
        let k = key(1);
        let trusted = [k.verifying_key()];
        let header = sign(&demo(), &[&k]);
        let as_other_name = Signed {
            name: "team-b",
            ..demo()
        };
        assert!(matches!(
            verify(&as_other_name, header.as_str(), &trusted),
            Err(SignatureError::BadSignature(_))
        ));
        let as_other_version = Signed {
            version: 4,
            ..demo()
        };
        assert!(matches!(
            verify(&as_other_version, header.as_str(), &trusted),
            Err(SignatureError::BadSignature(_))
        ));
        // A signature over the raw bytes (the old format) is not accepted.
        let raw = format!(
            "v=2; key={}; ed25519={}",
            key_id(&k.verifying_key()),
            STANDARD.encode(k.sign(BUNDLE).to_bytes())
        );
        assert!(matches!(
            verify(&demo(), raw.as_str(), &trusted),
            Err(SignatureError::BadSignature(_))
        ));
    }

    #[test]
    fn rotation_two_signatures_verify_under_either_key() {
        let (old, new) = (key(1), key(2));
        let header = sign(&demo(), &[&old, &new]);
        assert_eq!(header.matches("v=2;").count(), 2, "{header}");
        for trusted in [
            vec![old.verifying_key()],
            vec![new.verifying_key()],
            vec![old.verifying_key(), new.verifying_key()],
        ] {
            assert!(verify(&demo(), header.as_str(), &trusted).is_ok());
        }
        assert_eq!(
            verify(&demo(), header.as_str(), &[key(3).verifying_key()]),
            Err(SignatureError::UnknownKey(vec![
                key_id(&old.verifying_key()),
                key_id(&new.verifying_key())
            ]))
        );
    }

    #[test]
    fn a_failing_trusted_signature_rejects_even_beside_a_good_one() {
        let (a, b) = (key(1), key(2));
        let good = sign(&demo(), &[&a]);
        // b's id on a signature b did not make for this message.
        let other = Signed {
            name: "x",
            ..demo()
        };
        let forged = sign(&other, &[&b]);
        let header = format!("{good}, {forged}");
        let trusted = [a.verifying_key(), b.verifying_key()];
        assert!(matches!(
            verify(&demo(), header.as_str(), &trusted),
            Err(SignatureError::BadSignature(id)) if id == key_id(&b.verifying_key())
        ));
        // Not trusting b, its entry is ignored.
        assert!(verify(&demo(), header.as_str(), &trusted[..1]).is_ok());
    }

    #[test]
    fn unknown_formats_are_skipped_but_not_enough() {
        let k = key(1);
        let trusted = [k.verifying_key()];
        let good = sign(&demo(), &[&k]);
        let future = "v=3; alg=mldsa; sig=AAAA";
        assert_eq!(
            verify(&demo(), future, &trusted),
            Err(SignatureError::Unsupported)
        );
        assert!(verify(&demo(), format!("{future}, {good}").as_str(), &trusted).is_ok());
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
        let header = sign(&demo(), &[&k]);
        let mut tampered = BUNDLE.to_vec();
        if let Some(b) = tampered.get_mut(10) {
            *b ^= 1;
        }
        let signed = Signed {
            bytes: &tampered,
            ..demo()
        };
        assert!(matches!(
            verify(&signed, header.as_str(), &[k.verifying_key()]),
            Err(SignatureError::BadSignature(_))
        ));
    }

    #[test]
    fn forged_id_is_bad() {
        // Another key's signature relabelled with the trusted key's id.
        let theirs = sign(&demo(), &[&key(2)]);
        let forged = theirs.replace(
            &key_id(&key(2).verifying_key()),
            &key_id(&key(1).verifying_key()),
        );
        assert!(matches!(
            verify(&demo(), forged.as_str(), &[key(1).verifying_key()]),
            Err(SignatureError::BadSignature(_))
        ));
    }

    #[test]
    fn missing_and_malformed_headers() {
        let trusted = [key(1).verifying_key()];
        assert_eq!(
            verify(&demo(), None, &trusted),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(&demo(), "  ", &trusted),
            Err(SignatureError::Missing)
        );
        let good = sign(&demo(), &[&key(1)]);
        let id = key_id(&trusted[0]);
        let sig = good
            .rsplit("ed25519=")
            .next()
            .unwrap_or_default()
            .to_owned();
        for bad in [
            "garbage".to_owned(),
            format!("ed25519={sig}; key={id}"),
            format!("v=2; ed25519={sig}"),
            format!("v=2; key={id}"),
            format!("v=2; key={id}; ed25519={sig}; ts=1"),
            format!("v=2; key={id}; key={id}; ed25519={sig}"),
            format!("v=2; v=2; key={id}; ed25519={sig}"),
            format!("v=2; key={id}; ed25519=!!!"),
            format!("v=2; key={id}; ed25519=AAAA"),
            format!("v=2; key=xyz; ed25519={sig}"),
            format!("v=2; key={id}; rsa={sig}"),
            format!("{good}, {good}"),
            [good.as_str(); 5].join(", "),
        ] {
            assert!(
                matches!(
                    verify(&demo(), bad.as_str(), &trusted),
                    Err(SignatureError::Malformed(_))
                ),
                "{bad}"
            );
        }
        // Parameter order and spacing do not matter.
        let swapped = format!("ed25519={sig};key={id} ;v=2");
        assert!(verify(&demo(), swapped.as_str(), &trusted).is_ok());
    }

    #[test]
    fn header_edge_cases_an_attacker_would_try() {
        let k = key(1);
        let trusted = [k.verifying_key()];
        let good = sign(&demo(), &[&k]);
        let id = key_id(&trusted[0]);
        let sig = good.rsplit("ed25519=").next().unwrap_or_default();
        let malformed = |header: &str| {
            matches!(
                verify(&demo(), header, &trusted),
                Err(SignatureError::Malformed(_))
            )
        };
        // Empty entries, a capital `V`, a non-ASCII or padded key id, a
        // signature re-encoded (unpadded, URL-safe, spaces inside, a
        // non-canonical last character): refused, never read leniently.
        for bad in [
            format!("{good},,"),
            format!(",{good}"),
            format!("{good};"),
            format!("V=2; key={id}; ed25519={sig}"),
            format!("v=2; key={}é; ed25519={sig}", &id[..15]),
            format!("v=2; key= {id}0; ed25519={sig}"),
            format!("v=2; key={id}; ed25519={}", sig.trim_end_matches('=')),
            format!(
                "v=2; key={id}; ed25519={}",
                sig.replace('+', "-").replace('/', "_")
            ),
            format!("v=2; key={id}; ed25519={} {}", &sig[..40], &sig[40..]),
            format!("v=2; key={id}; ed25519={}", {
                // The last character before the padding carries 4 unused
                // bits: flipping one gives another spelling of the same
                // bytes to a lenient decoder.
                let mut raw: Vec<char> = sig.chars().collect();
                let at = raw.len() - 3;
                raw[at] = if raw[at] == 'A' { 'B' } else { 'A' };
                raw.into_iter().collect::<String>()
            }),
            // An upper-case spelling of the same key id is the same key.
            format!(
                "{good}, v=2; key={}; ed25519={sig}",
                id.to_ascii_uppercase()
            ),
            // Five entries, even when four are of an unknown format.
            format!("{good}, v=9, v=9, v=9, v=9"),
        ] {
            let refused = malformed(&bad)
                || matches!(
                    verify(&demo(), bad.as_str(), &trusted),
                    Err(SignatureError::BadSignature(_))
                );
            assert!(refused, "{bad}");
        }
        // Spacing and the case of the key id's hex digits are free.
        let spaced = format!(
            "  v = 2 ;  key = {} ; ed25519 = {sig}  ",
            id.to_ascii_uppercase()
        );
        assert_eq!(verify(&demo(), spaced.as_str(), &trusted), Ok(id.clone()));
        // A v=2 header is never an author signature and a v=1 entry is
        // skipped by the serving verifier, whatever the key.
        let author = crate::author_signing::author_sign("demo", BUNDLE, &[&k]);
        assert_eq!(
            verify(&demo(), author.as_str(), &trusted),
            Err(SignatureError::Unsupported)
        );
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
