//! Who enforces what: one row per polling proxy (bundle, instance), updated
//! on every bundle fetch from its identity headers
//! ([`mcp_guard_engine::fleet`]), and the sync state of each row against
//! the latest stored version (`GET /v1/status`, `mcp-guard status`).
//!
//! The headers are unauthenticated, so the table is bounded like the
//! status board: rows only for bundles the store holds, at most
//! [`FleetLimits::max_instances`] per bundle (a stale row, else the one
//! seen longest ago, is evicted), and a token bucket on how many *new*
//! rows are created per second (polls of known instances always update
//! their row). Nothing here changes what is served.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use mcp_guard_engine::fleet::{LastError, PollIdentity};
use mcp_guard_engine::report::{RejectCode, ReportState};
use serde::Serialize;

use crate::rate::TokenBucket;
use crate::status::Received;

/// Bounds of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FleetLimits {
    /// Rows remembered per bundle.
    pub max_instances: usize,
    /// New rows created per second, on average, for everyone together.
    pub new_per_second: f64,
    /// New rows created in a burst.
    pub new_burst: f64,
    /// Slack on top of two long-poll waits before a silent row is `stale`
    /// (the fetch timeout, backoff after errors, scheduling).
    pub grace_ms: u64,
}

impl Default for FleetLimits {
    fn default() -> Self {
        Self {
            max_instances: 512,
            new_per_second: 20.0,
            new_burst: 200.0,
            grace_ms: 30_000,
        }
    }
}

/// One polling proxy, as last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What it said about itself on its last fetch.
    pub identity: PollIdentity,
    /// The long-poll wait it asked for, seconds (capped by the service).
    pub wait_secs: u64,
    /// When its last fetch arrived, milliseconds since the Unix epoch.
    pub last_seen: u64,
}

impl Row {
    /// How long this row may stay silent before it is `stale`: two
    /// long-poll waits plus the grace.
    pub fn stale_after_ms(&self, grace_ms: u64) -> u64 {
        self.wait_secs
            .saturating_mul(2_000)
            .saturating_add(grace_ms)
    }
}

/// A row's sync state against the latest stored version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Enforces the latest version.
    Synced,
    /// Enforces an older version (or none) and refused nothing newer.
    Behind,
    /// Refused a version newer than the one it enforces.
    Rejected,
    /// Not seen for longer than [`Row::stale_after_ms`]: gone, or cut off.
    Stale,
}

/// A version the instance refused, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The refused version, when the instance said which.
    pub version: Option<u64>,
    /// Why.
    pub reason: RejectCode,
}

/// The refusal that holds for `row`: its latest status report when that
/// is a rejection of a version newer than the one it enforces, else the
/// rejection code of its last fetch (version unknown). `None` once it
/// enforces the refused version or a newer one, or fetched cleanly since.
pub fn refusal(row: &Row, report: Option<&Received>) -> Option<Refusal> {
    let active = row.identity.active.unwrap_or(0);
    let reported = report.and_then(|r| match (r.report.state, r.report.reason) {
        (ReportState::Rejected, Some(reason)) => Some(Refusal {
            version: r.report.version,
            reason,
        }),
        _ => None,
    });
    let from_poll = match row.identity.last_error {
        Some(LastError::Rejected(reason)) => Some(reason),
        _ => None,
    };
    match (reported, from_poll) {
        // The report names the version; it still holds while newer than
        // what is enforced and the last fetch still refused something.
        (Some(r), Some(_)) if r.version.is_none_or(|v| v > active) => Some(r),
        (_, Some(reason)) => Some(Refusal {
            version: None,
            reason,
        }),
        // The poll says the last fetch was fine (or only failed to
        // connect): a report alone is history.
        (_, None) => None,
    }
}

/// The sync state of `row` given the latest stored version.
pub fn judge(
    row: &Row,
    latest: u64,
    refusal: Option<Refusal>,
    now_ms: u64,
    grace_ms: u64,
) -> SyncState {
    if now_ms.saturating_sub(row.last_seen) > row.stale_after_ms(grace_ms) {
        SyncState::Stale
    } else if refusal.is_some() {
        SyncState::Rejected
    } else if row.identity.active.is_some_and(|a| a >= latest) {
        SyncState::Synced
    } else {
        SyncState::Behind
    }
}

/// Every polling proxy's row, per bundle.
#[derive(Debug)]
pub struct Fleet {
    limits: FleetLimits,
    rows: Mutex<HashMap<String, BTreeMap<String, Row>>>,
    bucket: TokenBucket,
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new(FleetLimits::default())
    }
}

impl Fleet {
    /// An empty table with `limits`.
    pub fn new(limits: FleetLimits) -> Self {
        Self {
            limits,
            rows: Mutex::new(HashMap::new()),
            bucket: TokenBucket::new(limits.new_per_second, limits.new_burst),
        }
    }

