//! Author signatures on push (`--trusted-signers FILE`): which team keys
//! may author which bundles, and the check every `PUT /v1/bundles/{name}`
//! passes before its body is parsed or stored. The signature format and
//! the signed message are the engine's ([`mcp_guard_engine::author_signing`]).
//!
//! The file:
//!
//! ```json
//! {"signers": [{"key": "<ed25519 public key, base64>", "bundles": ["payments-*"]}]}
//! ```
//!
//! Bundle patterns are the tokens file's globs ([`crate::auth::glob_matches`]).
//! A key whose patterns do not match the pushed name is not trusted for it.

use std::path::Path;

use hyper::header::HeaderMap;
use mcp_guard_engine::author_signing::{author_verify, AUTHOR_SIGNATURE_HEADER};
use mcp_guard_engine::signing::{self, SignatureError, VerifyingKey};
use serde::Deserialize;

use crate::auth::glob_matches;

/// Longest author-signature header accepted: [`signing::MAX_SIGNATURES`]
/// entries of `v=1; key=<16 hex>; ed25519=<88 base64>` fit in far less.
pub const MAX_HEADER_BYTES: usize = 2048;

/// Signers listed at most in one file.
pub const MAX_SIGNERS: usize = 1024;

/// One trusted author key and the bundles it may author.
#[derive(Debug, Clone)]
struct Signer {
    key: VerifyingKey,
    bundles: Vec<String>,
}

/// The keys trusted to author bundles.
#[derive(Debug, Clone, Default)]
pub struct TrustedSigners {
    signers: Vec<Signer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignersFile {
    signers: Vec<SignerEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignerEntry {
    key: String,
    bundles: Vec<String>,
}

/// A trusted-signers file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SignersError {
    /// The file cannot be read.
    #[error("trusted signers file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The content is wrong.
    #[error("trusted signers file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, with the entry's index.
        message: String,
    },
}

/// Why a push's author signature is refused (`403`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorRefusal {
    /// No `x-bundle-author-signature` header.
    #[error("this service requires an author signature: sign the bundle with `mcp-guard sign` and push it with its signature (header x-bundle-author-signature)")]
    Missing,
    /// The header cannot be parsed, or a trusted key's signature does not
    /// cover these bytes as this bundle.
    #[error("author signature refused: {0}")]
    Invalid(String),
    /// Signed, but by no key trusted for this bundle name.
    #[error("author signature refused: {0}")]
    Untrusted(String),
}

impl AuthorRefusal {
    /// The `reason` of the 403 answer.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthorRefusal::Missing => "author_signature_missing",
            AuthorRefusal::Invalid(_) => "author_signature_invalid",
            AuthorRefusal::Untrusted(_) => "author_signature_untrusted",
        }
    }
}

impl TrustedSigners {
    /// Reads a trusted-signers file.
    pub fn load(path: &Path) -> Result<Self, SignersError> {
        let text = std::fs::read(path).map_err(|source| SignersError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| SignersError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses the file's JSON; the error names the entry that is wrong.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let file: SignersFile = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        if file.signers.is_empty() {
            return Err("signers is empty: no push could be accepted".into());
        }
        if file.signers.len() > MAX_SIGNERS {
            return Err(format!("more than {MAX_SIGNERS} signers"));
        }
        let mut signers = Vec::with_capacity(file.signers.len());
        for (i, entry) in file.signers.into_iter().enumerate() {
            let key = signing::verifying_key_from_text(entry.key.trim())
                .map_err(|e| format!("signers[{i}].key: {e}"))?;
            if entry.bundles.is_empty() {
                return Err(format!("signers[{i}].bundles is empty"));
            }
            if entry.bundles.iter().any(String::is_empty) {
                return Err(format!("signers[{i}].bundles has an empty pattern"));
            }
            signers.push(Signer {
                key,
                bundles: entry.bundles,
            });
        }
        Ok(TrustedSigners { signers })
    }

    /// How many keys are trusted.
    pub fn len(&self) -> usize {
        self.signers.len()
    }

    /// Whether no key is trusted.
    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The key ids trusted for the bundle `name`.
    fn keys_for(&self, name: &str) -> Vec<VerifyingKey> {
        self.signers
            .iter()
            .filter(|s| s.bundles.iter().any(|p| glob_matches(p, name)))
            .map(|s| s.key)
            .collect()
    }

