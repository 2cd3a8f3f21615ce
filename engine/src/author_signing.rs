//! Author signatures: a team signs a bundle in its own pipeline
//! (`mcp-guard build` then `mcp-guard sign`, offline, with a key that never
//! leaves the pipeline) and the control service verifies the signature on
//! push against the team's trusted keys before it stores anything. A push
//! token alone then cannot change policy: a stolen token, or a compromised
//! host between the pipeline and the service, has no key to sign with.
//!
//! **What is signed** is a domain-separated message naming the bundle and
//! the SHA-256 of the exact bytes pushed:
//!
//! ```text
//! mcp-guard bundle author v1\n<name>\n<hex sha256 of the bytes>
//! ```
//!
//! No version: the service assigns versions when it stores. The prefix
//! differs from the served-bundle message ([`crate::signing::message`]),
//! so an author signature is never a valid serving signature and the
//! other way round, even with the same key.
//!
//! **The header** ([`AUTHOR_SIGNATURE_HEADER`]) has the syntax of
//! [`crate::signing::SIGNATURE_HEADER`] with format `v=1`:
//! `v=1; key=<key id>; ed25519=<base64>`, several comma-separated when
//! more than one key signs (at least one by a trusted key; every one by a
//! trusted key must verify).
//!
//! The signature file `mcp-guard sign` writes beside a bundle
//! ([`SignatureFile`], `<bundle>.sig`) carries the header value with the
//! name and digest it covers, so a reader sees what was signed without
//! recomputing, and `push` sends it.

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::signing::{self, SignatureError};

/// The request header carrying a pushed bundle's author signatures.
pub const AUTHOR_SIGNATURE_HEADER: &str = "x-bundle-author-signature";

/// The author-signature format this code makes and checks (`v=1`).
pub const AUTHOR_FORMAT_VERSION: &str = "1";

/// First line of every author-signed message.
const AUTHOR_MESSAGE_PREFIX: &str = "mcp-guard bundle author v1";

/// The exact bytes an author signs for the bundle `name` with body
/// `bytes`: `mcp-guard bundle author v1\n<name>\n<hex sha256 of bytes>`.
/// Unambiguous for any name: the digest is always the last line.
pub fn author_message(name: &str, bytes: &[u8]) -> Vec<u8> {
    format!("{AUTHOR_MESSAGE_PREFIX}\n{name}\n{}", sha256_hex(bytes)).into_bytes()
}

/// Signs `bytes` as the bundle `name` with every key in `keys`; returns
/// the [`AUTHOR_SIGNATURE_HEADER`] value.
pub fn author_sign(name: &str, bytes: &[u8], keys: &[&SigningKey]) -> String {
    signing::sign_message(&author_message(name, bytes), keys, AUTHOR_FORMAT_VERSION)
}

/// Checks that `header` (absent or empty: [`SignatureError::Missing`])
/// holds a valid author signature of `bytes` as the bundle `name` by one
/// of `trusted`. Returns the id of a key that verified (the service
/// records it with the stored version).
pub fn author_verify(
    name: &str,
    bytes: &[u8],
    header: Option<&str>,
    trusted: &[VerifyingKey],
) -> Result<String, SignatureError> {
    signing::verify_message(
        &author_message(name, bytes),
        header,
        trusted,
        AUTHOR_FORMAT_VERSION,
    )
}

/// The hex SHA-256 of `bytes`, as author messages and signature files
/// name a body.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What `mcp-guard sign` writes beside a bundle (`<bundle>.sig`, JSON):
/// the name and digest signed, and the header value `push` sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureFile {
    /// The bundle name signed (the bundle's `name`).
    pub name: String,
    /// Hex SHA-256 of the bundle file's exact bytes.
    pub sha256: String,
    /// The [`AUTHOR_SIGNATURE_HEADER`] value.
    pub signature: String,
}

impl SignatureFile {
    /// Whether this file was made for exactly these bytes as `name`
    /// (checked before a push, so a stale `.sig` is caught locally with a
    /// clear message instead of a refusal by the service).
    pub fn covers(&self, name: &str, bytes: &[u8]) -> bool {
        self.name == name && self.sha256 == sha256_hex(bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signature_verifies_for_its_name_and_bytes_only() {
        let team = key(1);
        let header = author_sign("payments", b"{\"a\":1}", &[&team]);
        let trusted = [team.verifying_key()];
        let id = author_verify("payments", b"{\"a\":1}", Some(&header), &trusted).unwrap();
        assert_eq!(id, signing::key_id(&team.verifying_key()));
        assert!(matches!(
            author_verify("payments", b"{\"a\":2}", Some(&header), &trusted),
            Err(SignatureError::BadSignature(_))
        ));
        assert!(matches!(
            author_verify("billing", b"{\"a\":1}", Some(&header), &trusted),
            Err(SignatureError::BadSignature(_))
        ));
    }

    #[test]
    fn an_untrusted_or_missing_signature_is_refused() {
        let header = author_sign("payments", b"x", &[&key(1)]);
        let trusted = [key(2).verifying_key()];
        assert!(matches!(
            author_verify("payments", b"x", Some(&header), &trusted),
            Err(SignatureError::UnknownKey(_))
        ));
        assert_eq!(
            author_verify("payments", b"x", None, &trusted),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            author_verify("payments", b"x", Some("  "), &trusted),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn serving_and_author_signatures_are_not_interchangeable() {
        let k = key(3);
        let trusted = [k.verifying_key()];
        let served = signing::sign(
            &signing::Signed {
                name: "payments",
                version: 1,
                bytes: b"x",
            },
            &[&k],
        );
        // A serving signature (v=2) is not an author signature ...
        assert_eq!(
            author_verify("payments", b"x", Some(&served), &trusted),
            Err(SignatureError::Unsupported)
        );
        // ... and an author signature relabelled v=2 does not verify as one.
        let author = author_sign("payments", b"x", &[&k]).replacen("v=1", "v=2", 1);
        assert!(matches!(
            signing::verify(
                &signing::Signed {
                    name: "payments",
                    version: 1,
                    bytes: b"x"
                },
                author.as_str(),
                &trusted
            ),
            Err(SignatureError::BadSignature(_))
        ));
    }

    #[test]
    fn every_trusted_signature_must_verify() {
        let (a, b) = (key(4), key(5));
        let good = author_sign("n", b"x", &[&a]);
        let bad = author_sign("n", b"y", &[&b]);
        let both = format!("{good}, {bad}");
        let trusted = [a.verifying_key(), b.verifying_key()];
        assert!(matches!(
            author_verify("n", b"x", Some(&both), &trusted),
            Err(SignatureError::BadSignature(_))
        ));
    }

    #[test]
    fn the_signature_file_names_what_it_covers() {
        let file = SignatureFile {
            name: "n".into(),
            sha256: sha256_hex(b"x"),
            signature: author_sign("n", b"x", &[&key(6)]),
        };
        assert!(file.covers("n", b"x"));
        assert!(!file.covers("n", b"x\n"));
        assert!(!file.covers("m", b"x"));
        let text = serde_json::to_string(&file).unwrap();
        assert_eq!(serde_json::from_str::<SignatureFile>(&text).unwrap(), file);
        assert!(serde_json::from_str::<SignatureFile>(
            r#"{"name":"n","sha256":"00","signature":"v=1","extra":1}"#
        )
        .is_err());
    }
}
