//! Settings of the PII scanner, as written by security teams (and, later,
//! embedded in the policy bundle). Parsing is strict so a typo cannot
//! silently turn a detector off.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A kind of sensitive value the scanner recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiType {
    /// E-mail addresses.
    Email,
    /// Telephone numbers (E.164 and common US/UK/DE/FR/IN national forms).
    Phone,
    /// Payment card numbers (brand prefix and Luhn checked).
    Card,
    /// US social security numbers written `AAA-GG-SSSS` or `AAA GG SSSS`,
    /// or as nine digits right after an SSN label (`SSN: 123456789`).
    Ssn,
    /// International bank account numbers (length table and mod-97 checked).
    Iban,
    /// IPv4 and IPv6 addresses.
    Ip,
    /// AWS access key ids (`AKIA…`, `ASIA…`, …).
    AwsKey,
    /// AWS secret access keys, recognised only in context.
    AwsSecret,
    /// API tokens: GitHub, Slack, Stripe, Google, JWTs, `Bearer` credentials.
    Token,
    /// PEM private-key blocks.
    PrivateKey,
    /// Terms from the configured custom list.
    Custom,
}

impl PiiType {
    /// Every type, in report order.
    pub const ALL: [PiiType; 11] = [
        PiiType::Email,
        PiiType::Phone,
        PiiType::Card,
        PiiType::Ssn,
        PiiType::Iban,
        PiiType::Ip,
        PiiType::AwsKey,
        PiiType::AwsSecret,
        PiiType::Token,
        PiiType::PrivateKey,
        PiiType::Custom,
    ];

    /// Dense index, for per-type tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The label written in replacements, e.g. `EMAIL` in `[EMAIL]`.
    pub fn label(self) -> &'static str {
        match self {
            PiiType::Email => "EMAIL",
            PiiType::Phone => "PHONE",
            PiiType::Card => "CARD",
            PiiType::Ssn => "SSN",
            PiiType::Iban => "IBAN",
            PiiType::Ip => "IP",
            PiiType::AwsKey => "AWS_KEY",
            PiiType::AwsSecret => "SECRET",
            PiiType::Token => "TOKEN",
            PiiType::PrivateKey => "PRIVATE_KEY",
            PiiType::Custom => "REDACTED",
        }
    }
}

/// What to do with a value once found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Replace with the type label, e.g. `[EMAIL]`.
    #[default]
    Mask,
    /// Keep a small, low-risk part so humans can still tell values apart,
    /// e.g. `[CARD ****1111]`, `[PHONE ****32]`, `[EMAIL ***@example.com]`.
    Partial,
    /// Replace with a keyed deterministic token, e.g. `[EMAIL:3f9a1c2b]`:
    /// the same value always maps to the same token (joins still work) but
    /// the value cannot be recovered without the key.
    Hash,
    /// Mask, and report that the response must be ended by the caller.
    Block,
}

/// Scanner settings. Every field has a default, so `{}` is a valid
/// configuration: all structured types on, each masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PiiConfig {
    /// Types to detect. Default: every type except `custom`, which is on
    /// whenever `custom_terms` is non-empty.
    pub enabled: Vec<PiiType>,
    /// Action for types not listed in `actions`. Default `mask`.
    pub default_action: Action,
    /// Per-type action overrides.
    pub actions: BTreeMap<PiiType, Action>,
    /// Words or phrases masked as `[REDACTED]`: ASCII case-insensitive,
    /// whole word.
    pub custom_terms: Vec<String>,
    /// Key of the `hash` action. Required (at least 16 bytes) when any
    /// type uses `hash`; never logged.
    pub hash_key: Option<String>,
}

impl Default for PiiConfig {
    fn default() -> Self {
        Self {
            enabled: PiiType::ALL
                .iter()
                .copied()
                .filter(|t| *t != PiiType::Custom)
                .collect(),
            default_action: Action::Mask,
            actions: BTreeMap::new(),
            custom_terms: Vec::new(),
            hash_key: None,
        }
    }
}

impl PiiConfig {
    /// The action for `ty`.
    pub fn action(&self, ty: PiiType) -> Action {
        self.actions
            .get(&ty)
            .copied()
            .unwrap_or(self.default_action)
    }
}

/// Longest custom term accepted, in bytes (bounds the streaming hold-back).
pub const MAX_TERM_LEN: usize = 128;

/// Shortest accepted hash key, in bytes.
pub const MIN_HASH_KEY_LEN: usize = 16;

/// Why a configuration cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PiiConfigError {
    /// A type uses `hash` but no usable key was given.
    #[error("pii: `hash` action needs a hash_key of at least {MIN_HASH_KEY_LEN} bytes")]
    MissingHashKey,
    /// A custom term is empty or only whitespace.
    #[error("pii: custom term #{0} is empty")]
    EmptyTerm(usize),
    /// A custom term is longer than [`MAX_TERM_LEN`].
    #[error("pii: custom term #{0} is longer than {MAX_TERM_LEN} bytes")]
    TermTooLong(usize),
    /// The custom-term automaton could not be built.
    #[error("pii: cannot build matcher: {0}")]
    Matcher(String),
}