    /// The table's bounds.
    pub fn limits(&self) -> FleetLimits {
        self.limits
    }

    fn admit_new(&self) -> bool {
        self.bucket.try_take()
    }

    /// A fetch of bundle `name` (which the caller checked the store holds)
    /// arrived from `identity`. `false` when it would have created a row
    /// over the new-row rate (the fetch is served all the same).
    pub fn seen(&self, name: &str, identity: PollIdentity, wait_secs: u64, now_ms: u64) -> bool {
        let mut all = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        let rows = all.entry(name.to_owned()).or_default();
        if !rows.contains_key(&identity.instance) {
            if !self.admit_new() {
                return false;
            }
            self.make_room(rows, now_ms);
        }
        rows.insert(
            identity.instance.clone(),
            Row {
                identity,
                wait_secs,
                last_seen: now_ms,
            },
        );
        true
    }

    /// Evicts a stale row, else the one seen longest ago, when `rows` is
    /// full.
    fn make_room(&self, rows: &mut BTreeMap<String, Row>, now_ms: u64) {
        if rows.len() < self.limits.max_instances {
            return;
        }
        let grace = self.limits.grace_ms;
        let evict = rows
            .iter()
            .find(|(_, r)| now_ms.saturating_sub(r.last_seen) > r.stale_after_ms(grace))
            .or_else(|| rows.iter().min_by_key(|(_, r)| r.last_seen))
            .map(|(id, _)| id.clone());
        if let Some(id) = evict {
            rows.remove(&id);
        }
    }

    /// Rows whose last fetch arrived after `since_ms`, as (bundle, row):
    /// what a replica shares with the others ([`crate::pg`]).
    pub fn seen_after(&self, since_ms: u64) -> Vec<(String, Row)> {
        let all = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        all.iter()
            .flat_map(|(name, rows)| {
                rows.values()
                    .filter(|r| r.last_seen > since_ms)
                    .map(move |r| (name.clone(), r.clone()))
            })
            .collect()
    }

    /// Takes a row another replica saw (the fetch went there). Kept only
    /// when newer than the row held for that instance; bounded per bundle
    /// like [`Self::seen`] but not rate-limited (the replica that saw the
    /// fetch admitted it). The caller checks the bundle is held.
    pub fn merge(&self, name: &str, row: Row, now_ms: u64) {
        let mut all = self.rows.lock().unwrap_or_else(PoisonError::into_inner);
        let rows = all.entry(name.to_owned()).or_default();
        match rows.get(&row.identity.instance) {
            Some(held) if held.last_seen >= row.last_seen => {}
            Some(_) => {
                rows.insert(row.identity.instance.clone(), row);
            }
            None => {
                self.make_room(rows, now_ms);
                rows.insert(row.identity.instance.clone(), row);
            }
        }
    }

