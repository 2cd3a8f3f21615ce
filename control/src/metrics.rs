//! Prometheus metrics at `GET /metrics` (OpenMetrics text, encoded by
//! `prometheus-client`): what was pushed and refused, what was served, how
//! many long-polls wait, and the version each bundle is at.
//!
//! Counter families are registered without their `_total` suffix: the
//! encoder appends it, so the samples keep the names dashboards use
//! (`mcp_guard_control_pushes_total{result="created"}`). Every label value
//! comes from a closed set in the code or from a stored bundle's name, so
//! the series stay bounded.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::store::BundleStore;

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `{result="…"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// `{reason="…"}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// `{status="…"}` (an HTTP status code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: u16,
}

/// `{name="…"}` (a stored bundle's name).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameLabel {
    name: String,
}

/// The service's counters and gauges, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pushes: Family<ResultLabel, Counter>,
    rejects: Family<ReasonLabel, Counter>,
    serves: Family<StatusLabel, Counter>,
    rotations: Family<ResultLabel, Counter>,
    reports: Family<ResultLabel, Counter>,
    waiting: Gauge,
    connections: Gauge,
    max_connections: Gauge,
    refused_connections: Counter,
    bundle_versions: Family<NameLabel, Gauge>,
    store_writable: Gauge,
    /// Serialises renders: the store-derived gauges are refreshed, then
    /// encoded, as one step.
    render: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let pushes = Family::default();
        registry.register(
            "mcp_guard_control_pushes",
            "Bundle writes (push, rollback) by result.",
            pushes.clone(),
        );
        let rejects = Family::default();
        registry.register(
            "mcp_guard_control_rejects",
            "Bundles refused, by reason.",
            rejects.clone(),
        );
        let serves = Family::default();
        registry.register(
            "mcp_guard_control_serves",
            "Bundle reads by HTTP status.",
            serves.clone(),
        );
        let rotations = Family::default();
        registry.register(
            "mcp_guard_control_key_refresh",
            "Discovery key refreshes by result.",
            rotations.clone(),
        );
        let reports = Family::default();
        registry.register(
            "mcp_guard_control_status_reports",
            "Filter status reports by result (unauthenticated input).",
            reports.clone(),
        );
        let waiting = Gauge::default();
        registry.register(
            "mcp_guard_control_long_polls_waiting",
            "Long-poll requests waiting for a new version.",
            waiting.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "mcp_guard_control_connections_open",
            "Client connections open.",
            connections.clone(),
        );
        let max_connections = Gauge::default();
        registry.register(
            "mcp_guard_control_connections_max",
            "Connection limit (0: none but the open-file limit).",
            max_connections.clone(),
        );
        let refused_connections = Counter::default();
        registry.register(
            "mcp_guard_control_connections_refused",
            "Connections refused past the connection limit: long-polls answered 503, or closed when the overflow lane was full.",
            refused_connections.clone(),
        );
        let bundle_versions = Family::default();
        registry.register(
            "mcp_guard_control_bundle_version",
            "Latest stored version of each bundle.",
            bundle_versions.clone(),
        );
        let store_writable = Gauge::default();
        registry.register(
            "mcp_guard_control_store_writable",
            "1 while pushes can be stored (0: the shared database is unreachable; reads are served from memory).",
            store_writable.clone(),
        );
        Metrics {
            registry,
            pushes,
            rejects,
            serves,
            rotations,
            reports,
            waiting,
            connections,
            max_connections,
            refused_connections,
            bundle_versions,
            store_writable,
            render: Mutex::new(()),
        }
    }
}

