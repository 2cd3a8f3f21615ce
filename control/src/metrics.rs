//! Prometheus metrics, rendered as text at `GET /metrics`: what was pushed
//! and refused, what was served, how many long-polls wait, and the
//! version each bundle is at.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::store::BundleStore;

/// A counter family with one label.
#[derive(Debug, Default)]
struct Counter(Mutex<BTreeMap<String, u64>>);

impl Counter {
    fn inc(&self, label: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry(label.to_owned()).or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The service's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    pushes: Counter,
    rejects: Counter,
    serves: Counter,
    rotations: Counter,
    reports: Counter,
    waiting: AtomicI64,
    connections: AtomicI64,
    max_connections: AtomicI64,
    refused_connections: AtomicU64,
}

/// Counts a connection as open for as long as it lives.
#[derive(Debug)]
pub struct Open(Arc<Metrics>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a long-poll as waiting for as long as it lives.
#[derive(Debug)]
pub struct Waiting(Arc<Metrics>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a write (push or rollback) by outcome: `created`,
    /// `unauthorized`, `forbidden`, `invalid`, `conflict`, `too_large`,
    /// `error`.
    pub fn push(&self, result: &str) {
        self.pushes.inc(result);
    }

    /// Counts a bundle refused at load time or in a push, by reason.
    pub fn reject(&self, reason: &str) {
        self.rejects.inc(reason);
    }

    /// Counts a bundle read by status code.
    pub fn serve(&self, status: u16) {
        self.serves.inc(&status.to_string());
    }

    /// Counts a key-refresh outcome: `rotated`, `unchanged`, `failed`.
    pub fn rotation(&self, result: &str) {
        self.rotations.inc(result);
    }

    /// Counts a filter status report by what became of it: `accepted`,
    /// `invalid`, `unknown_bundle`, `rate_limited`, `too_large`; and each
    /// accepted rejection report as `rejected`.
    pub fn report(&self, result: &str) {
        self.reports.inc(result);
    }

    /// Marks one long-poll as waiting until the guard is dropped.
    pub fn waiting(self: &Arc<Self>) -> Waiting {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(Arc::clone(self))
    }

    /// Marks one connection as open until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> Open {
        self.connections.fetch_add(1, Ordering::Relaxed);
        Open(Arc::clone(self))
    }

    /// Records the connection limit, exported as a gauge.
    pub fn set_max_connections(&self, max: usize) {
        self.max_connections
            .store(i64::try_from(max).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    /// Counts a connection refused because the limit was reached.
    pub fn refuse_connection(&self) {
        self.refused_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self, store: &BundleStore) -> String {
        let mut out = String::new();
        let family = |out: &mut String, name: &str, help: &str, label: &str, c: &Counter| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (value, count) in c.snapshot() {
                let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {count}", escape(&value));
            }
        };
        family(
            &mut out,
            "mcp_guard_control_pushes_total",
            "Bundle writes (push, rollback) by result.",
            "result",
            &self.pushes,
        );
        family(
            &mut out,
            "mcp_guard_control_rejects_total",
            "Bundles refused, by reason.",
            "reason",
            &self.rejects,
        );
        family(
            &mut out,
            "mcp_guard_control_serves_total",
            "Bundle reads by HTTP status.",
            "status",
            &self.serves,
        );
        family(
            &mut out,
            "mcp_guard_control_key_refresh_total",
            "Discovery key refreshes by result.",
            "result",
            &self.rotations,
        );
        family(
            &mut out,
            "mcp_guard_control_status_reports_total",
            "Filter status reports by result (unauthenticated input).",
            "result",
            &self.reports,
        );
        let _ = writeln!(
            out,
            "# HELP mcp_guard_control_long_polls_waiting Long-poll requests waiting for a new version.\n\
             # TYPE mcp_guard_control_long_polls_waiting gauge\n\
             mcp_guard_control_long_polls_waiting {}",
            self.waiting.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP mcp_guard_control_connections_open Client connections open.\n\
             # TYPE mcp_guard_control_connections_open gauge\n\
             mcp_guard_control_connections_open {}\n\
             # HELP mcp_guard_control_connections_max Connection limit (0: none but the open-file limit).\n\
             # TYPE mcp_guard_control_connections_max gauge\n\
             mcp_guard_control_connections_max {}\n\
             # HELP mcp_guard_control_connections_refused_total Connections refused past the connection limit: long-polls answered 503, or closed when the overflow lane was full.\n\
             # TYPE mcp_guard_control_connections_refused_total counter\n\
             mcp_guard_control_connections_refused_total {}",
            self.connections.load(Ordering::Relaxed),
            self.max_connections.load(Ordering::Relaxed),
            self.refused_connections.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP mcp_guard_control_bundle_version Latest stored version of each bundle.\n\
             # TYPE mcp_guard_control_bundle_version gauge"
        );
        for bundle in store.list() {
            let _ = writeln!(
                out,
                "mcp_guard_control_bundle_version{{name=\"{}\"}} {}",
                escape(bundle.name()),
                bundle.version()
            );
        }
        let _ = writeln!(
            out,
            "# HELP mcp_guard_control_store_writable 1 while pushes can be stored (0: the shared database is unreachable; reads are served from memory).\n\
             # TYPE mcp_guard_control_store_writable gauge\n\
             mcp_guard_control_store_writable {}",
            u8::from(store.writable().is_ok())
        );
        out
    }
}

/// Label values escaped as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
        drop(open);
        assert!(metrics
            .render(&store)
            .contains("mcp_guard_control_connections_open 0\n"));
        assert!(text.contains("mcp_guard_control_pushes_total{result=\"created\"} 2"));
        assert!(text.contains("mcp_guard_control_serves_total{status=\"304\"} 1"));
        assert!(text.contains("mcp_guard_control_long_polls_waiting 1"));
        assert!(text.contains("mcp_guard_control_bundle_version{name=\"demo\"} 2"));
        drop(guard);
        assert!(metrics
            .render(&store)
            .contains("mcp_guard_control_long_polls_waiting 0"));
    }
}
