//! Rate limits and token budgets in the exchange flow: which limits an
//! allowed request counts under, their counters (`store: local`,
//! [`local`]) or the rate-limit service (`store: global`, [`global`]),
//! the answer's usage and the 429 answer.
//!
//! Order for one allowed request: every local limit is read first and
//! the request refused if one is spent (nothing counted); then request
//! limits count 1 each (a CAS race lost at the limit refuses; counts
//! already taken for this request stay spent); then the global limits
//! are asked in one call (hits 1 each). Token budgets are charged the
//! answer's usage when the stream is logged: local counters directly,
//! global ones with a call nobody waits for (hits = usage - 1, the
//! pre-check already counted 1), sent from the plugin's root context.

pub mod global;
pub mod local;

use std::sync::Arc;

use mcp_guard_engine::decision::push_json_string;
use mcp_guard_engine::rate_limit::usage::UsageMeter;
use mcp_guard_engine::rate_limit::LimitHit;
use mcp_guard_engine::Decision;

use crate::host::{Host, Level};

/// A request refused over a limit: what its 429 says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Limit id.
    pub id: Arc<str>,
    /// Requests or tokens per window.
    pub limit: u64,
    /// Window length, seconds.
    pub window_secs: u64,
    /// Seconds until the window resets.
    pub reset_secs: u64,
}

/// A global check on its way.
#[derive(Debug, Clone)]
pub struct PendingCheck {
    /// The callout id.
    pub id: u64,
    /// Positions in [`LimitState::hits`] of the descriptors sent, in
    /// order.
    pub sent: Vec<usize>,
    /// The allow decision carried out when the service agrees.
    pub decision: Decision,
}

/// The limits of one exchange.
#[derive(Debug, Default)]
pub struct LimitState {
    /// The limits that count this request (noted when it is allowed).
    pub hits: Vec<LimitHit>,
    /// The checks ran (once per request).
    pub checked: bool,
    /// The global check on its way.
    pub pending: Option<PendingCheck>,
    /// Why the request was refused, for its 429.
    pub refusal: Option<Refusal>,
    /// Some token budget counts this request: its answer is metered.
    pub metered: bool,
    /// The answer's usage, read as it passes.
    pub meter: Option<UsageMeter>,
    /// The answer's status was 2xx.
    pub response_ok: bool,
    /// The answer was charged.
    pub charged: bool,
}

/// The 429 body: the limit named, the request id, no caller data.
pub fn refusal_body(refusal: &Refusal, request_id: &str) -> String {
    let mut body = String::with_capacity(128);
    body.push_str("{\"error\":\"too_many_requests\",\"reason\":\"rate_limited\",\"limit\":");
    push_json_string(&mut body, &refusal.id);
    body.push_str(&format!(
        ",\"retry_after\":{},\"request_id\":",
        refusal.reset_secs
    ));
    push_json_string(&mut body, request_id);
    body.push('}');
    body
}

/// Answers 429 with `Retry-After` and the `RateLimit-*` headers
/// (draft-ietf-httpapi-ratelimit-headers).
pub fn send_refusal(
    host: &mut impl Host,
    decision: &Decision,
    refusal: &Refusal,
    request_id: &str,
) {
    let body = refusal_body(refusal, request_id);
    let details = format!("mcp_{}", decision.reason.as_str());
    let reset = refusal.reset_secs.to_string();
    let limit = refusal.limit.to_string();
    let policy = format!("{};w={}", refusal.limit, refusal.window_secs);
    let headers = [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
        ("retry-after", reset.as_str()),
        ("ratelimit-limit", limit.as_str()),
        ("ratelimit-remaining", "0"),
        ("ratelimit-reset", reset.as_str()),
        ("ratelimit-policy", policy.as_str()),
    ];
    if !host.send_reply(429, &details, &headers, body.as_bytes()) {
        host.log(Level::Warn, "local reply refused by host");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refusal_body_is_json_naming_the_limit() {
        let r = Refusal {
            id: "tenant-rps".into(),
            limit: 20,
            window_secs: 1,
            reset_secs: 1,
        };
        let v: serde_json::Value = serde_json::from_str(&refusal_body(&r, "r\"1")).unwrap();
        assert_eq!(v["limit"], "tenant-rps");
        assert_eq!(v["reason"], "rate_limited");
        assert_eq!(v["request_id"], "r\"1");
    }
}
