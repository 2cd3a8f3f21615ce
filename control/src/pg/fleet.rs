//! The sync table shared by replicas: each proxy polls one replica (the
//! load balancer picks), so each replica writes the rows it saw to
//! `mcp_guard_fleet` and reads the others' back, and `GET /v1/status` on
//! any replica shows the whole fleet, [`FLEET_EVERY`] late at most (plus
//! one period of the other replica).
//!
//! Rows read back are unauthenticated hints, like the headers they came
//! from, and are checked again as if they had just arrived: the bundle
//! must be held, instance, pod and error code must be valid, the wait is
//! capped, and a `last_seen` in the future is clamped to now (else a
//! forged row would never turn stale).

use std::sync::Arc;
use std::time::Duration;

use mcp_guard_engine::fleet::{valid_pod, LastError, PollIdentity};
use mcp_guard_engine::report::valid_instance;
use tokio_postgres::Client;

use super::{describe, PgStore};
use crate::fleet::Row;
use crate::http::{App, MAX_WAIT_SECS};
use crate::name::BundleName;
use crate::timefmt;

/// How often rows are written and read.
pub const FLEET_EVERY: Duration = Duration::from_secs(2);

/// Rows not seen for this long are deleted from the table (a proxy that
/// polls again gets a new one).
pub const FLEET_RETENTION_MS: u64 = 60 * 60 * 1000;

/// Rows read back are those seen after the last read minus this much, to
/// absorb clock differences between replicas.
const CLOCK_SLACK_MS: u64 = 10_000;

/// Longest one exchange may wait for a lock or run: it shares the
/// connection with commits and the listener, so a table someone holds
/// locked must not stall new versions behind it.
pub const FLEET_TIMEOUT: Duration = Duration::from_secs(1);

/// Most rows read back per period.
const MAX_READ: i64 = 10_000;

/// Shares `app`'s sync table through the database until aborted.
pub async fn share(pg: Arc<PgStore>, app: Arc<App>) {
    let mut ticks = tokio::time::interval(FLEET_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut flushed, mut read, mut rounds) = (0u64, 0u64, 0u64);
    loop {
        ticks.tick().await;
        let cutoff = timefmt::now_millis();
        let rows = app.fleet.seen_after(flushed);
        let mut guard = pg.client.lock().await;
        let Some(client) = guard.as_mut() else {
            continue;
        };
        rounds += 1;
        let prune = rounds % 150 == 1;
        // The server gives up on its own (`lock_timeout`,
        // `statement_timeout`); a database that stops answering at all is
        // given up here, and the listener reconnects.
        let outcome = tokio::time::timeout(
            FLEET_TIMEOUT * 2,
            exchange(client, &app, &rows, read, prune),
        )
        .await;
        match outcome {
            Ok(Ok(newest)) => {
                // Rows seen during the collection are sent again next time.
                flushed = cutoff.saturating_sub(1);
                read = read.max(newest);
            }
            Ok(Err(e)) => {
                tracing::warn!(store = %pg.target, error = %describe(&e), "cannot share the sync table through the shared store")
            }
            Err(_) => {
                *guard = None;
                pg.set_down(Some(format!(
                    "no answer from the database within {} s",
                    (FLEET_TIMEOUT * 2).as_secs()
                )));
                tracing::warn!(store = %pg.target, "no answer from the shared store while sharing the sync table; reconnecting");
            }
        }
    }
}

