//! The `identity.verify` section of a bundle: which issuers the filter
//! trusts when it verifies tokens itself (Envoy's `jwt_authn` not
//! configured). Parsing is strict like the rest of the bundle; semantic
//! checks happen when the config is compiled into a
//! [`Verifier`](super::Verifier).

use serde::{Deserialize, Serialize};

use super::error::JwtConfigError;

/// Upper bound for `max_token_bytes`: Envoy's default header limit is 60 KiB,
/// and a bigger token is a resource attack, not a credential.
pub const MAX_TOKEN_BYTES_LIMIT: usize = 64 * 1024;
/// Upper bound for `clock_skew_secs`: more than five minutes of tolerance
/// would quietly extend every token's life.
pub const MAX_CLOCK_SKEW_SECS: u64 = 300;
/// Upper bound for `cache_entries`, to keep a filter's memory bounded.
pub const MAX_CACHE_ENTRIES: usize = 100_000;

/// How the filter finds and verifies the caller's token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Request header carrying the token (matched case-insensitively by the
    /// filter, as HTTP header names are).
    #[serde(default = "default_header")]
    pub header: String,
    /// Prefix before the token in that header; the auth scheme part
    /// (`Bearer`) is matched case-insensitively, per RFC 7235. May be empty
    /// for headers that carry the bare token.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Trusted issuers; a token is checked against the one whose `iss`
    /// equals the token's `iss` claim.
    pub issuers: Vec<IssuerConfig>,
    /// Tolerance, in seconds, for `exp`, `nbf` and `iat` against the proxy
    /// clock (at most 300).
    #[serde(default = "default_clock_skew")]
    pub clock_skew_secs: u64,
    /// Longer tokens are rejected before any decoding (at most 65536).
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
    /// Verified tokens remembered per filter instance so repeat requests skip
    /// signature checks; 0 disables the cache.
    #[serde(default = "default_cache_entries")]
    pub cache_entries: usize,
}

/// One trusted token issuer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// Exact `iss` claim value of this issuer's tokens.
    pub iss: String,
    /// Accepted `aud` values; the token must name at least one. Required and
    /// non-empty: a token minted for another service of the same issuer must
    /// not be replayable here, so there is no "any audience" setting.
    pub audiences: Vec<String>,
    /// The issuer's public keys as a JWKS object (`{"keys": [...]}`), e.g.
    /// the document served at its `jwks_uri`. Keys marked `"use": "enc"` are
    /// skipped; private key members are refused. `null` (absent) only in a
    /// bundle pushed with `discovery`, before the control service fills it
    /// in; the filter refuses an issuer without keys.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub jwks: serde_json::Value,
    /// OpenID discovery URL (`.../.well-known/openid-configuration`) the
    /// control service fetches the JWKS from, embeds as `jwks`, and
    /// re-fetches to follow key rotation; filters never fetch keys
    /// themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery: Option<String>,
    /// Accepted signature algorithms, e.g. `["RS256", "ES256"]`. Supported:
    /// RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA.
    /// `none` and the HMAC family are refused.
    pub algorithms: Vec<String>,
}

fn default_header() -> String {
    "authorization".into()
}

fn default_prefix() -> String {
    "Bearer ".into()
}

fn default_clock_skew() -> u64 {
    60
}

fn default_max_token_bytes() -> usize {
    8192
}

fn default_cache_entries() -> usize {
    1024
}

impl VerifyConfig {
    /// A config with the given issuers and every other field at its default.
    pub fn with_issuers(issuers: Vec<IssuerConfig>) -> Self {
        Self {
            header: default_header(),
            prefix: default_prefix(),
            issuers,
            clock_skew_secs: default_clock_skew(),
            max_token_bytes: default_max_token_bytes(),
            cache_entries: default_cache_entries(),
        }
    }