/// Counts a connection as open for as long as it lives.
#[derive(Debug)]
pub struct Open(Gauge);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a long-poll as waiting for as long as it lives.
#[derive(Debug)]
pub struct Waiting(Gauge);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// Counts a write (push or rollback) by outcome: `created`,
    /// `unauthorized`, `forbidden`, `invalid`, `conflict`, `too_large`,
    /// `error`, ...
    pub fn push(&self, result: &'static str) {
        self.pushes.get_or_create(&ResultLabel { result }).inc();
    }

    /// Counts a bundle refused at load time or in a push, by reason.
    pub fn reject(&self, reason: &'static str) {
        self.rejects.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a bundle read by status code.
    pub fn serve(&self, status: u16) {
        self.serves.get_or_create(&StatusLabel { status }).inc();
    }

    /// Counts a key-refresh outcome: `rotated`, `unchanged`, `failed`.
    pub fn rotation(&self, result: &'static str) {
        self.rotations.get_or_create(&ResultLabel { result }).inc();
    }

    /// Counts a filter status report by what became of it: `accepted`,
    /// `invalid`, `unknown_bundle`, `rate_limited`, `too_large`; and each
    /// accepted rejection report as `rejected`.
    pub fn report(&self, result: &'static str) {
        self.reports.get_or_create(&ResultLabel { result }).inc();
    }

    /// Marks one long-poll as waiting until the guard is dropped.
    pub fn waiting(self: &Arc<Self>) -> Waiting {
        self.waiting.inc();
        Waiting(self.waiting.clone())
    }

    /// Marks one connection as open until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> Open {
        self.connections.inc();
        Open(self.connections.clone())
    }

    /// Records the connection limit, exported as a gauge.
    pub fn set_max_connections(&self, max: usize) {
        self.max_connections
            .set(i64::try_from(max).unwrap_or(i64::MAX));
    }

    /// Counts a connection refused because the limit was reached.
    pub fn refuse_connection(&self) {
        self.refused_connections.inc();
    }

    /// The OpenMetrics text of every metric ([`CONTENT_TYPE`]).
    pub fn render(&self, store: &BundleStore) -> String {
        let _one_at_a_time = self.render.lock().unwrap_or_else(PoisonError::into_inner);
        for bundle in store.list() {
            self.bundle_versions
                .get_or_create(&NameLabel {
                    name: bundle.name().to_owned(),
                })
                .set(i64::try_from(bundle.version()).unwrap_or(i64::MAX));
        }
        self.store_writable.set(i64::from(store.writable().is_ok()));
        let mut out = String::new();
        // Writing into a String cannot fail; an encoding error would leave
        // a partial page, which a scraper reports.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families() {
        let store =
            BundleStore::from_bundles([("demo", r#"{"name":"demo","version":2}"#)]).expect("valid");
        let metrics = Arc::new(Metrics::default());
        metrics.push("created");
        metrics.push("created");
        metrics.serve(304);
        let guard = metrics.waiting();
        let open = metrics.connection();
        metrics.set_max_connections(9);
        metrics.refuse_connection();
        let text = metrics.render(&store);
        assert!(text.contains("mcp_guard_control_connections_open 1\n"));
        assert!(text.contains("mcp_guard_control_connections_max 9\n"));
        assert!(text.contains("mcp_guard_control_connections_refused_total 1\n"));
        assert!(text.contains("# TYPE mcp_guard_control_connections_refused counter\n"));
        assert!(text.contains("# TYPE mcp_guard_control_long_polls_waiting gauge\n"));
        drop(open);
        assert!(metrics
            .render(&store)
            .contains("mcp_guard_control_connections_open 0\n"));
        assert!(text.contains("mcp_guard_control_pushes_total{result=\"created\"} 2\n"));
        assert!(text.contains("mcp_guard_control_serves_total{status=\"304\"} 1\n"));
        assert!(text.contains("mcp_guard_control_long_polls_waiting 1\n"));
        assert!(text.contains("mcp_guard_control_bundle_version{name=\"demo\"} 2\n"));
        assert!(text.contains("mcp_guard_control_store_writable 1\n"));
        assert!(!text.contains("_total_total"));
        drop(guard);
        assert!(metrics
            .render(&store)
            .contains("mcp_guard_control_long_polls_waiting 0\n"));
    }
}
