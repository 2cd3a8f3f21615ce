//! `GET /v1/status`: the sync table across bundles, one line per polling
//! proxy, like `istioctl proxy-status`. Built from the [`Fleet`] rows (the
//! identity headers of each fetch), the latest stored versions and the
//! status board (which version a rejecting instance refused).

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::fleet::{judge, refusal, Fleet, SyncState};
use crate::name::BundleName;
use crate::status::StatusBoard;
use crate::store::BundleStore;
use crate::timefmt;

/// The table, for every bundle or only `only`.
pub fn table(
    store: &BundleStore,
    board: &StatusBoard,
    fleet: &Fleet,
    only: Option<&BundleName>,
    now_ms: u64,
) -> Value {
    let grace = fleet.limits().grace_ms;
    let mut instances = Vec::new();
    let mut bundles = Vec::new();
    for stored in store.list() {
        let name = stored.name();
        if only.is_some_and(|o| o.as_str() != name) {
            continue;
        }
        let latest = stored.version();
        let reports: HashMap<String, _> = board
            .reports(name)
            .into_iter()
            .map(|r| (r.report.instance.clone(), r))
            .collect();
        let mut counts: HashMap<SyncState, u64> = HashMap::new();
        for row in fleet.rows(name) {
            let refused = refusal(&row, reports.get(&row.identity.instance));
            let state = judge(&row, latest, refused, now_ms, grace);
            *counts.entry(state).or_default() += 1;
            instances.push(json!({
                "bundle": name,
                "instance": row.identity.instance,
                "pod": row.identity.pod,
                "active": row.identity.active,
                "latest": latest,
                "state": state,
                "rejected": refused.map(|r| json!({
                    "version": r.version,
                    "reason": r.reason.as_str(),
                })),
                "last_error": row.identity.last_error.map(|e| e.as_str()),
                "last_seen": timefmt::rfc3339_millis(row.last_seen),
                "age_secs": now_ms.saturating_sub(row.last_seen) / 1000,
                "stale_after_secs": row.stale_after_ms(grace) / 1000,
            }));
        }
        let count = |s| counts.get(&s).copied().unwrap_or(0);
        bundles.push(json!({
            "name": name,
            "latest": latest,
            "synced": count(SyncState::Synced),
            "behind": count(SyncState::Behind),
            "rejected": count(SyncState::Rejected),
            "stale": count(SyncState::Stale),
        }));
    }
    json!({
        "generated_at": timefmt::rfc3339_millis(now_ms),
        "reports": "unauthenticated: any client that reaches the service can send them",
        "bundles": bundles,
        "instances": instances,
    })
}
