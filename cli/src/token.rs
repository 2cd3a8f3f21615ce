//! Turning a token into claims for `explain`.
//!
//! When the bundle configures token verification (`identity.verify`) the
//! token is verified with the engine's [`Verifier`], as the filter would.
//! Otherwise (the usual case: Envoy's `jwt_authn` verifies and the filter
//! reads its metadata) the payload is decoded **without** any signature
//! check, and the report says so. Error messages never contain the token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mcp_guard_engine::jwt::{Verifier, VerifyConfig};
use mcp_guard_engine::Claims;
use serde_json::Value;
use thiserror::Error;

/// Why a token could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Nothing but whitespace (or a bare `Bearer`).
    #[error("the token is empty")]
    Empty,
    /// Not three dot-separated parts.
    #[error("the token is not a compact JWT (expected three dot-separated parts, found {0})")]
    NotCompact(usize),
    /// The payload is not base64url.
    #[error("the token payload is not base64url")]
    BadBase64,
    /// The payload is not a JSON object.
    #[error("the token payload is not a JSON object")]
    NotJsonObject,
    /// The bundle's `identity.verify` cannot be compiled.
    #[error("the bundle's identity.verify is invalid: {0}")]
    BadVerifyConfig(String),
}

/// How the claims used for a decision were obtained.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenOutcome {
    /// The token verified against the bundle's issuers.
    Verified(Claims),
    /// The bundle verifies tokens and this one was rejected; carries the
    /// engine's stable reason code (e.g. `expired`).
    Rejected(&'static str),
    /// No verification is configured: the payload, decoded unchecked.
    Unverified(Claims),
}

/// Strips surrounding whitespace and an optional `Bearer ` scheme, so a
/// pasted `Authorization` header value works too.
pub fn normalise(raw: &str) -> &str {
    let raw = raw.trim();
    match raw.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("bearer ") => raw[7..].trim(),
        _ => raw,
    }
}

/// Decodes a compact JWT's payload without checking anything else.
pub fn decode_unverified(token: &str) -> Result<Claims, TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(TokenError::NotCompact(parts.len()));
    }
    // Padding is not part of JWS compact form, but tolerate it.
    let payload = parts[1].trim_end_matches('=');
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::BadBase64)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(Claims::new(map)),
        _ => Err(TokenError::NotJsonObject),
    }
}

/// The verification settings of a bundle, looked up in its JSON text
/// (`identity.verify`), so the CLI verifies as soon as the bundle format
/// carries them.
pub fn verify_config(bundle_json: &Value) -> Result<Option<VerifyConfig>, TokenError> {
    match bundle_json.pointer("/identity/verify") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| TokenError::BadVerifyConfig(e.to_string())),
    }
}

/// Reads a token: verified when `config` is given, decoded unchecked
/// otherwise. `now_unix` is the request's time (for `exp` / `nbf`).
pub fn claims_from_token(
    raw: &str,
    config: Option<&VerifyConfig>,
    now_unix: u64,
) -> Result<TokenOutcome, TokenError> {
    let token = normalise(raw);
    let Some(config) = config else {
        return decode_unverified(token).map(TokenOutcome::Unverified);
    };
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    let verifier =
        Verifier::new(config).map_err(|e| TokenError::BadVerifyConfig(format!("{}", e)))?;
    Ok(match verifier.verify(token, now_unix) {
        Ok(claims) => TokenOutcome::Verified(claims),
        Err(e) => TokenOutcome::Rejected(e.reason_code()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn encode(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    fn token(payload: &Value) -> String {
        format!(
            "{}.{}.sig",
            encode(&json!({"alg": "RS256", "typ": "JWT"})),
            encode(payload)
        )
    }

    #[test]
    fn decodes_payloads_and_strips_bearer() {
        let t = format!(
            "  Bearer {}\n",
            token(&json!({"sub": "alice", "roles": ["a"]}))
        );
        let claims = decode_unverified(normalise(&t)).unwrap();
        assert_eq!(claims.get_str("sub"), Some("alice"));
        let outcome = claims_from_token(&t, None, 0).unwrap();
        assert!(matches!(outcome, TokenOutcome::Unverified(_)));
    }

    #[test]
    fn bad_tokens_are_named_without_echoing_them() {
        assert_eq!(decode_unverified(""), Err(TokenError::Empty));
        assert_eq!(
            decode_unverified("secret-token"),
            Err(TokenError::NotCompact(1))
        );
        assert_eq!(decode_unverified("a.!!!.c"), Err(TokenError::BadBase64));
        let not_object = format!("a.{}.c", encode(&json!([1])));
        assert_eq!(
            decode_unverified(&not_object),
            Err(TokenError::NotJsonObject)
        );
        let message = decode_unverified("secret-token").unwrap_err().to_string();
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn verify_config_is_read_from_the_bundle_json() {
        assert_eq!(verify_config(&json!({"identity": {}})), Ok(None));
        let config = verify_config(&json!({"identity": {"verify": {"issuers": []}}}))
            .unwrap()
            .unwrap();
        assert_eq!(config.header, "authorization");
        // A config without issuers cannot verify anything: reported, not used.
        let err = claims_from_token("a.b.c", Some(&config), 0).unwrap_err();
        assert!(matches!(err, TokenError::BadVerifyConfig(_)), "{err:?}");
        assert!(verify_config(&json!({"identity": {"verify": {"x": 1}}})).is_err());
    }
}
