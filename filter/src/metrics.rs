//! Counters, gauges and histograms the filter exports to Envoy stats.
//!
//! Proxy-wasm metrics have no labels, so labels travel in the name
//! ([`mcp_guard_flow::metric_names::tagged`]:
//! `mcp_decisions_total.outcome=deny.reason=missing_token`) and the
//! bootstrap's `stats_config.stats_tags` turns them back into tags; the
//! Prometheus endpoint then shows
//! `mcp_decisions_total{outcome="deny",reason="missing_token"}`. Names show
//! in `/stats` as `wasmcustom.<name>`; every VM of the plugin shares the
//! same Envoy stat per name, so values add up across workers.
//!
//! Metric ids are per VM: a label combination is defined the first time it
//! is used and its id cached (at most [`MAX_SERIES`] per VM; the label
//! values come from closed sets, so the bound is never reached in
//! practice, and a full cache drops the count rather than grow).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::calls as hostcalls;
use proxy_wasm::types::MetricType;

use mcp_guard_engine::pii::PiiReport;
use mcp_guard_engine::Decision;
use mcp_guard_flow::host::RateLimitEvent;
use mcp_guard_flow::metric_names::{self as names, tagged, FetchResult};
use mcp_guard_flow::timing::Durations;

/// Most labelled series one VM defines.
pub const MAX_SERIES: usize = 512;

/// Ids of the labelled series defined so far, by full stat name.
#[derive(Debug, Default)]
struct Series {
    ids: HashMap<String, u32>,
    /// Name of the `mcp_policy_info` series currently set to 1.
    policy_info: Option<String>,
}

/// The VM's metrics; cheap to clone (one shared cache per VM).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pii_blocked: Option<u32>,
    tool_pin_mismatch: Option<u32>,
    routes: Option<u32>,
    route_fallbacks: Option<u32>,
    ratelimit_over: Option<u32>,
    ratelimit_errors: Option<u32>,
    tokens_charged: Option<u32>,
    decision_duration: Option<u32>,
    scrub_duration: Option<u32>,
    series: Rc<RefCell<Series>>,
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

fn bump(id: Option<u32>, by: u64) {
    if let Some(id) = id {
        crate::host::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }
}

fn set(id: Option<u32>, value: u64) {
    if let Some(id) = id {
        crate::host::record_metric(id, value);
    }
}

impl Metrics {
    /// Defines the unlabelled metrics; a metric the host refuses is
    /// skipped silently rather than failing the filter.
    pub fn define() -> Self {
        use MetricType::{Counter, Histogram};
        Self {
            pii_blocked: define(Counter, names::PII_BLOCKED),
            tool_pin_mismatch: define(Counter, names::TOOL_PIN_MISMATCH),
            routes: define(Counter, names::ROUTES),
            route_fallbacks: define(Counter, names::ROUTE_FALLBACKS),
            ratelimit_over: define(Counter, names::RATELIMIT_OVER),
            ratelimit_errors: define(Counter, names::RATELIMIT_ERRORS),
            tokens_charged: define(Counter, names::TOKENS_CHARGED),
            decision_duration: define(Histogram, names::DECISION_DURATION),
            scrub_duration: define(Histogram, names::SCRUB_DURATION),
            series: Rc::default(),
        }
    }

    /// The id of one labelled series, defined on first use.
    fn labelled(&self, kind: MetricType, base: &str, labels: &[(&str, &str)]) -> Option<u32> {
        let name = tagged(base, labels);
        let mut series = self.series.try_borrow_mut().ok()?;
        if let Some(&id) = series.ids.get(&name) {
            return Some(id);
        }
        if series.ids.len() >= MAX_SERIES {
            return None;
        }
        let id = define(kind, &name)?;
        series.ids.insert(name, id);
        Some(id)
    }

    /// Counts one decided request by outcome and reason.
    pub fn record_decision(&self, decision: &Decision) {
        let [outcome, reason] = names::decision_labels(decision);
        let [k1, k2] = names::DECISION_LABELS;
        let labels = [(k1, outcome), (k2, reason)];
        bump(
            self.labelled(MetricType::Counter, names::DECISIONS, &labels),
            1,
        );
    }

    /// Counts values replaced, per PII type.
    pub fn record_redactions(&self, report: &PiiReport) {
        let [key] = names::REDACTION_LABELS;
        for (ty, count) in report.iter() {
            if count > 0 {
                let label = names::pii_label(ty);
                let id = self.labelled(MetricType::Counter, names::REDACTIONS, &[(key, &label)]);
                bump(id, count as u64);
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

    /// Counts a request a routing rule sent to a cluster.
    pub fn record_route(&self) {
        bump(self.routes, 1);
    }

    /// Counts an answer replaced by a fallback cluster's.
    pub fn record_route_fallback(&self) {
        bump(self.route_fallbacks, 1);
    }

    /// Counts a rate-limit event.
    pub fn record_rate_limit(&self, event: RateLimitEvent, amount: u64) {
        let id = match event {
            RateLimitEvent::Over => self.ratelimit_over,
            RateLimitEvent::Error => self.ratelimit_errors,
            RateLimitEvent::TokensCharged => self.tokens_charged,
        };
        bump(id, amount);
    }

    /// Records one exchange's time in the filter.
    pub fn record_durations(&self, durations: &Durations) {
        if let Some(us) = durations.decision_us {
            set(self.decision_duration, us);
        }
        if let Some(us) = durations.scrub_us {
            set(self.scrub_duration, us);
        }
    }

    /// Counts one bundle fetch by how it ended.
    pub fn record_fetch(&self, result: FetchResult) {
        let [key] = names::FETCH_LABELS;
        let labels = [(key, result.as_str())];
        bump(
            self.labelled(MetricType::Counter, names::BUNDLE_FETCHES, &labels),
            1,
        );
    }

    /// Counts a failed bundle fetch (network, status, timeout).
    pub fn record_fetch_failure(&self) {
        self.record_fetch(FetchResult::Error);
    }

    /// Counts a bundle that failed validation.
    pub fn record_bundle_rejected(&self) {
        self.record_fetch(FetchResult::Rejected);
    }

    /// Publishes the active bundle: its `mcp_policy_info` series goes to
    /// 1, the one it replaced to 0. The replaced series leaves the id
    /// cache (Envoy keeps the stat), so bundle updates never fill it.
    pub fn set_policy(&self, name: &str, version: u64) {
        let version = version.to_string();
        let [k1, k2] = names::POLICY_LABELS;
        let labels = [(k1, name), (k2, version.as_str())];
        let id = self.labelled(MetricType::Gauge, names::POLICY_INFO, &labels);
        let full = tagged(names::POLICY_INFO, &labels);
        let previous = match self.series.try_borrow_mut() {
            Ok(mut series) => {
                let previous = series.policy_info.replace(full.clone());
                match previous {
                    Some(old) if old != full => series.ids.remove(&old),
                    _ => None,
                }
            }
            Err(_) => None,
        };
        set(previous, 0);
        set(id, 1);
    }
}
