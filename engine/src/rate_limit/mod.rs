//! Rate limits and LLM token budgets per caller (`limits.rate` of a
//! bundle): the schema, its validation, the compiled form the flow checks
//! ([`compiled`]), token usage read from answers ([`usage`]) and the
//! wire codec of Envoy's rate-limit service for `store: global`
//! ([`rls`]).
//!
//! A limit counts requests the policy allowed (denied ones never count),
//! in fixed windows aligned to UTC (`per`), per caller key (`by`: claim
//! values, the model, the MCP tool). Request limits count 1 at
//! admission; token limits refuse up front once the window's spent
//! tokens reach the budget and are charged the answer's `usage` after it.

pub mod compiled;
pub mod rls;
pub mod usage;

use serde::{Deserialize, Serialize};

use crate::conditions::Conditions;

pub use compiled::{CallerKey, CompiledLimit, LimitHit, LimitKind, Window};

/// Most limits one bundle may define (each matching limit costs a shared
/// data round trip per request).
pub const MAX_LIMITS: usize = 64;

/// Most claims one limit may be keyed by.
pub const MAX_KEY_CLAIMS: usize = 8;

/// Largest count or budget a limit may set: far above any real budget,
/// and small enough that sums of charges never overflow.
pub const MAX_AMOUNT: u64 = 1_000_000_000_000;

/// Longest rate-limit service call timeout.
pub const MAX_TIMEOUT_MS: u64 = 10_000;

/// One limit as written in the bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Unique id, named in 429 answers, records and the shared-data key.
    pub id: String,
    /// Requests admitted per window (exactly one of `requests` and
    /// `tokens`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// LLM tokens (the answers' `usage`) per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Window length; windows are aligned to UTC.
    pub per: Per,
    /// What one budget belongs to.
    #[serde(default)]
    pub by: KeyBy,
    /// Which allowed requests count (the conditions of access rules; an
    /// empty set counts every allowed request).
    #[serde(default)]
    pub when: Conditions,
    /// Where the counters live.
    #[serde(default)]
    pub store: Store,
    /// Evaluated and recorded, never refused.
    #[serde(default)]
    pub dry_run: bool,
}

/// Window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Per {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Per {
    /// Seconds in one window.
    pub fn seconds(self) -> u64 {
        match self {
            Per::Second => 1,
            Per::Minute => 60,
            Per::Hour => 3_600,
            Per::Day => 86_400,
        }
    }
}

/// The parts of a caller key.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyBy {
    /// Claim paths (subject, tenant, client id...). A caller lacking one
    /// is keyed under an explicit "absent" value: every such caller
    /// shares one budget (never an unlimited one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<String>,
    /// The model the request names.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub model: bool,
    /// The MCP tool the request calls (`tools/call` name).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tool: bool,
}

/// Where a limit's counters live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Store {
    /// Proxy-wasm shared data: exact across every worker of one Envoy.
    #[default]
    Local,
    /// The rate-limit service named in `limits.global`: shared by every
    /// Envoy calling it.
    Global,
}

/// The rate-limit service `store: global` limits use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalLimits {
    /// Envoy cluster of the service (HTTP/2).
    pub cluster: String,
    /// Rate-limit domain sent with every request.
    pub domain: String,
    /// How long a check may take.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// What an unreachable service (or a bad answer) means.
    #[serde(default)]
    pub on_unavailable: OnUnavailable,
}

fn default_timeout_ms() -> u64 {
    200
}

/// What an unreachable rate-limit service means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    /// Refuse (503 `ratelimit_unavailable`): fail closed.
    #[default]
    Deny,
    /// Let the request through (recorded).
    Allow,
}

/// Ids are used in shared-data keys, descriptors and headers: a small
/// token alphabet.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Issues of the `rate` and `global` members (paths under `$.limits`);
/// the `when` conditions are checked with the access rules' checks by
/// the bundle.
pub fn issues(rate: &[RateLimit], global: Option<&GlobalLimits>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |at: String, msg: &str| out.push((at, msg.to_owned()));
    if rate.len() > MAX_LIMITS {
        add(
            "$.limits.rate".into(),
            &format!("at most {MAX_LIMITS} limits"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, limit) in rate.iter().enumerate() {
        let at = format!("$.limits.rate[{i}]");
        if !valid_id(&limit.id) {
            add(
                format!("{at}.id"),
                "must be 1 to 64 characters of A-Z a-z 0-9 - _ .",
            );
        } else if !seen.insert(limit.id.as_str()) {
            add(format!("{at}.id"), "duplicate limit id");
        }
        match (limit.requests, limit.tokens) {
            (Some(_), Some(_)) => add(
                at.clone(),
                "must set exactly one of `requests` and `tokens`",
            ),
            (None, None) => add(at.clone(), "must set one of `requests` or `tokens`"),
            (Some(n), None) | (None, Some(n)) => {
                let member = if limit.requests.is_some() {
                    "requests"
                } else {
                    "tokens"
                };
                if n == 0 {
                    add(format!("{at}.{member}"), "must be greater than 0");
                } else if n > MAX_AMOUNT {
                    add(format!("{at}.{member}"), "must be at most 10^12");
                } else if limit.store == Store::Global && n > u64::from(u32::MAX) {
                    add(
                        format!("{at}.{member}"),
                        "a global limit must be at most 4294967295 (the service's requests_per_unit)",
                    );
                }
            }
        }
        if limit.by.claims.len() > MAX_KEY_CLAIMS {
            add(
                format!("{at}.by.claims"),
                &format!("at most {MAX_KEY_CLAIMS} claims"),
            );
        }
        let mut claims = std::collections::HashSet::new();
        for (j, c) in limit.by.claims.iter().enumerate() {
            if c.is_empty() {
                add(format!("{at}.by.claims[{j}]"), "must not be empty");
            } else if !claims.insert(c.as_str()) {
                add(format!("{at}.by.claims[{j}]"), "duplicate claim");
            }
        }
    }
    let any_global = rate.iter().any(|l| l.store == Store::Global);
    match global {
        None if any_global => add(
            "$.limits.global".into(),
            "is required: some limit has `store: global`",
        ),
        Some(_) if !any_global => add(
            "$.limits.global".into(),
            "is set but no limit has `store: global`",
        ),
        Some(g) => {
            if g.cluster.is_empty() {
                add("$.limits.global.cluster".into(), "must not be empty");
            }
            if g.domain.is_empty() {
                add("$.limits.global.domain".into(), "must not be empty");
            }
            if g.timeout_ms == 0 || g.timeout_ms > MAX_TIMEOUT_MS {
                add(
                    "$.limits.global.timeout_ms".into(),
                    "must be between 1 and 10000",
                );
            }
        }
        None => {}
    }
    out
}
