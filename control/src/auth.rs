//! Who may push: bearer tokens from a tokens file, stored as SHA-256
//! digests (a leaked file does not leak tokens), each scoped to bundle-name
//! globs. Digests are compared in constant time, and every entry is
//! compared, so timing reveals neither which entry matched nor how much of
//! a digest did.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};

use crate::name::BundleName;

/// The tokens file: `{"tokens": [{"id", "sha256", "bundles": [globs]}]}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    tokens: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    id: String,
    sha256: String,
    bundles: Vec<String>,
}

/// One accepted token, as held in memory: its digest, never the token.
#[derive(Debug, Clone)]
struct Token {
    id: String,
    digest: [u8; 32],
    scopes: Vec<String>,
}

/// Why a tokens file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read.
    #[error("cannot read tokens file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not of the expected shape.
    #[error("tokens file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Why a request may not push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` header.
    #[error("missing bearer token")]
    Missing,
    /// The token is not in the tokens file.
    #[error("unknown token")]
    Unknown,
    /// The token is valid but not for this bundle.
    #[error("token {token} may not write bundle {bundle}")]
    OutOfScope {
        /// Id of the token.
        token: String,
        /// The bundle asked for.
        bundle: String,
    },
}

/// The accepted tokens. Empty means nobody can push (a read-only service).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl Tokens {
    /// No tokens: every write is refused with 401.
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads a tokens file.
    pub fn load(path: &Path) -> Result<Self, TokensError> {
        let text = std::fs::read(path).map_err(|source| TokensError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| TokensError::Invalid {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parses tokens-file JSON; the error says what is wrong.
    pub fn parse(text: &[u8]) -> Result<Self, String> {
        let file: TokensFile = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let mut tokens = Vec::with_capacity(file.tokens.len());
        for (i, entry) in file.tokens.into_iter().enumerate() {
            if entry.id.is_empty() {
                return Err(format!("tokens[{i}].id must not be empty"));
            }
            let digest = parse_digest(&entry.sha256)
                .ok_or_else(|| format!("tokens[{i}].sha256 must be 64 hex digits"))?;
            if entry.bundles.iter().any(String::is_empty) {
                return Err(format!("tokens[{i}].bundles has an empty pattern"));
            }
            tokens.push(Token {
                id: entry.id,
                digest,
                scopes: entry.bundles,
            });
        }
        Ok(Self { tokens })
    }

    /// How many tokens are accepted.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether no token is accepted.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks an `Authorization` header value for a write to `bundle` and
    /// returns the id of the token that allows it.
    pub fn authorize(
        &self,
        authorization: Option<&str>,
        bundle: &BundleName,
    ) -> Result<String, AuthError> {
        let token = authorization.and_then(bearer).ok_or(AuthError::Missing)?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found: Option<&Token> = None;
        for candidate in &self.tokens {
            let equal: Choice = candidate.digest.ct_eq(&digest);
            // Ids are unique in practice; the first match wins, but the
            // loop never exits early.
            if bool::from(equal) && found.is_none() {
                found = Some(candidate);
            }
        }
        let token = found.ok_or(AuthError::Unknown)?;
        if token
            .scopes
            .iter()
            .any(|p| glob_matches(p, bundle.as_str()))
        {
            Ok(token.id.clone())
        } else {
            Err(AuthError::OutOfScope {
                token: token.id.clone(),
                bundle: bundle.to_string(),
            })
        }
    }
}

/// The token of a `Bearer` authorization (scheme matched
/// case-insensitively, as RFC 7235 says).
fn bearer(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The hex SHA-256 of a token, the form the tokens file keeps; what
/// `mcp-guard hash-token` prints.
pub fn token_digest_hex(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.trim();
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Whether `name` matches `pattern`, where `*` stands for any run of
/// characters (possibly empty) and everything else is literal.
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return false;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole name must be the literal.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> BundleName {
        BundleName::parse(s).expect("valid")
    }

    fn tokens() -> Tokens {
        let file = format!(
            r#"{{"tokens":[{{"id":"team-a","sha256":"{}","bundles":["demo","team-a-*"]}},
                {{"id":"admin","sha256":"{}","bundles":["*"]}}]}}"#,
            token_digest_hex("secret-a"),
            token_digest_hex("secret-admin")
        );
        Tokens::parse(file.as_bytes()).expect("valid tokens file")
    }

    #[test]
    fn globs() {
        assert!(glob_matches("demo", "demo"));
        assert!(!glob_matches("demo", "demo2"));
        assert!(glob_matches("team-a-*", "team-a-prod"));
        assert!(glob_matches("team-a-*", "team-a-"));
        assert!(!glob_matches("team-a-*", "team-b-prod"));
        assert!(glob_matches("*", "x"));
        assert!(glob_matches("a*b*c", "aXXbYYc"));
        assert!(glob_matches("a*a", "aa"));
        assert!(!glob_matches("a*a", "a"));
        assert!(glob_matches("*-prod", "x-prod"));
        assert!(!glob_matches("*-prod", "x-prod2"));
    }

    #[test]
    fn authorizes_by_digest_and_scope() {
        let t = tokens();
        assert_eq!(
            t.authorize(Some("Bearer secret-a"), &name("demo")),
            Ok("team-a".into())
        );
        assert_eq!(
            t.authorize(Some("bearer  secret-a "), &name("team-a-x")),
            Ok("team-a".into())
        );
        assert!(matches!(
            t.authorize(Some("Bearer secret-a"), &name("other")),
            Err(AuthError::OutOfScope { .. })
        ));
        assert_eq!(
            t.authorize(Some("Bearer secret-admin"), &name("other")),
            Ok("admin".into())
        );
        assert_eq!(
            t.authorize(Some("Bearer nope"), &name("demo")),
            Err(AuthError::Unknown)
        );
        assert_eq!(t.authorize(None, &name("demo")), Err(AuthError::Missing));
        assert_eq!(
            t.authorize(Some("Basic secret-a"), &name("demo")),
            Err(AuthError::Missing)
        );
        assert_eq!(
            Tokens::none().authorize(Some("Bearer secret-a"), &name("demo")),
            Err(AuthError::Unknown)
        );
    }

    #[test]
    fn rejects_bad_files() {
        assert!(Tokens::parse(b"{}").is_err());
        assert!(Tokens::parse(br#"{"tokens":[{"id":"a","sha256":"xyz","bundles":[]}]}"#).is_err());
        assert!(Tokens::parse(br#"{"tokens":[],"extra":1}"#).is_err());
    }
}
