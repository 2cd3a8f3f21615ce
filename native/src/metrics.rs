//! The filter's metrics, under the same names and labels as the wasm
//! filter's ([`mcp_guard_flow::metric_names`]).
//!
//! The dynamic-modules ABI (v0.2.0, Envoy 1.40) lets a module define
//! counters, gauges and histograms only while its configuration is created
//! (afterwards Envoy answers `Frozen`), but each may carry label names: a
//! labelled metric is a "vec" whose label values are given at every
//! increment and become real Envoy stat tags. So every metric is defined
//! up front in [`Metrics::define`], with its label names, and no
//! combination needs to be predefined; Envoy shows them as
//! `<metrics_namespace>.<name>` with tags in `/stats` and with labels in
//! `/stats/prometheus` (`dynamicmodulescustom` unless the filter config
//! sets another namespace). The label values come from closed sets except
//! the policy name, which is sanitized and bounded.

use std::sync::{Mutex, PoisonError};

use mcp_guard_engine::pii::PiiReport;
use mcp_guard_engine::Decision;
use mcp_guard_flow::metric_names::{self as names, label_value, FetchResult};
use mcp_guard_flow::timing::Durations;

use crate::abi::{self, ModuleBuffer};
use crate::config::ConfigPtr;
use crate::host::Filter;

/// What kind of metric to define.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Ids of every metric, defined once per filter configuration; `None` for
/// one Envoy refused (counting then skips it rather than failing).
#[derive(Debug, Default)]
pub struct Metrics {
    decisions: Option<usize>,
    redactions: Option<usize>,
    pii_blocked: Option<usize>,
    tool_pin_mismatch: Option<usize>,
    routes: Option<usize>,
    route_fallbacks: Option<usize>,
    ratelimit_over: Option<usize>,
    ratelimit_errors: Option<usize>,
    tokens_charged: Option<usize>,
    bundle_fetches: Option<usize>,
    policy_info: Option<usize>,
    decision_duration: Option<usize>,
    scrub_duration: Option<usize>,
    /// Label values of the `mcp_policy_info` series now at 1.
    active_info: Mutex<Option<[String; 2]>>,
}

/// Borrowed label strings as the ABI's buffer array.
fn buffers(values: &[&str]) -> Vec<ModuleBuffer> {
    values
        .iter()
        .map(|v| ModuleBuffer::of(v.as_bytes()))
        .collect()
}

fn define(config: ConfigPtr, kind: Kind, name: &str, labels: &[&str]) -> Option<usize> {
    let mut id = 0usize;
    let name = ModuleBuffer::of(name.as_bytes());
    let mut labels = buffers(labels);
    let (ptr, len) = (labels.as_mut_ptr(), labels.len());
    // SAFETY: called from the config-new hook with Envoy's live config;
    // the name and label buffers outlive the call; `id` is a live local.
    let result = unsafe {
        match kind {
            Kind::Counter => abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                config.0, name, ptr, len, &mut id,
            ),
            Kind::Gauge => abi::envoy_dynamic_module_callback_http_filter_config_define_gauge(
                config.0, name, ptr, len, &mut id,
            ),
            Kind::Histogram => {
                abi::envoy_dynamic_module_callback_http_filter_config_define_histogram(
                    config.0, name, ptr, len, &mut id,
                )
            }
        }
    };
    (result == abi::METRICS_SUCCESS).then_some(id)
}

/// Adds to a counter from a stream.
fn count(filter: Filter, id: Option<usize>, labels: &[&str], by: u64) {
    if let (Some(id), true) = (id, by > 0) {
        let mut labels = buffers(labels);
        // SAFETY: `filter` is this hook's live stream; the label buffers
        // outlive the call; `id` was defined by this stream's config with
        // as many label names.
        let _ = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_increment_counter(
                filter.0,
                id,
                labels.as_mut_ptr(),
                labels.len(),
                by,
            )
        };
    }
}

fn observe(filter: Filter, id: Option<usize>, value: u64) {
    if let Some(id) = id {
        // SAFETY: as in `count`; no labels.
        let _ = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_record_histogram_value(
                filter.0,
                id,
                std::ptr::null_mut(),
                0,
                value,
            )
        };
    }
}

