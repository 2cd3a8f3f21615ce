//! The filter's counters and gauge, under the same names as the wasm
//! filter's; Envoy shows them as `<metrics_namespace>.<name>`
//! (`dynamicmodulescustom.` unless the filter config sets another).

use mcp_guard_engine::pii::{PiiReport, PiiType};
use mcp_guard_engine::{Decision, Effect, Reason};

use crate::abi::{self, ModuleBuffer};
use crate::config::ConfigPtr;

/// Ids of every metric, defined once per filter configuration; `None` for
/// one Envoy refused (counting then skips it rather than failing).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    requests: Option<usize>,
    allowed: Option<usize>,
    denied: Option<usize>,
    unauthenticated: Option<usize>,
    no_policy: Option<usize>,
    bad_request: Option<usize>,
    redactions: Option<usize>,
    pii_by_type: Vec<Option<usize>>,
    /// Bodies refused for what they held or could not show.
    pub pii_blocked: Option<usize>,
    /// Pinned tools seen changed, or calls to one denied.
    pub tool_pin_mismatch: Option<usize>,
    /// Failed bundle fetches.
    pub bundle_fetch_failures: Option<usize>,
    /// Fetched bundles that failed validation.
    pub bundle_rejected: Option<usize>,
    /// The active bundle version (gauge).
    pub policy_version: Option<usize>,
}

fn define(config: ConfigPtr, name: &str, gauge: bool) -> Option<usize> {
    let mut id = 0usize;
    let name = ModuleBuffer::of(name.as_bytes());
    // SAFETY: called from the config-new hook with Envoy's live config;
    // no labels; `id` is a live local.
    let result = unsafe {
        if gauge {
            abi::envoy_dynamic_module_callback_http_filter_config_define_gauge(
                config.0,
                name,
                std::ptr::null_mut(),
                0,
                &mut id,
            )
        } else {
            abi::envoy_dynamic_module_callback_http_filter_config_define_counter(
                config.0,
                name,
                std::ptr::null_mut(),
                0,
                &mut id,
            )
        }
    };
    (result == abi::METRICS_SUCCESS).then_some(id)
}

impl Metrics {
    /// Defines every metric (only possible inside the config-new hook).
    pub fn define(config: ConfigPtr) -> Self {
        let counter = |name: &str| define(config, name, false);
        Self {
            requests: counter("mcp_requests_total"),
            allowed: counter("mcp_allowed_total"),
            denied: counter("mcp_denied_total"),
            unauthenticated: counter("mcp_unauthenticated_total"),
            no_policy: counter("mcp_no_policy_total"),
            bad_request: counter("mcp_bad_request_total"),
            redactions: counter("mcp_redactions_total"),
            pii_by_type: PiiType::ALL
                .iter()
                .map(|ty| {
                    let name = serde_json::to_value(ty)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    counter(&format!("mcp_pii_{name}_total"))
                })
                .collect(),
            pii_blocked: counter("mcp_pii_blocked_total"),
            tool_pin_mismatch: counter("mcp_tool_pin_mismatch_total"),
            bundle_fetch_failures: counter("mcp_bundle_fetch_failures_total"),
            bundle_rejected: counter("mcp_bundle_rejected_total"),
            policy_version: define(config, "mcp_policy_version", true),
        }
    }

    /// The counters one decision adds 1 to.
    pub fn decision_ids(&self, decision: &Decision) -> [Option<usize>; 2] {
        let second = match (decision.effect, decision.reason) {
            (Effect::Allow, _) => self.allowed,
            (_, Reason::MissingToken | Reason::InvalidToken) => self.unauthenticated,
            (_, Reason::NoPolicy) => self.no_policy,
            (_, Reason::BodyTooLarge | Reason::InvalidBody | Reason::InvalidRequest) => {
                self.bad_request
            }
            _ => self.denied,
        };
        [self.requests, second]
    }

    /// The counters a scrub report adds to, with the amounts.
    pub fn redaction_ids(&self, report: &PiiReport) -> Vec<(Option<usize>, u64)> {
        let mut out = vec![(self.redactions, report.total() as u64)];
        for (ty, count) in report.iter() {
            if count > 0 {
                let id = self.pii_by_type.get(ty.index()).copied().flatten();
                out.push((id, count as u64));
            }
        }
        out
    }

    /// Adds to a counter outside any stream (main thread).
    pub fn bump_config(config: ConfigPtr, id: Option<usize>) {
        if let Some(id) = id {
            // SAFETY: `config` is live while its configuration exists.
            let _ = unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    config.0,
                    id,
                    std::ptr::null_mut(),
                    0,
                    1,
                )
            };
        }
    }

    /// Publishes the active bundle version.
    pub fn set_version(&self, config: ConfigPtr, version: u64) {
        if let Some(id) = self.policy_version {
            // SAFETY: as in `bump_config`.
            let _ = unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_set_gauge(
                    config.0,
                    id,
                    std::ptr::null_mut(),
                    0,
                    version,
                )
            };
        }
    }
}