/// Writes `rows`, reads the others' rows seen after `read` (less the
/// slack) into `app.fleet`; the newest `last_seen` read.
async fn exchange(
    client: &mut Client,
    app: &App,
    rows: &[(String, Row)],
    read: u64,
    prune: bool,
) -> Result<u64, tokio_postgres::Error> {
    let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let millis = FLEET_TIMEOUT.as_millis();
    let client = client.transaction().await?;
    client
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = {millis}; SET LOCAL statement_timeout = {millis}"
        ))
        .await?;
    if !rows.is_empty() {
        let bundles: Vec<&str> = rows.iter().map(|(b, _)| b.as_str()).collect();
        let instances: Vec<&str> = rows
            .iter()
            .map(|(_, r)| r.identity.instance.as_str())
            .collect();
        let pods: Vec<Option<&str>> = rows
            .iter()
            .map(|(_, r)| r.identity.pod.as_deref())
            .collect();
        let active: Vec<Option<i64>> = rows
            .iter()
            .map(|(_, r)| r.identity.active.map(as_i64))
            .collect();
        let errors: Vec<Option<&str>> = rows
            .iter()
            .map(|(_, r)| r.identity.last_error.map(LastError::as_str))
            .collect();
        let waits: Vec<i64> = rows.iter().map(|(_, r)| as_i64(r.wait_secs)).collect();
        let seen: Vec<i64> = rows.iter().map(|(_, r)| as_i64(r.last_seen)).collect();
        client
            .execute(
                "INSERT INTO mcp_guard_fleet
                     (bundle, instance, pod, active, last_error, wait_secs, last_seen)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                                      $5::text[], $6::bigint[], $7::bigint[])
                 ON CONFLICT (bundle, instance) DO UPDATE SET
                     pod = EXCLUDED.pod, active = EXCLUDED.active,
                     last_error = EXCLUDED.last_error, wait_secs = EXCLUDED.wait_secs,
                     last_seen = EXCLUDED.last_seen
                 WHERE mcp_guard_fleet.last_seen < EXCLUDED.last_seen",
                &[&bundles, &instances, &pods, &active, &errors, &waits, &seen],
            )
            .await?;
    }
    let now = timefmt::now_millis();
    if prune {
        client
            .execute(
                "DELETE FROM mcp_guard_fleet WHERE last_seen < $1",
                &[&as_i64(now.saturating_sub(FLEET_RETENTION_MS))],
            )
            .await?;
    }
    let theirs = client
        .query(
            "SELECT bundle, instance, pod, active, last_error, wait_secs, last_seen
             FROM mcp_guard_fleet WHERE last_seen > $1
             ORDER BY last_seen DESC LIMIT $2",
            &[&as_i64(read.saturating_sub(CLOCK_SLACK_MS)), &MAX_READ],
        )
        .await?;
    let mut newest = read;
    for row in theirs {
        let seen: i64 = row.get(6);
        let seen = u64::try_from(seen).unwrap_or(0);
        newest = newest.max(seen.min(now));
        let Some((bundle, checked)) = check(
            row.get(0),
            row.get(1),
            row.get(2),
            row.get(3),
            row.get(4),
            row.get(5),
            seen,
            now,
        ) else {
            continue;
        };
        if app.store.get(&bundle).is_some() {
            app.fleet.merge(bundle.as_str(), checked, now);
        }
    }
    client.commit().await?;
    Ok(newest)
}

/// A row from the table as the service would have taken it from headers;
/// `None` when any part would have been dropped.
#[allow(clippy::too_many_arguments)]
fn check(
    bundle: &str,
    instance: &str,
    pod: Option<&str>,
    active: Option<i64>,
    last_error: Option<&str>,
    wait_secs: i64,
    last_seen: u64,
    now: u64,
) -> Option<(BundleName, Row)> {
    let bundle = BundleName::parse(bundle).ok()?;
    if !valid_instance(instance) || pod.is_some_and(|p| !valid_pod(p)) {
        return None;
    }
    let active = match active {
        Some(v) => Some(u64::try_from(v).ok()?),
        None => None,
    };
    let last_error = match last_error {
        Some(code) => Some(LastError::parse(code)?),
        None => None,
    };
    Some((
        bundle,
        Row {
            identity: PollIdentity {
                instance: instance.to_owned(),
                pod: pod.map(str::to_owned),
                active,
                last_error,
            },
            wait_secs: u64::try_from(wait_secs).ok()?.min(MAX_WAIT_SECS),
            last_seen: last_seen.min(now),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_from_the_table_are_checked_like_headers() {
        let now = 1_000_000;
        let ok = check(
            "demo",
            "envoy-1",
            Some("pod-a"),
            Some(3),
            None,
            30,
            now - 5,
            now,
        );
        let (bundle, row) = ok.expect("valid row");
        assert_eq!(bundle.as_str(), "demo");
        assert_eq!(row.identity.active, Some(3));
        assert_eq!(row.last_seen, now - 5);
        // A future last_seen is clamped (it would never turn stale), a
        // long wait capped.
        let (_, row) = check(
            "demo",
            "envoy-1",
            None,
            None,
            None,
            9_999,
            now + 1_000_000,
            now,
        )
        .expect("valid row");
        assert_eq!(row.last_seen, now);
        assert_eq!(row.wait_secs, MAX_WAIT_SECS);
        // Anything the headers would not carry is dropped.
        assert!(check("../x", "envoy-1", None, None, None, 30, now, now).is_none());
        assert!(check("demo", "bad instance\n", None, None, None, 30, now, now).is_none());
        assert!(check(
            "demo",
            "envoy-1",
            Some("pod/../x"),
            None,
            None,
            30,
            now,
            now
        )
        .is_none());
        assert!(check("demo", "envoy-1", None, Some(-1), None, 30, now, now).is_none());
        assert!(check(
            "demo",
            "envoy-1",
            None,
            None,
            Some("free text"),
            30,
            now,
            now
        )
        .is_none());
        assert!(check("demo", "envoy-1", None, None, None, -5, now, now).is_none());
        assert!(check(
            "demo",
            "envoy-1",
            None,
            None,
            Some("fetch_status"),
            30,
            now,
            now
        )
        .is_some());
    }
}
