//! What filters report about the versions they were served: the latest
//! [`StatusReport`] of each instance, per bundle, so a pusher sees a version
//! that filters refuse (`GET /v1/bundles/{name}/status`, `mcp-guard
//! status`).
//!
//! Reports are unauthenticated (filters hold no secret), so the board is
//! bounded on every axis: reports only for bundles the store holds, at most
//! [`StatusLimits::max_instances`] per bundle (the stalest is evicted), and
//! a global token bucket on how many are taken per second. Nothing here
//! changes what is served.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::rate::TokenBucket;
use mcp_guard_engine::report::StatusReport;

/// Bounds of the board.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatusLimits {
    /// Instances remembered per bundle.
    pub max_instances: usize,
    /// Reports accepted per second, on average, from everyone together.
    pub per_second: f64,
    /// Reports accepted in a burst.
    pub burst: f64,
}

impl Default for StatusLimits {
    fn default() -> Self {
        Self {
            max_instances: 512,
            per_second: 50.0,
            burst: 200.0,
        }
    }
}

/// A report as kept: the report plus when it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// What the filter said.
    pub report: StatusReport,
    /// Arrival, milliseconds since the Unix epoch.
    pub received_at: u64,
}

/// Why a report was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Over the rate limit: try later.
    #[error("too many status reports")]
    RateLimited,
}

/// The latest report of each instance, per bundle.
#[derive(Debug)]
pub struct StatusBoard {
    limits: StatusLimits,
    reports: Mutex<HashMap<String, BTreeMap<String, Received>>>,
    bucket: TokenBucket,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new(StatusLimits::default())
    }
}

impl StatusBoard {
    /// An empty board with `limits`.
    pub fn new(limits: StatusLimits) -> Self {
        Self {
            limits,
            reports: Mutex::new(HashMap::new()),
            bucket: TokenBucket::new(limits.per_second, limits.burst),
        }
    }

    /// Takes one token from the global bucket.
    fn admit(&self) -> bool {
        self.bucket.try_take()
    }

    /// Records `report` for bundle `name` (which the caller checked the
    /// store holds), replacing the instance's previous report.
    pub fn record(&self, name: &str, report: StatusReport, now_ms: u64) -> Result<(), Refused> {
        if !self.admit() {
            return Err(Refused::RateLimited);
        }
        let mut all = self.reports.lock().unwrap_or_else(PoisonError::into_inner);
        let bundle = all.entry(name.to_owned()).or_default();
        if !bundle.contains_key(&report.instance) && bundle.len() >= self.limits.max_instances {
            let stalest = bundle
                .iter()
                .min_by_key(|(_, r)| r.received_at)
                .map(|(id, _)| id.clone());
            if let Some(id) = stalest {
                bundle.remove(&id);
            }
        }
        bundle.insert(
            report.instance.clone(),
            Received {
                report,
                received_at: now_ms,
            },
        );
        Ok(())
    }

    /// Every instance's latest report for `name`, by instance id.
    pub fn reports(&self, name: &str) -> Vec<Received> {
        self.reports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_engine::report::ReportState;

    fn report(instance: &str) -> StatusReport {
        StatusReport {
            instance: instance.into(),
            state: ReportState::Active,
            version: Some(1),
            reason: None,
            active_version: None,
        }
    }

    #[test]
    fn keeps_the_latest_per_instance_and_evicts_the_stalest() {
        let board = StatusBoard::new(StatusLimits {
            max_instances: 2,
            ..StatusLimits::default()
        });
        board.record("demo", report("a"), 1).expect("taken");
        board.record("demo", report("b"), 2).expect("taken");
        board.record("demo", report("a"), 3).expect("taken");
        board.record("demo", report("c"), 4).expect("taken");
        let ids: Vec<String> = board
            .reports("demo")
            .into_iter()
            .map(|r| r.report.instance)
            .collect();
        assert_eq!(ids, ["a", "c"], "b was the stalest");
        assert!(board.reports("other").is_empty());
    }

    #[test]
    fn rate_limited() {
        let board = StatusBoard::new(StatusLimits {
            max_instances: 10,
            per_second: 0.001,
            burst: 3.0,
        });
        for i in 0..3 {
            assert_eq!(board.record("demo", report(&format!("i{i}")), i), Ok(()));
        }
        assert_eq!(
            board.record("demo", report("x"), 9),
            Err(Refused::RateLimited)
        );
    }
}