    /// Checks the author signature of `bytes` pushed as `name`; returns the
    /// id of the key that verified.
    pub fn verify(
        &self,
        name: &str,
        bytes: &[u8],
        headers: &HeaderMap,
    ) -> Result<String, AuthorRefusal> {
        let mut values = headers.get_all(AUTHOR_SIGNATURE_HEADER).iter();
        let Some(value) = values.next() else {
            return Err(AuthorRefusal::Missing);
        };
        if values.next().is_some() {
            return Err(AuthorRefusal::Invalid(format!(
                "more than one {AUTHOR_SIGNATURE_HEADER} header (send one, entries separated by commas)"
            )));
        }
        if value.len() > MAX_HEADER_BYTES {
            return Err(AuthorRefusal::Invalid(format!(
                "the {AUTHOR_SIGNATURE_HEADER} header is {} bytes, the limit is {MAX_HEADER_BYTES}",
                value.len()
            )));
        }
        let text = value.to_str().map_err(|_| {
            AuthorRefusal::Invalid(format!(
                "the {AUTHOR_SIGNATURE_HEADER} header is not ASCII text"
            ))
        })?;
        let trusted = self.keys_for(name);
        match author_verify(name, bytes, Some(text), &trusted) {
            Ok(key_id) => Ok(key_id),
            Err(SignatureError::Missing) => Err(AuthorRefusal::Missing),
            Err(e @ SignatureError::UnknownKey(_)) => {
                Err(AuthorRefusal::Untrusted(format!("{e} for bundle {name}")))
            }
            Err(e) => Err(AuthorRefusal::Invalid(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_engine::author_signing::author_sign;
    use mcp_guard_engine::signing::SigningKey;

    fn signers(key: &SigningKey, globs: &[&str]) -> TrustedSigners {
        let text = serde_json::json!({"signers": [{
            "key": signing::public_key_base64(&key.verifying_key()),
            "bundles": globs,
        }]});
        TrustedSigners::parse(text.to_string().as_bytes()).expect("valid")
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHOR_SIGNATURE_HEADER, value.parse().expect("header"));
        h
    }

    #[test]
    fn verifies_and_refuses_by_reason() {
        let team = SigningKey::from_bytes(&[3; 32]);
        let trusted = signers(&team, &["payments-*"]);
        let body = br#"{"name":"payments-prod"}"#;
        let header = author_sign("payments-prod", body, &[&team]);
        assert_eq!(
            trusted.verify("payments-prod", body, &headers(&header)),
            Ok(signing::key_id(&team.verifying_key()))
        );
        let refused = |name: &str, bytes: &[u8], h: &HeaderMap| {
            trusted.verify(name, bytes, h).map_err(|e| e.reason())
        };
        assert_eq!(
            refused("payments-prod", body, &HeaderMap::new()),
            Err("author_signature_missing")
        );
        assert_eq!(
            refused("payments-prod", body, &headers("")),
            Err("author_signature_missing")
        );
        assert_eq!(
            refused("payments-prod", b"{}", &headers(&header)),
            Err("author_signature_invalid")
        );
        assert_eq!(
            refused("payments-prod", body, &headers("v=1; key=zz")),
            Err("author_signature_invalid")
        );
        // The key is trusted, but not for this name.
        let other = author_sign("billing", body, &[&team]);
        assert_eq!(
            refused("billing", body, &headers(&other)),
            Err("author_signature_untrusted")
        );
        let stranger = SigningKey::from_bytes(&[4; 32]);
        let theirs = author_sign("payments-prod", body, &[&stranger]);
        assert_eq!(
            refused("payments-prod", body, &headers(&theirs)),
            Err("author_signature_untrusted")
        );
        let long = "a".repeat(MAX_HEADER_BYTES + 1);
        assert_eq!(
            refused("payments-prod", body, &headers(&long)),
            Err("author_signature_invalid")
        );
        let mut twice = headers(&header);
        twice.append(AUTHOR_SIGNATURE_HEADER, header.parse().expect("header"));
        assert_eq!(
            refused("payments-prod", body, &twice),
            Err("author_signature_invalid")
        );
    }

    #[test]
    fn file_errors_name_the_entry() {
        for (text, needle) in [
            (r#"{"signers":[]}"#, "empty"),
            (
                r#"{"signers":[{"key":"nope","bundles":["a"]}]}"#,
                "signers[0].key",
            ),
            (
                r#"{"signers":[{"key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","bundles":[]}]}"#,
                "signers[0]",
            ),
            (r#"{"signer":[]}"#, "unknown field"),
        ] {
            let e = TrustedSigners::parse(text.as_bytes()).expect_err(text);
            assert!(e.contains(needle), "{text}: {e}");
        }
    }
}