    /// Every row of `name`, by instance id.
    pub fn rows(&self, name: &str) -> Vec<Row> {
        self.rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .map(|rows| rows.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The bundles with rows, sorted.
    pub fn bundles(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .rows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_engine::report::StatusReport;

    fn identity(instance: &str, active: Option<u64>, error: Option<LastError>) -> PollIdentity {
        PollIdentity {
            instance: instance.into(),
            pod: None,
            active,
            last_error: error,
        }
    }

    fn row(active: Option<u64>, error: Option<LastError>, last_seen: u64) -> Row {
        Row {
            identity: identity("i", active, error),
            wait_secs: 30,
            last_seen,
        }
    }

    fn rejected(version: u64, reason: RejectCode) -> Received {
        Received {
            report: StatusReport::new("i", Some(version), Some(reason), Some(1)),
            received_at: 0,
        }
    }

    const UNTRUSTED: Option<LastError> = Some(LastError::Rejected(RejectCode::UntrustedKey));

    #[test]
    fn states() {
        let now = 100_000;
        let grace = 30_000;
        let state = |row: &Row, latest, report: Option<&Received>| {
            judge(row, latest, refusal(row, report), now, grace)
        };
        assert_eq!(state(&row(Some(2), None, now), 2, None), SyncState::Synced);
        assert_eq!(state(&row(Some(1), None, now), 2, None), SyncState::Behind);
        assert_eq!(state(&row(None, None, now), 2, None), SyncState::Behind);
        // Two 30 s waits + 30 s grace = 90 s of silence allowed.
        assert_eq!(
            state(&row(Some(2), None, now - 90_000), 2, None),
            SyncState::Synced
        );
        assert_eq!(
            state(&row(Some(2), None, now - 90_001), 2, None),
            SyncState::Stale
        );
        let report = rejected(2, RejectCode::UntrustedKey);
        let r = row(Some(1), UNTRUSTED, now);
        assert_eq!(state(&r, 2, Some(&report)), SyncState::Rejected);
        assert_eq!(
            refusal(&r, Some(&report)),
            Some(Refusal {
                version: Some(2),
                reason: RejectCode::UntrustedKey
            })
        );
        // The poll says rejected but the report was lost: code, no version.
        assert_eq!(
            refusal(&r, None),
            Some(Refusal {
                version: None,
                reason: RejectCode::UntrustedKey
            })
        );
        // It fetched cleanly since (v3 active): the old report is history.
        let healed = row(Some(3), None, now);
        assert_eq!(refusal(&healed, Some(&report)), None);
        assert_eq!(state(&healed, 3, Some(&report)), SyncState::Synced);
        // A network error is not a rejection.
        let flaky = row(Some(1), Some(LastError::FetchUnreachable), now);
        assert_eq!(state(&flaky, 2, Some(&report)), SyncState::Behind);
        // Stale wins: a silent rejecter is gone, not rejecting.
        assert_eq!(
            state(&row(Some(1), UNTRUSTED, 0), 2, Some(&report)),
            SyncState::Stale
        );
        // A forged wait cannot keep a row fresh forever without overflow.
        let forever = Row {
            wait_secs: u64::MAX,
            ..row(Some(2), None, 0)
        };
        assert_eq!(forever.stale_after_ms(grace), u64::MAX);
    }

    #[test]
    fn a_flood_of_forged_instances_is_bounded_and_known_ones_still_update() {
        let fleet = Fleet::new(FleetLimits {
            max_instances: 4,
            new_per_second: 0.001,
            new_burst: 10.0,
            grace_ms: 1_000,
        });
        assert!(fleet.seen("demo", identity("real", Some(1), None), 0, 1));
        for i in 0..50u64 {
            fleet.seen(
                "demo",
                identity(&format!("forged-{i}"), Some(9), None),
                0,
                2 + i,
            );
        }
        let rows = fleet.rows("demo");
        assert_eq!(rows.len(), 4, "capped per bundle");
        // The bucket ran dry: a new id is refused, a known one updates.
        assert!(!fleet.seen("demo", identity("late", None, None), 0, 100));
        let known = rows
            .first()
            .map(|r| r.identity.instance.clone())
            .unwrap_or_default();
        assert!(fleet.seen("demo", identity(&known, Some(5), None), 0, 101));
        assert!(fleet
            .rows("demo")
            .iter()
            .any(|r| r.identity.instance == known && r.identity.active == Some(5)));
        assert_eq!(fleet.bundles(), ["demo"]);
        assert!(fleet.rows("other").is_empty());
    }

    #[test]
    fn evicts_a_stale_row_before_a_live_one() {
        let fleet = Fleet::new(FleetLimits {
            max_instances: 2,
            grace_ms: 1_000,
            ..FleetLimits::default()
        });
        fleet.seen("demo", identity("live-old", None, None), 60, 0);
        fleet.seen("demo", identity("gone", None, None), 0, 10);
        // At 5 s: "gone" (no wait) is stale, "live-old" (60 s waits) is not,
        // though it was seen earlier.
        fleet.seen("demo", identity("new", None, None), 0, 5_000);
        let ids: Vec<String> = fleet
            .rows("demo")
            .into_iter()
            .map(|r| r.identity.instance)
            .collect();
        assert_eq!(ids, ["live-old", "new"]);
    }

    #[test]
    fn merged_rows_only_replace_older_ones_and_stay_bounded() {
        let fleet = Fleet::new(FleetLimits {
            max_instances: 2,
            ..FleetLimits::default()
        });
        let at = |instance: &str, active, last_seen| Row {
            identity: identity(instance, Some(active), None),
            wait_secs: 30,
            last_seen,
        };
        assert!(fleet.seen("demo", identity("a", Some(2), None), 30, 100));
        fleet.merge("demo", at("a", 1, 50), 200);
        assert_eq!(
            fleet.rows("demo")[0].identity.active,
            Some(2),
            "older row ignored"
        );
        fleet.merge("demo", at("a", 3, 150), 200);
        assert_eq!(
            fleet.rows("demo")[0].identity.active,
            Some(3),
            "newer row taken"
        );
        fleet.merge("demo", at("b", 1, 160), 200);
        fleet.merge("demo", at("c", 1, 170), 200);
        let mut ids: Vec<String> = fleet
            .rows("demo")
            .into_iter()
            .map(|r| r.identity.instance)
            .collect();
        ids.sort();
        assert_eq!(ids, ["b", "c"], "bounded: the row seen longest ago left");
        assert_eq!(fleet.seen_after(165).len(), 1);
        assert_eq!(fleet.seen_after(0).len(), 2);
    }
}
