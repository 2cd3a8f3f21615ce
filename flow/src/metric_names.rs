//! Metric names and label values, shared by the proxy-wasm filter and the
//! native module so both export the same series.
//!
//! The native module passes labels to Envoy as real stat tags. Proxy-wasm
//! has no labels: the wasm filter encodes them in the stat name
//! ([`tagged`]: `mcp_decisions_total.outcome=deny.reason=missing_token`)
//! and the bootstrap's `stats_config.stats_tags` turns each `.key=value`
//! segment back into a tag (see docs/metrics.md). Label values come from
//! closed sets (reasons, PII types, fetch results) except the policy name,
//! which [`label_value`] reduces to a safe, bounded form, so no request can
//! create new series.

use mcp_guard_engine::pii::PiiType;
use mcp_guard_engine::{Decision, Effect};

/// Decided requests, labels `outcome` and `reason`.
pub const DECISIONS: &str = "mcp_decisions_total";
/// Values replaced in answers, label `type`.
pub const REDACTIONS: &str = "mcp_redactions_total";
/// Bodies refused for what they held or could not show.
pub const PII_BLOCKED: &str = "mcp_pii_blocked_total";
/// Pinned tools seen changed, or calls to one denied.
pub const TOOL_PIN_MISMATCH: &str = "mcp_tool_pin_mismatch_total";
/// Allowed requests a routing rule sent to a cluster.
pub const ROUTES: &str = "mcp_routes_total";
/// Answers replaced by the route's fallback cluster's.
pub const ROUTE_FALLBACKS: &str = "mcp_route_fallbacks_total";
/// Requests refused (or, dry run, that would be) over a rate limit or
/// token budget.
pub const RATELIMIT_OVER: &str = "mcp_ratelimit_over_total";
/// Rate-limit checks that could not be made (service unreachable, slow,
/// a bad answer; local store refused).
pub const RATELIMIT_ERRORS: &str = "mcp_ratelimit_errors_total";
/// LLM tokens charged to token budgets.
pub const TOKENS_CHARGED: &str = "mcp_tokens_charged_total";
/// Bundle fetches by `result` ([`FetchResult`]).
pub const BUNDLE_FETCHES: &str = "mcp_bundle_fetches_total";
/// 1 for the active bundle (`name`, `version`), 0 for one it replaced.
pub const POLICY_INFO: &str = "mcp_policy_info";
/// Histogram: request-side time in the filter until decided.
pub const DECISION_DURATION: &str = "mcp_decision_duration_microseconds";
/// Histogram: response-side time reading (scrubbing, filtering) answers.
pub const SCRUB_DURATION: &str = "mcp_scrub_duration_microseconds";

/// Label names of [`DECISIONS`].
pub const DECISION_LABELS: [&str; 2] = ["outcome", "reason"];
/// Label names of [`REDACTIONS`].
pub const REDACTION_LABELS: [&str; 1] = ["type"];
/// Label names of [`BUNDLE_FETCHES`].
pub const FETCH_LABELS: [&str; 1] = ["result"];
/// Label names of [`POLICY_INFO`].
pub const POLICY_LABELS: [&str; 2] = ["name", "version"];

/// Longest label value kept (longer ones are cut).
pub const MAX_LABEL_LEN: usize = 64;

/// How one bundle fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchResult {
    /// A new bundle was fetched (and handed to validation).
    Ok,
    /// The control service answered 304: nothing changed.
    NotModified,
    /// Network error, timeout or unexpected status.
    Error,
    /// Fetched, but refused by validation (signature, schema, rollback).
    Rejected,
}

impl FetchResult {
    /// The `result` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchResult::Ok => "ok",
            FetchResult::NotModified => "not_modified",
            FetchResult::Error => "error",
            FetchResult::Rejected => "rejected",
        }
    }
}

/// The `outcome` and `reason` labels of a decision. `outcome` is `allow`
/// or `deny` as enforced, or `dry_run_deny` for a request a dry-run
/// bundle or rule let through but would have denied (its `reason` is
/// then the reason it would have been denied for).
pub fn decision_labels(decision: &Decision) -> [&'static str; 2] {
    match (decision.effect, &decision.dry_run) {
        (Effect::Allow, Some(dry)) if dry.effect == Effect::Deny => {
            ["dry_run_deny", dry.reason.as_str()]
        }
        (Effect::Allow, _) => ["allow", decision.reason.as_str()],
        (Effect::Deny, _) => ["deny", decision.reason.as_str()],
    }
}

/// The `type` label of a PII type (its snake_case bundle name).
pub fn pii_label(ty: PiiType) -> String {
    serde_json::to_value(ty)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A label value reduced to `[a-z0-9_]` (other characters become `_`,
/// upper case is lowered), at most [`MAX_LABEL_LEN`] characters, never
/// empty: safe inside a stat name, where `.` and `=` would break the
/// tag extraction.
pub fn label_value(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .take(MAX_LABEL_LEN)
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect();
    if out.is_empty() {
        out.push_str("unknown");
    }
    out
}

/// The wasm stat name carrying labels: `base.key=value...`, values passed
/// through [`label_value`], in the order given (the `stats_tags` regexes
/// expect the order of the `*_LABELS` constants).
pub fn tagged(base: &str, labels: &[(&str, &str)]) -> String {
    let mut name = base.to_owned();
    for (key, value) in labels {
        name.push('.');
        name.push_str(key);
        name.push('=');
        name.push_str(&label_value(value));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_engine::decision::DryRunOutcome;
    use mcp_guard_engine::Reason;

    #[test]
    fn decisions_label_outcome_and_reason() {
        let deny = Decision::deny(Reason::MissingToken);
        assert_eq!(decision_labels(&deny), ["deny", "missing_token"]);
        let mut dry = Decision::deny(Reason::DryRun);
        dry.effect = Effect::Allow;
        dry.dry_run = Some(DryRunOutcome {
            effect: Effect::Deny,
            rule_id: None,
            reason: Reason::DefaultDeny,
        });
        assert_eq!(decision_labels(&dry), ["dry_run_deny", "default_deny"]);
        dry.dry_run = None;
        assert_eq!(decision_labels(&dry), ["allow", "dry_run"]);
    }

    #[test]
    fn label_values_cannot_break_the_name() {
        // A bundle name made to forge another label or metric segment.
        assert_eq!(label_value("a.reason=x"), "a_reason_x");
        assert_eq!(label_value("Prod Policy"), "prod_policy");
        assert_eq!(label_value(""), "unknown");
        assert_eq!(label_value("é\n}"), "___");
        assert_eq!(label_value(&"x".repeat(500)).len(), MAX_LABEL_LEN);
    }

    #[test]
    fn tagged_names_carry_sanitized_labels_in_order() {
        let name = tagged(POLICY_INFO, &[("name", "team.a=b"), ("version", "7")]);
        assert_eq!(name, "mcp_policy_info.name=team_a_b.version=7");
        assert_eq!(tagged(PII_BLOCKED, &[]), PII_BLOCKED);
    }

    #[test]
    fn every_pii_type_has_a_label() {
        for ty in PiiType::ALL {
            let label = pii_label(ty);
            assert_eq!(label_value(&label), label);
            assert_ne!(label, "unknown");
        }
    }
}
