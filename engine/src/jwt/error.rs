//! Errors of the JWT verifier: configuration errors (reported when a bundle
//! is validated, with the JSON path of the offending value) and per-token
//! rejections (reported in decisions and logs through a stable reason code).
//!
//! No message ever contains token bytes, claim values or key material: a
//! rejected token may be an attacker's probe or a leaked credential, and
//! both end up in logs.

use thiserror::Error;

/// Why a [`VerifyConfig`](super::VerifyConfig) cannot be compiled.
///
/// Every variant locates the problem so bundle validation can report it as a
/// JSON path ([`JwtConfigError::path`]) relative to the `verify` object.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtConfigError {
    /// A top-level setting is out of range (e.g. `max_token_bytes: 0`).
    #[error("{field}: {reason}")]
    BadSetting {
        /// Field name inside the verify object.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No issuer is configured, so every token would be rejected.
    #[error("issuers: at least one issuer is required")]
    NoIssuers,
    /// An issuer-level field is invalid (empty `iss`, duplicate `iss`, no
    /// audiences, no algorithms, ...).
    #[error("issuers[{issuer}].{field}: {reason}")]
    BadIssuer {
        /// Index into `issuers`.
        issuer: usize,
        /// Field name inside the issuer object.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An entry of an issuer's `algorithms` is unknown or refused (`none`,
    /// `HS256`, ...).
    #[error("issuers[{issuer}].algorithms[{index}]: {reason}")]
    BadAlgorithm {
        /// Index into `issuers`.
        issuer: usize,
        /// Index into that issuer's `algorithms`.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The issuer's `jwks` is not a `{"keys": [...]}` object or holds no
    /// usable signature key.
    #[error("issuers[{issuer}].jwks: {reason}")]
    BadJwks {
        /// Index into `issuers`.
        issuer: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// One JWK cannot be used (unsupported type or curve, too small, private
    /// material, malformed coordinates, duplicate kid, ...).
    #[error("issuers[{issuer}].jwks.keys[{key}]{}: {reason}", kid_note(kid))]
    BadKey {
        /// Index into `issuers`.
        issuer: usize,
        /// Index into that issuer's `jwks.keys`.
        key: usize,
        /// The key's `kid`, when it has one (key ids are public).
        kid: Option<String>,
        /// What is wrong with it.
        reason: String,
    },
}

fn kid_note(kid: &Option<String>) -> String {
    match kid {
        Some(kid) => format!(" (kid {kid:?})"),
        None => String::new(),
    }
}

impl JwtConfigError {
    /// JSON path of the offending value relative to the verify object, e.g.
    /// `issuers[0].jwks.keys[2]`; prefix it with the object's own path.
    pub fn path(&self) -> String {
        match self {
            Self::BadSetting { field, .. } => (*field).to_string(),
            Self::NoIssuers => "issuers".to_string(),
            Self::BadIssuer { issuer, field, .. } => format!("issuers[{issuer}].{field}"),
            Self::BadAlgorithm { issuer, index, .. } => {
                format!("issuers[{issuer}].algorithms[{index}]")
            }
            Self::BadJwks { issuer, .. } => format!("issuers[{issuer}].jwks"),
            Self::BadKey { issuer, key, .. } => format!("issuers[{issuer}].jwks.keys[{key}]"),
        }
    }

    /// The problem without its location, for reports that print the path
    /// separately.
    pub fn reason(&self) -> String {
        match self {
            Self::NoIssuers => "at least one issuer is required".to_string(),
            Self::BadSetting { reason, .. }
            | Self::BadIssuer { reason, .. }
            | Self::BadAlgorithm { reason, .. }
            | Self::BadJwks { reason, .. } => reason.clone(),
            Self::BadKey { kid, reason, .. } => match kid {
                Some(kid) => format!("kid {kid:?}: {reason}"),
                None => reason.clone(),
            },
        }
    }
}

/// Which structural rule a malformed token broke. Carries no token bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MalformedPart {
    /// The token is empty.
    Empty,
    /// Not exactly three dot-separated parts.
    PartCount,
    /// A byte outside the unpadded base64url alphabet (`=` padding included).
    Alphabet,
    /// A part that must not be empty is empty.
    EmptyPart,
    /// The header does not decode as base64url.
    HeaderBase64,
    /// The header is not a UTF-8 JSON object without duplicate keys.
    HeaderJson,
    /// `alg` missing or not a string.
    HeaderAlg,
    /// `kid` present but not a string.
    HeaderKid,
    /// The header lists `crit` extensions, none of which are understood.
    HeaderCrit,
    /// The payload does not decode as base64url.
    PayloadBase64,
    /// The payload is not a UTF-8 JSON object without duplicate keys.
    PayloadJson,
    /// The signature does not decode as base64url.
    SignatureBase64,
}

impl MalformedPart {
    fn describe(self) -> &'static str {
        match self {
            Self::Empty => "empty token",
            Self::PartCount => "not three dot-separated parts",
            Self::Alphabet => "character outside unpadded base64url",
            Self::EmptyPart => "empty header, payload or signature",
            Self::HeaderBase64 => "header is not base64url",
            Self::HeaderJson => "header is not a JSON object (or has duplicate keys)",
            Self::HeaderAlg => "header alg missing or not a string",
            Self::HeaderKid => "header kid is not a string",
            Self::HeaderCrit => "header has unsupported crit extensions",
            Self::PayloadBase64 => "payload is not base64url",
            Self::PayloadJson => "payload is not a JSON object (or has duplicate keys)",
            Self::SignatureBase64 => "signature is not base64url",
        }
    }
}

impl std::fmt::Display for MalformedPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why a token was rejected. Use [`JwtError::reason_code`] in decisions and
/// metrics: the codes are stable, the messages are for humans.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum JwtError {
    /// Longer than `max_token_bytes`; nothing was decoded.
    #[error("token exceeds {limit} bytes")]
    TokenTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Structurally invalid.
    #[error("malformed token: {0}")]
    Malformed(MalformedPart),
    /// `alg: none` in any spelling: unsigned tokens are never accepted.
    #[error("unsigned token (alg none)")]
    AlgNone,
    /// The header's `alg` is unsupported (e.g. any `HS*`) or not in the
    /// issuer's `algorithms`.
    #[error("algorithm not allowed for this issuer")]
    AlgNotAllowed,
    /// The selected key cannot be used with the token's `alg` (wrong key
    /// type, curve, or the key pins a different `alg`).
    #[error("algorithm does not match the selected key")]
    AlgKeyMismatch,
    /// No key with the token's `kid` (or, without a `kid`, not exactly one
    /// key compatible with the token's `alg`).
    #[error("no matching key for the token")]
    UnknownKid,
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// `exp` is missing: tokens without an expiry are refused.
    #[error("token has no exp claim")]
    MissingExp,
    /// `exp` has passed (beyond the allowed clock skew).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the allowed clock skew).
    #[error("token not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the allowed clock skew).
    #[error("token issued in the future")]
    IssuedInFuture,
    /// `iss` is missing or names no configured issuer.
    #[error("issuer not trusted")]
    WrongIssuer,
    /// `aud` is missing or names none of the issuer's audiences.
    #[error("audience not accepted")]
    WrongAudience,
    /// A registered claim has the wrong JSON type (e.g. `exp` as a string).
    #[error("claim {claim} has the wrong type")]
    BadClaims {
        /// The registered claim name (never its value).
        claim: &'static str,
    },
}

impl JwtError {
    /// Stable, machine-readable code for decisions, logs and metrics.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::TokenTooLarge { .. } => "token_too_large",
            Self::Malformed(_) => "malformed",
            Self::AlgNone => "alg_none",
            Self::AlgNotAllowed => "alg_not_allowed",
            Self::AlgKeyMismatch => "alg_key_mismatch",
            Self::UnknownKid => "unknown_kid",
            Self::BadSignature => "bad_signature",
            Self::MissingExp => "missing_exp",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::BadClaims { .. } => "bad_claims",
        }
    }
}

/// Every code [`JwtError::reason_code`] can return, for documentation and
/// dashboards.
pub const REASON_CODES: &[&str] = &[
    "token_too_large",
    "malformed",
    "alg_none",
    "alg_not_allowed",
    "alg_key_mismatch",
    "unknown_kid",
    "bad_signature",
    "missing_exp",
    "expired",
    "not_yet_valid",
    "issued_in_future",
    "wrong_issuer",
    "wrong_audience",
    "bad_claims",
];