impl Metrics {
    /// Defines every metric (only possible inside the config-new hook).
    pub fn define(config: ConfigPtr) -> Self {
        let m = |kind, name, labels: &[&str]| define(config, kind, name, labels);
        Self {
            decisions: m(Kind::Counter, names::DECISIONS, &names::DECISION_LABELS),
            redactions: m(Kind::Counter, names::REDACTIONS, &names::REDACTION_LABELS),
            pii_blocked: m(Kind::Counter, names::PII_BLOCKED, &[]),
            tool_pin_mismatch: m(Kind::Counter, names::TOOL_PIN_MISMATCH, &[]),
            routes: m(Kind::Counter, names::ROUTES, &[]),
            route_fallbacks: m(Kind::Counter, names::ROUTE_FALLBACKS, &[]),
            ratelimit_over: m(Kind::Counter, names::RATELIMIT_OVER, &[]),
            ratelimit_errors: m(Kind::Counter, names::RATELIMIT_ERRORS, &[]),
            tokens_charged: m(Kind::Counter, names::TOKENS_CHARGED, &[]),
            bundle_fetches: m(Kind::Counter, names::BUNDLE_FETCHES, &names::FETCH_LABELS),
            policy_info: m(Kind::Gauge, names::POLICY_INFO, &names::POLICY_LABELS),
            decision_duration: m(Kind::Histogram, names::DECISION_DURATION, &[]),
            scrub_duration: m(Kind::Histogram, names::SCRUB_DURATION, &[]),
            active_info: Mutex::new(None),
        }
    }

    /// Counts one decided request by outcome and reason.
    pub fn count_decision(&self, filter: Filter, decision: &Decision) {
        let labels = names::decision_labels(decision);
        count(filter, self.decisions, &labels, 1);
    }

    /// Counts values replaced, per PII type.
    pub fn count_redactions(&self, filter: Filter, report: &PiiReport) {
        for (ty, n) in report.iter().filter(|(_, n)| *n > 0) {
            count(filter, self.redactions, &[&names::pii_label(ty)], n as u64);
        }
    }

    /// Counts a body refused for what it held or could not show.
    pub fn count_pii_blocked(&self, filter: Filter) {
        count(filter, self.pii_blocked, &[], 1);
    }

    /// Counts a pinned tool seen changed, or a call to one denied.
    pub fn count_tool_pin_mismatch(&self, filter: Filter) {
        count(filter, self.tool_pin_mismatch, &[], 1);
    }

    /// Counts a request a routing rule sent to a cluster.
    pub fn count_route(&self, filter: Filter) {
        count(filter, self.routes, &[], 1);
    }

    /// Counts an answer replaced by a fallback cluster's.
    pub fn count_route_fallback(&self, filter: Filter) {
        count(filter, self.route_fallbacks, &[], 1);
    }

    /// Counts a rate-limit event.
    pub fn count_rate_limit(
        &self,
        filter: Filter,
        event: mcp_guard_flow::host::RateLimitEvent,
        amount: u64,
    ) {
        use mcp_guard_flow::host::RateLimitEvent;
        let id = match event {
            RateLimitEvent::Over => self.ratelimit_over,
            RateLimitEvent::Error => self.ratelimit_errors,
            RateLimitEvent::TokensCharged => self.tokens_charged,
        };
        count(filter, id, &[], amount);
    }

    /// Records one exchange's time in the filter.
    pub fn record_durations(&self, filter: Filter, durations: &Durations) {
        if let Some(us) = durations.decision_us {
            observe(filter, self.decision_duration, us);
        }
        if let Some(us) = durations.scrub_us {
            observe(filter, self.scrub_duration, us);
        }
    }

    /// Counts one bundle fetch by how it ended (outside any stream).
    pub fn count_fetch(&self, config: ConfigPtr, result: FetchResult) {
        if let Some(id) = self.bundle_fetches {
            let mut labels = buffers(&[result.as_str()]);
            // SAFETY: `config` is live while its configuration exists; the
            // label buffer outlives the call.
            let _ = unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    config.0,
                    id,
                    labels.as_mut_ptr(),
                    labels.len(),
                    1,
                )
            };
        }
    }

    fn set_info(&self, config: ConfigPtr, labels: &[String; 2], value: u64) {
        if let Some(id) = self.policy_info {
            let mut labels = buffers(&[labels[0].as_str(), labels[1].as_str()]);
            // SAFETY: as in `count_fetch`.
            let _ = unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_set_gauge(
                    config.0,
                    id,
                    labels.as_mut_ptr(),
                    labels.len(),
                    value,
                )
            };
        }
    }

    /// Publishes the active bundle: its `mcp_policy_info` series goes to
    /// 1, the one it replaced to 0.
    pub fn set_policy(&self, config: ConfigPtr, name: &str, version: u64) {
        let labels = [label_value(name), version.to_string()];
        let previous = self
            .active_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(labels.clone());
        if let Some(previous) = previous.filter(|p| *p != labels) {
            self.set_info(config, &previous, 0);
        }
        self.set_info(config, &labels, 1);
    }
}