    /// Takes the token out of a header value: strips `prefix` (its scheme
    /// matched case-insensitively) and surrounding whitespace. `None` when
    /// the prefix is absent or nothing follows it, so a request with another
    /// auth scheme is treated as unauthenticated, not as a malformed token.
    pub fn token_from_header<'a>(&self, value: &'a str) -> Option<&'a str> {
        let value = value.trim();
        let prefix = self.prefix.trim_start();
        let head = value.get(..prefix.len())?;
        if !head.eq_ignore_ascii_case(prefix) {
            return None;
        }
        let token = value.get(prefix.len()..)?.trim();
        (!token.is_empty()).then_some(token)
    }

    /// Checks the top-level settings (issuers are checked while compiling).
    pub(crate) fn check_settings(&self) -> Result<(), JwtConfigError> {
        let bad = |field, reason: &str| {
            Err(JwtConfigError::BadSetting {
                field,
                reason: reason.to_string(),
            })
        };
        if self.header.is_empty()
            || !self
                .header
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b':')
        {
            return bad("header", "must be a non-empty HTTP header name");
        }
        if self.prefix.chars().any(|c| c.is_control()) {
            return bad("prefix", "must not contain control characters");
        }
        if self.max_token_bytes == 0 || self.max_token_bytes > MAX_TOKEN_BYTES_LIMIT {
            return bad("max_token_bytes", "must be between 1 and 65536");
        }
        if self.clock_skew_secs > MAX_CLOCK_SKEW_SECS {
            return bad("clock_skew_secs", "must be at most 300");
        }
        if self.cache_entries > MAX_CACHE_ENTRIES {
            return bad("cache_entries", "must be at most 100000");
        }
        if self.issuers.is_empty() {
            return Err(JwtConfigError::NoIssuers);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply() {
        let c: VerifyConfig = serde_json::from_str(r#"{"issuers": []}"#).unwrap();
        assert_eq!(c, VerifyConfig::with_issuers(vec![]));
        assert_eq!(c.header, "authorization");
        assert_eq!(c.prefix, "Bearer ");
        assert_eq!(c.clock_skew_secs, 60);
        assert_eq!(c.max_token_bytes, 8192);
        assert_eq!(c.cache_entries, 1024);
    }

    #[test]
    fn unknown_fields_rejected() {
        assert!(serde_json::from_str::<VerifyConfig>(r#"{"issuers": [], "skew": 1}"#).is_err());
        let issuer = r#"{"iss":"a","audiences":["b"],"jwks":{"keys":[]},"algorithms":[],"x":1}"#;
        assert!(serde_json::from_str::<IssuerConfig>(issuer).is_err());
    }

    #[test]
    fn discovery_issuers_need_resolved_keys_in_the_filter() {
        let issuer = |extra: &str| {
            let text = format!(r#"{{"iss":"a","audiences":["b"],"algorithms":["EdDSA"]{extra}}}"#);
            serde_json::from_str::<IssuerConfig>(&text).unwrap()
        };
        let discovery_only =
            issuer(r#","discovery":"http://idp/.well-known/openid-configuration""#);
        assert!(discovery_only.jwks.is_null());
        let error = super::super::Verifier::new(&VerifyConfig::with_issuers(vec![discovery_only]))
            .unwrap_err();
        assert_eq!(error.path(), "issuers[0].jwks");
        assert!(error.reason().contains("not resolved"), "{error}");
        let neither =
            super::super::Verifier::new(&VerifyConfig::with_issuers(vec![issuer("")])).unwrap_err();
        assert!(
            neither.reason().contains("one of jwks or discovery"),
            "{neither}"
        );
        // Absent fields stay absent when written back.
        let text = serde_json::to_string(&issuer("")).unwrap();
        assert!(
            !text.contains("jwks") && !text.contains("discovery"),
            "{text}"
        );
    }

    #[test]
    fn token_from_header() {
        let c = VerifyConfig::with_issuers(vec![]);
        assert_eq!(
            c.token_from_header("Bearer abc.def.ghi"),
            Some("abc.def.ghi")
        );
        assert_eq!(c.token_from_header("bearer  abc "), Some("abc"));
        assert_eq!(c.token_from_header("Basic abc"), None);
        assert_eq!(c.token_from_header("Bearer "), None);
        assert_eq!(c.token_from_header("Bear"), None);
        assert_eq!(c.token_from_header("Beé"), None);
        let bare = VerifyConfig {
            prefix: String::new(),
            ..c
        };
        assert_eq!(bare.token_from_header(" abc "), Some("abc"));
    }

    #[test]
    fn settings_are_bounded() {
        let mut c = VerifyConfig::with_issuers(vec![]);
        assert_eq!(c.check_settings(), Err(JwtConfigError::NoIssuers));
        c.max_token_bytes = 0;
        assert_eq!(c.check_settings().unwrap_err().path(), "max_token_bytes");
        c.max_token_bytes = 10;
        c.clock_skew_secs = 301;
        assert_eq!(c.check_settings().unwrap_err().path(), "clock_skew_secs");
        c.clock_skew_secs = 0;
        c.header = "x y".into();
        assert_eq!(c.check_settings().unwrap_err().path(), "header");
    }
}
