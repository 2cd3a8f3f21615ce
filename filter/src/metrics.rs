//! Counters and gauges the filter exports to Envoy stats.
//!
//! Names show in `/stats` as `wasmcustom.<name>`; values are summed across
//! worker VMs.

use crate::calls as hostcalls;
use proxy_wasm::types::MetricType;

use mcp_guard_engine::pii::PiiType;
use mcp_guard_engine::{Decision, Effect, Reason};

/// Ids of every metric, defined once per VM.
#[derive(Debug, Clone, Copy, Default)]
pub struct Metrics {
    requests: u32,
    allowed: u32,
    denied: u32,
    unauthenticated: u32,
    no_policy: u32,
    bad_request: u32,
    redactions: u32,
    pii_by_type: [u32; PiiType::ALL.len()],
    pii_blocked: u32,
    tool_pin_mismatch: u32,
    bundle_fetch_failures: u32,
    bundle_rejected: u32,
    policy_version: u32,
}

fn define(kind: MetricType, name: &str) -> u32 {
    hostcalls::define_metric(kind, name).unwrap_or(u32::MAX)
}

fn bump(id: u32, by: i64) {
    if id != u32::MAX {
        crate::host::increment_metric(id, by);
    }
}

impl Metrics {
    /// Defines all metrics; a metric the host refuses is skipped silently
    /// rather than failing the filter.
    pub fn define() -> Self {
        use MetricType::{Counter, Gauge};
        Self {
            requests: define(Counter, "mcp_requests_total"),
            allowed: define(Counter, "mcp_allowed_total"),
            denied: define(Counter, "mcp_denied_total"),
            unauthenticated: define(Counter, "mcp_unauthenticated_total"),
            no_policy: define(Counter, "mcp_no_policy_total"),
            bad_request: define(Counter, "mcp_bad_request_total"),
            redactions: define(Counter, "mcp_redactions_total"),
            pii_by_type: PiiType::ALL.map(|ty| {
                let name = serde_json::to_value(ty)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                define(Counter, &format!("mcp_pii_{name}_total"))
            }),
            pii_blocked: define(Counter, "mcp_pii_blocked_total"),
            tool_pin_mismatch: define(Counter, "mcp_tool_pin_mismatch_total"),
            bundle_fetch_failures: define(Counter, "mcp_bundle_fetch_failures_total"),
            bundle_rejected: define(Counter, "mcp_bundle_rejected_total"),
            policy_version: define(Gauge, "mcp_policy_version"),
        }
    }

    /// Counts one decided request.
    pub fn record_decision(&self, decision: &Decision) {
        bump(self.requests, 1);
        match (decision.effect, decision.reason) {
            (Effect::Allow, _) => bump(self.allowed, 1),
            (_, Reason::MissingToken | Reason::InvalidToken) => bump(self.unauthenticated, 1),
            (_, Reason::NoPolicy) => bump(self.no_policy, 1),
            (_, Reason::BodyTooLarge | Reason::InvalidBody | Reason::InvalidRequest) => {
                bump(self.bad_request, 1)
            }
            _ => bump(self.denied, 1),
        }
    }

    /// Counts values replaced, in total and per type, and blocked bodies.
    pub fn record_redactions(&self, report: &mcp_guard_engine::pii::PiiReport) {
        bump(self.redactions, report.total() as i64);
        for (ty, count) in report.iter() {
            if count > 0 {
                if let Some(&id) = self.pii_by_type.get(ty.index()) {
                    bump(id, count as i64);
                }
            }
        }
    }

    /// Counts a response or request refused because of what it contained
    /// or because it could not be scanned.
    pub fn record_pii_block(&self) {
        bump(self.pii_blocked, 1);
    }

    /// Counts a pinned tool seen changed or a call to one denied.
    pub fn record_tool_pin_mismatch(&self) {
        bump(self.tool_pin_mismatch, 1);
    }

    /// Counts a failed bundle fetch (network, status, timeout).
    pub fn record_fetch_failure(&self) {
        bump(self.bundle_fetch_failures, 1);
    }

    /// Counts a fetched bundle that failed validation.
    pub fn record_bundle_rejected(&self) {
        bump(self.bundle_rejected, 1);
    }

    /// Publishes the active bundle version.
    pub fn set_policy_version(&self, version: u64) {
        if self.policy_version != u32::MAX {
            crate::host::record_metric(self.policy_version, version);
        }
    }
}
