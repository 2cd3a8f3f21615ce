//! The outcome of evaluating a request against a policy.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::Serialize;

/// Whether traffic passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// The request goes upstream.
    Allow,
    /// The request is answered locally and never reaches the upstream.
    Deny,
}

impl Effect {
    /// Lower-case name used in logs and replies.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        }
    }
}

/// Machine-readable reason code carried by every decision, so an SRE can
/// tell *why* from the access log alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// An allow rule matched and no deny rule did.
    RuleAllow,
    /// A deny rule matched.
    RuleDeny,
    /// No rule allowed the request: deny by default.
    DefaultDeny,
    /// Denied by default, but an allow rule would have matched had the
    /// token carried the scopes it requires (RFC 6750 `insufficient_scope`).
    InsufficientScope,
    /// No verified identity was present on the request.
    MissingToken,
    /// The identity was present but could not be read as claims.
    InvalidToken,
    /// No policy bundle is active yet: fail closed.
    NoPolicy,
    /// The request body a rule needs is larger than the bundle's limit.
    BodyTooLarge,
    /// The request body a rule needs is not readable JSON / JSON-RPC, or
    /// a body to scrub cannot be scanned.
    InvalidBody,
    /// The request line or headers are not in the normal form the policy
    /// is matched on (dot segments, encoded slashes, forged header
    /// variants, trailers where none may be...): refused, never guessed.
    InvalidRequest,
    /// The `Mcp-Method` / `Mcp-Name` request headers (MCP 2026-07-28) are
    /// ambiguous, malformed, or say something other than the body: the
    /// spec's `HeaderMismatch` (JSON-RPC error -32020, HTTP 400).
    HeaderMismatch,
    /// A `tools/call` to a pinned tool whose definition, as the server
    /// last advertised it, differs from its pin (or was never advertised
    /// while the pins deny unobserved tools).
    ToolPinMismatch,
    /// Allowed only because the bundle is in dry-run mode; the real
    /// outcome is in [`Decision::dry_run`].
    DryRun,
    /// Allowed, but the upstream's own token could not be obtained (RFC
    /// 8693 token exchange failed): refused, never forwarded with the
    /// caller's token.
    TokenExchangeFailed,
    /// Allowed, but the route its policy chose cannot be carried out (the
    /// headers left for another cluster before the body chose, a model
    /// that cannot be rewritten): refused, never sent elsewhere.
    RouteUnavailable,
    /// Allowed by the rules, but a rate limit or token budget of the
    /// caller is spent for the current window (HTTP 429).
    RateLimited,
    /// Allowed by the rules, but the rate-limit service could not be
    /// asked (unreachable, slow, a bad answer) and the bundle fails
    /// closed (HTTP 503).
    RateLimitUnavailable,
}

impl Reason {
    /// Stable snake_case code used in replies, access logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::RuleAllow => "rule_allow",
            Reason::RuleDeny => "rule_deny",
            Reason::DefaultDeny => "default_deny",
            Reason::InsufficientScope => "insufficient_scope",
            Reason::MissingToken => "missing_token",
            Reason::InvalidToken => "invalid_token",
            Reason::NoPolicy => "no_policy",
            Reason::BodyTooLarge => "body_too_large",
            Reason::InvalidBody => "invalid_body",
            Reason::InvalidRequest => "invalid_request",
            Reason::HeaderMismatch => "header_mismatch",
            Reason::DryRun => "dry_run",
            Reason::TokenExchangeFailed => "token_exchange_failed",
            Reason::ToolPinMismatch => "tool_pin_mismatch",
            Reason::RouteUnavailable => "route_unavailable",
            Reason::RateLimited => "rate_limited",
            Reason::RateLimitUnavailable => "ratelimit_unavailable",
        }
    }

    /// The HTTP status a denial for this reason is answered with.
    pub fn deny_status(self) -> u32 {
        match self {
            Reason::MissingToken | Reason::InvalidToken => 401,
            Reason::NoPolicy
            | Reason::TokenExchangeFailed
            | Reason::RouteUnavailable
            | Reason::RateLimitUnavailable => 503,
            Reason::RateLimited => 429,
            Reason::BodyTooLarge => 413,
            Reason::InvalidBody | Reason::InvalidRequest | Reason::HeaderMismatch => 400,
            Reason::RuleAllow
            | Reason::RuleDeny
            | Reason::DefaultDeny
            | Reason::DryRun
            | Reason::InsufficientScope
            | Reason::ToolPinMismatch => 403,
        }
    }
}

