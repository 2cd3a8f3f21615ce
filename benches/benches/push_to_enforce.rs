//! Time from a push acknowledged by the control service to the new version
//! enforced by every VM of a real Envoy (3 workers + the main-thread VM),
//! over many pushes: long-poll (the default) against a plain-polling
//! baseline (1 s period) measured in the same run.
//!
//! "Enforced by a VM" is the instant the VM logged its activation (Envoy
//! stamps log lines with milliseconds as they are written); the latency of a
//! push is the latest of those instants minus the instant the push's 201
//! arrived. Run with `cargo xtask bench -- push_to_enforce` (needs Envoy).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mcp_guard_e2e::{Stack, StackOptions, DEMO_BUNDLE};
use serde_json::Value;

const WORKERS: u32 = 3;

/// Envoy's log timestamp (`2026-11-21 15:22:17.441`, UTC here) in ms.
fn envoy_time_ms(stamp: &str) -> Option<u64> {
    let (date, time) = stamp.split_once(' ')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, millis) = time.split_once('.')?;
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    // Days from civil (proleptic Gregorian), 1970-01-01 = 0.
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some((secs * 1000 + millis.parse::<i64>().ok()?) as u64)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Pushes `count` versions and returns each one's push-to-enforced latency.
fn run(long_poll_secs: u64, poll_interval_ms: u64, count: u64) -> (Vec<u64>, f64) {
    let stack = Stack::start(StackOptions {
        concurrency: WORKERS,
        long_poll_secs,
        poll_interval_ms,
        ..StackOptions::default()
    })
    .expect("stack starts");
    let mut latencies = Vec::new();
    for i in 0..count {
        let mut bundle: Value = serde_json::from_str(DEMO_BUNDLE).unwrap();
        bundle["description"] = Value::String(format!("bench push {i}"));
        let reply = stack.push("demo", &bundle.to_string()).expect("push");
        let acked = now_ms();
        assert_eq!(reply.status, 201, "{reply:?}");
        let version = reply.json()["version"].as_u64().expect("version");
        stack
            .wait_for_version(version, WORKERS, Duration::from_secs(20))
            .expect("enforced");
        let (_, latest) = stack.activations(version);
        let enforced = latest
            .and_then(|s| envoy_time_ms(&s))
            .expect("activation time");
        let latency = enforced.saturating_sub(acked);
        assert!(
            latency < 60_000,
            "clock mismatch: is the machine's local time UTC?"
        );
        latencies.push(latency);
    }
    let metrics = stack.control_get("/metrics").unwrap().body;
    let served: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("mcp_guard_control_serves_total{status=\"200\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    latencies.sort_unstable();
    (latencies, served / (count + 1) as f64)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("push_to_enforce: bench");
        return;
    }
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if filter
        .as_deref()
        .is_some_and(|f| !"push_to_enforce".contains(f))
    {
        return;
    }
    let (long_poll, fetches) = run(30, 5_000, 60);
    let (polling, poll_fetches) = run(0, 1_000, 10);
    println!("push -> enforced on every VM ({WORKERS} workers + main), ms");
    println!("| mode | pushes | p50 | p99 | max | bundle fetches per version |");
    println!("|---|---|---|---|---|---|");
    for (name, l, f) in [
        ("long-poll (default)", &long_poll, fetches),
        ("polling every 1 s (baseline)", &polling, poll_fetches),
    ] {
        println!(
            "| {name} | {} | {} | {} | {} | {f:.2} |",
            l.len(),
            percentile(l, 0.5),
            percentile(l, 0.99),
            l[l.len() - 1]
        );
    }
    println!(
        "long-poll p50 is {:.1}x faster than the polling baseline",
        percentile(&polling, 0.5) as f64 / percentile(&long_poll, 0.5).max(1) as f64
    );
}