/// One decision: the effect, the rule that caused it and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Allow or deny: what is enforced.
    pub effect: Effect,
    /// Id of the deciding rule; `None` for default deny and identity failures.
    pub rule_id: Option<Arc<str>>,
    /// Reason code.
    pub reason: Reason,
    /// A finer code, e.g. why a token was invalid (`expired`).
    pub detail: Option<&'static str>,
    /// What dry-run rules or a dry-run bundle would have decided, when
    /// that differs from what is enforced.
    pub dry_run: Option<DryRunOutcome>,
}

/// A decision that was computed and logged but not enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DryRunOutcome {
    /// What would have been enforced.
    pub effect: Effect,
    /// The rule that would have decided.
    pub rule_id: Option<Arc<str>>,
    /// Its reason code.
    pub reason: Reason,
}

impl Decision {
    /// A denial not tied to any rule (identity failure, no policy, default deny).
    pub fn deny(reason: Reason) -> Self {
        Self {
            effect: Effect::Deny,
            rule_id: None,
            reason,
            detail: None,
            dry_run: None,
        }
    }

    /// The same denial with a finer reason code.
    pub fn with_detail(self, detail: &'static str) -> Self {
        Self {
            detail: Some(detail),
            ..self
        }
    }

    /// The rule id, or `default_deny` when none decided.
    pub fn rule_label(&self) -> &str {
        self.rule_id.as_deref().unwrap_or("default_deny")
    }

    /// Appends the decision as JSON object members (no braces) to `out`, so
    /// callers can add their own members around it without re-parsing.
    pub fn write_json_members(&self, out: &mut String) {
        let _ = write!(
            out,
            "\"decision\":\"{}\",\"reason\":\"{}\",\"rule\":",
            self.effect.as_str(),
            self.reason.as_str()
        );
        // No rule decided (identity failures, default deny, no policy):
        // `null`, never a made-up rule name.
        match self.rule_id.as_deref() {
            Some(rule) => push_json_string(out, rule),
            None => out.push_str("null"),
        }
        if let Some(detail) = self.detail {
            out.push_str(",\"detail\":");
            push_json_string(out, detail);
        }
        if let Some(dry) = &self.dry_run {
            let _ = write!(
                out,
                ",\"dry_run\":{{\"decision\":\"{}\",\"reason\":\"{}\",\"rule\":",
                dry.effect.as_str(),
                dry.reason.as_str()
            );
            match dry.rule_id.as_deref() {
                Some(rule) => push_json_string(out, rule),
                None => out.push_str("null"),
            }
            out.push('}');
        }
    }
}

/// Appends `value` as a JSON string literal; keeps log lines valid JSON
/// whatever a rule id or subject contains.
pub fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_members_escape_rule_ids() {
        let d = Decision {
            effect: Effect::Allow,
            rule_id: Some("a\"b".into()),
            reason: Reason::RuleAllow,
            detail: None,
            dry_run: Some(DryRunOutcome {
                effect: Effect::Deny,
                rule_id: None,
                reason: Reason::DefaultDeny,
            }),
        };
        let mut s = String::from("{");
        d.write_json_members(&mut s);
        s.push('}');
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["rule"], "a\"b");
        assert_eq!(v["decision"], "allow");
        assert_eq!(v["dry_run"]["decision"], "deny");
        assert_eq!(v["dry_run"]["rule"], serde_json::Value::Null);
    }

    #[test]
    fn deny_statuses_follow_reason() {
        assert_eq!(Reason::MissingToken.deny_status(), 401);
        assert_eq!(Reason::DefaultDeny.deny_status(), 403);
        assert_eq!(Reason::NoPolicy.deny_status(), 503);
    }
}
