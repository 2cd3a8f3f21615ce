//! `cargo xtask bench-longpoll`: how many waiting filters one control
//! replica carries. Starts the release control binary on loopback, parks
//! N long-polls on it from this process, reads the replica's memory and
//! descriptors per waiting poll from `/proc`, pushes a new version and
//! times push → answer-received for every poll (from the push request and
//! from its acknowledgement: the service wakes polls before it answers the
//! push).
//!
//! `--squeeze` runs the same with the replica's open-file limit set just
//! below what N polls need, to show what clients see at the limit.
//! Modules: [`replicas`] (the processes), [`client`] (HTTP), [`stats`]
//! (percentiles and parsing).

mod client;
mod replicas;
mod stats;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::steps;
use client::{Admin, Outcome, Progress};
use replicas::{Reading, Replica, Store};

/// The bundle the polls wait on.
const BUNDLE: &str = "bench-longpoll";

/// The push token of the run (the replicas get only its digest).
const TOKEN: &str = "bench-longpoll-token-not-a-secret";

/// Connects in progress at once (the listener's accept queue is 1024).
const CONNECTS_IN_FLIGHT: usize = 256;

/// How long the polls may take to park before the round is abandoned.
const PARK_TIMEOUT: Duration = Duration::from_secs(40);

/// Descriptors this process needs beyond one per poll.
const CLIENT_SPARE_FDS: u64 = 256;

const USAGE: &str = "usage: cargo xtask bench-longpoll [--polls N] [--rounds R] \
[--replicas K --store postgres://...|postgres:throwaway] [--squeeze] [--binary PATH]";

/// Command-line options.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    polls: usize,
    rounds: usize,
    replicas: usize,
    store: Option<String>,
    squeeze: bool,
    binary: Option<PathBuf>,
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        polls: 10_000,
        rounds: 1,
        replicas: 1,
        store: None,
        squeeze: false,
        binary: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        let number = |flag: &str, v: String| -> Result<usize, String> {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{flag} needs a positive number, not {v:?}"))
        };
        match arg.as_str() {
            "--polls" => o.polls = number("--polls", value("--polls")?)?,
            "--rounds" => o.rounds = number("--rounds", value("--rounds")?)?,
            "--replicas" => o.replicas = number("--replicas", value("--replicas")?)?,
            "--store" => o.store = Some(value("--store")?),
            "--binary" => o.binary = Some(PathBuf::from(value("--binary")?)),
            "--squeeze" => o.squeeze = true,
            other => return Err(format!("unknown option {other:?}\n{USAGE}")),
        }
    }
    if o.squeeze && o.replicas > 1 {
        return Err("--squeeze runs against one replica".into());
    }
    Ok(o)
}

/// Raises this process's soft open-file limit so it can hold `needed`
/// descriptors; Err when the hard limit is too low.
fn raise_own_fd_limit(needed: u64) -> Result<u64, String> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read or write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        if limit.rlim_max < needed {
            return Err(format!(
                "the client needs {needed} open files but the hard limit is {} \
                 (raise it: ulimit -Hn, or fewer --polls)",
                limit.rlim_max
            ));
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
    }
    Ok(limit.rlim_cur)
}

/// Builds the release control binary; returns its path.
fn build_control() -> Result<PathBuf, String> {
    steps::run(
        &steps::cargo(),
        &[
            "build",
            "--package",
            "mcp-guard-control",
            "--bin",
            "mcp-guard-control",
            "--release",
        ],
        &[],
    )?;
    Ok(steps::target_dir().join("release/mcp-guard-control"))
}

/// The tokens file and signing key every replica of a round shares.
fn write_credentials(dir: &Path) -> Result<(PathBuf, PathBuf), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tokens = dir.join("tokens.json");
    let file = json!({"tokens": [{
        "id": "bench",
        "sha256": mcp_guard_control::auth::token_digest_hex(TOKEN),
        "bundles": [BUNDLE],
    }]});
    std::fs::write(&tokens, file.to_string()).map_err(|e| e.to_string())?;
    let mut seed = [0u8; 32];
    use std::io::Read as _;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut seed))
        .map_err(|e| format!("/dev/urandom: {e}"))?;
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    let key = dir.join("signing.key");
    std::fs::write(&key, hex).map_err(|e| e.to_string())?;
    Ok((tokens, key))
}

fn bundle_path() -> String {
    format!("{}{BUNDLE}", mcp_guard_control::BUNDLES_PATH)
}

/// Pushes a new version through `admin`; returns its tag.
async fn push(admin: &mut Admin) -> Result<String, String> {
    let body = Bytes::from(json!({"name": BUNDLE, "version": 1}).to_string());
    let answer = admin
        .call(Method::PUT, &bundle_path(), Some(TOKEN), body)
        .await?;
    if answer.status != StatusCode::CREATED {
        return Err(format!(
            "push answered {}: {}",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        ));
    }
    answer.etag.ok_or_else(|| "push answer has no ETag".into())
}

/// Long-polls waiting on all replicas, by their own gauge.
async fn waiting(scrapes: &mut [Admin]) -> Result<f64, String> {
    let mut total = 0.0;
    for admin in scrapes.iter_mut() {
        let page = admin
            .call(Method::GET, "/metrics", None, Bytes::new())
            .await?;
        total += stats::metric(
            &String::from_utf8_lossy(&page.body),
            "mcp_guard_control_long_polls_waiting",
        )
        .ok_or("no mcp_guard_control_long_polls_waiting in /metrics")?;
    }
    Ok(total)
}

/// Connections the replicas refused past their limit, by their counter.
async fn refused(scrapes: &mut [Admin]) -> Result<f64, String> {
    let mut total = 0.0;
    for admin in scrapes.iter_mut() {
        let page = admin
            .call(Method::GET, "/metrics", None, Bytes::new())
            .await?;
        total += stats::metric(
            &String::from_utf8_lossy(&page.body),
            "mcp_guard_control_connections_refused_total",
        )
        .unwrap_or(0.0);
    }
    Ok(total)
}

fn sum(readings: &[Reading]) -> Reading {
    readings.iter().fold(Reading::default(), |a, r| Reading {
        rss_kib: a.rss_kib + r.rss_kib,
        pss_kib: a.pss_kib + r.pss_kib,
        fds: a.fds + r.fds,
        cpu_us: a.cpu_us + r.cpu_us,
    })
}

fn read_all(replicas: &[Replica]) -> Result<Reading, String> {
    let readings: Vec<Reading> = replicas
        .iter()
        .map(Replica::read)
        .collect::<Result<_, _>>()?;
    Ok(sum(&readings))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One round; its figures as JSON.
async fn round(o: &Options, store: &Store, binary: &Path, dir: &Path) -> Result<Value, String> {
    let (tokens, key) = write_credentials(dir)?;
    // Squeezed: the replica's open-file limit leaves room for all but a
    // tenth of the polls once it has kept its reserve for the store.
    let overflow = if o.squeeze { (o.polls / 10).max(20) } else { 0 };
    let fd_limit = (o.polls - overflow) as u64 + mcp_guard_control::fdlimit::RESERVED_FDS;
    let mut replicas = Vec::with_capacity(o.replicas);
    for index in 0..o.replicas {
        replicas.push(Replica::start(
            binary,
            index,
            store,
            (&tokens, &key),
            dir,
            o.squeeze.then_some(fd_limit),
        )?);
    }
    // Opened before the load: they still work when the replica is out of
    // descriptors.
    let mut admin = Admin::connect(replicas[0].addr).await?;
    let mut scrapes = Vec::new();
    for r in &replicas {
        scrapes.push(Admin::connect(r.addr).await?);
    }
    let etag: Arc<str> = push(&mut admin).await?.into();
    // Every replica serves the new version before the polls start.
    for scrape in &mut scrapes {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = scrape
                .call(Method::GET, &bundle_path(), None, Bytes::new())
                .await?;
            if got.etag.as_deref() == Some(&*etag) {
                break;
            }
            if Instant::now() > deadline {
                return Err("a replica did not serve the pushed version within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = read_all(&replicas)?;
    let wait = mcp_guard_control::MAX_WAIT_SECS;
    let path: Arc<str> = format!("{}?wait={wait}", bundle_path()).into();
    let connects = Arc::new(Semaphore::new(CONNECTS_IN_FLIGHT));
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    let mut polls = JoinSet::new();
    for i in 0..o.polls {
        polls.spawn(client::poll(
            replicas[i % replicas.len()].addr,
            Arc::clone(&path),
            Arc::clone(&etag),
            Arc::clone(&connects),
            Arc::clone(&progress),
            Duration::from_secs(wait + 10),
        ));
    }
    // Parked: every poll waits (or, squeezed, the count stops growing).
    let mut parked = 0.0;
    let mut stable_since = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = waiting(&mut scrapes).await?;
        if now != parked {
            parked = now;
            stable_since = Instant::now();
        }
        if parked as usize == o.polls {
            break;
        }
        let all_sent = progress.sent.load(Ordering::Relaxed)
            + progress.done.load(Ordering::Relaxed)
            >= o.polls;
        if o.squeeze && stable_since.elapsed() > Duration::from_secs(3) && parked > 0.0 {
            break;
        }
        if started.elapsed() > PARK_TIMEOUT {
            if o.squeeze {
                break;
            }
            return Err(format!(
                "only {parked} of {} polls parked after {PARK_TIMEOUT:?} (all sent: {all_sent})",
                o.polls
            ));
        }
    }
    let ramp = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = read_all(&replicas)?;
    let per_replica: Vec<Value> = replicas
        .iter()
        .map(|r| r.read().map(|reading| reading_json(&reading)))
        .collect::<Result<_, _>>()?;
    let accept_errors_before = replicas[0].log_lines_with("accept failed");
    let refused_before = refused(&mut scrapes).await?;
    let hold = Duration::from_secs(if o.squeeze { 3 } else { 0 });
    tokio::time::sleep(hold).await;
    let held = read_all(&replicas)?;
    let accept_errors_hold = replicas[0].log_lines_with("accept failed") - accept_errors_before;
    let limit_lines = replicas[0].log_lines_with("connection limit reached");
    let answered_early = progress.done.load(Ordering::Relaxed);

    let push_sent = Instant::now();
    // A refused push is a finding (squeezed, the store may have no
    // descriptor left), not the end of the round: the polls still end.
    let push_error = push(&mut admin).await.err();
    let push_ack = Instant::now();
    let mut outcomes = Vec::with_capacity(o.polls);
    let collect = async {
        while let Some(joined) = polls.join_next().await {
            if let Ok(outcome) = joined {
                outcomes.push(outcome);
            }
        }
    };
    let all_done = tokio::time::timeout(Duration::from_secs(wait + 15), collect)
        .await
        .is_ok();
    let after = read_all(&replicas)?;
    let mut alive = true;
    for r in &mut replicas {
        alive &= r.check_alive().is_ok();
    }
    // A fresh connection works again once the load is gone.
    let fresh_ok = match Admin::connect(replicas[0].addr).await {
        Ok(mut c) => c
            .call(Method::GET, "/healthz", None, Bytes::new())
            .await
            .is_ok_and(|a| a.status == StatusCode::OK),
        Err(_) => false,
    };

    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    // From the moment the push was sent: the service wakes the polls as
    // soon as the version is stored, before it acknowledges the push, so
    // most answers arrive before the acknowledgement does.
    let mut latencies = Vec::new();
    let mut before_ack = 0usize;
    let mut last = push_sent;
    for outcome in &outcomes {
        match outcome {
            Outcome::Answered { status, at } => {
                *statuses.entry(status.to_string()).or_default() += 1;
                if *status == 200 && *at >= push_sent {
                    before_ack += usize::from(*at < push_ack);
                    latencies.push(ms(*at - push_sent));
                    last = last.max(*at);
                }
            }
            Outcome::Failed { what, .. } => *failures.entry(what.clone()).or_default() += 1,
        }
    }
    let summary = stats::summarise(&latencies);
    let new_version = latencies.len();
    let per_poll = |kib: u64, base_kib: u64| {
        (parked > 0.0).then(|| kib.saturating_sub(base_kib) as f64 * 1024.0 / parked)
    };
    Ok(json!({
        "polls": o.polls,
        "replicas": o.replicas,
        "ramp_s": ramp.as_secs_f64(),
        "parked": parked,
        "base": reading_json(&base),
        "loaded": reading_json(&loaded),
        "loaded_per_replica": per_replica,
        "rss_bytes_per_poll": per_poll(loaded.rss_kib, base.rss_kib),
        "pss_bytes_per_poll": per_poll(loaded.pss_kib, base.pss_kib),
        "fds_per_poll": (parked > 0.0).then(|| loaded.fds.saturating_sub(base.fds) as f64 / parked),
        "push_ack_ms": push_error.is_none().then(|| ms(push_ack - push_sent)),
        "push_error": push_error,
        "answered_new_version": new_version,
        "answered_before_ack": before_ack,
        "latency_ms": summary.map(|s| json!({"p50": s.p50, "p99": s.p99, "max": s.max})),
        "all_answered_ms": (all_done && new_version == o.polls).then(|| ms(last - push_sent)),
        "all_answered_after_ack_ms": (all_done && new_version == o.polls)
            .then(|| ms(last.saturating_duration_since(push_ack))),
        "fanout_cpu_ms": after.cpu_us.saturating_sub(held.cpu_us) as f64 / 1000.0,
        "statuses": statuses,
        "failures": failures,
        "finished_before_push": answered_early,
        "replica_alive": alive,
        "fresh_connection_ok": fresh_ok,
        "squeeze": o.squeeze.then(|| json!({
            "fd_limit": fd_limit,
            "polls_beyond_limit": overflow,
            "accept_error_log_lines_in_3s": accept_errors_hold,
            "limit_reached_log_lines": limit_lines,
            "refused_by_server_before_push": refused_before,
            "cpu_percent_while_full": held.cpu_us.saturating_sub(loaded.cpu_us) as f64
                / hold.as_micros().max(1) as f64 * 100.0,
        })),
    }))
}

fn reading_json(r: &Reading) -> Value {
    json!({"rss_kib": r.rss_kib, "pss_kib": r.pss_kib, "fds": r.fds, "cpu_ms": r.cpu_us / 1000})
}

/// The figures printed per round and as the median over rounds.
const ROWS: &[(&str, &str)] = &[
    ("parked polls", "/parked"),
    ("ramp to all parked (s)", "/ramp_s"),
    ("RSS per waiting poll (bytes)", "/rss_bytes_per_poll"),
    ("PSS per waiting poll (bytes)", "/pss_bytes_per_poll"),
    ("fds per waiting poll", "/fds_per_poll"),
    ("RSS with all parked (KiB)", "/loaded/rss_kib"),
    ("push sent -> acknowledged (ms)", "/push_ack_ms"),
    ("push sent -> answer p50 (ms)", "/latency_ms/p50"),
    ("push sent -> answer p99 (ms)", "/latency_ms/p99"),
    ("push sent -> answer max (ms)", "/latency_ms/max"),
    ("push sent -> all answered (ms)", "/all_answered_ms"),
    (
        "push ack -> all answered (ms)",
        "/all_answered_after_ack_ms",
    ),
    ("answered before the push ack", "/answered_before_ack"),
    ("answered with the new version", "/answered_new_version"),
    ("server CPU for the fan-out (ms)", "/fanout_cpu_ms"),
    (
        "accept errors logged in 3 s full",
        "/squeeze/accept_error_log_lines_in_3s",
    ),
    (
        "server CPU while full (%)",
        "/squeeze/cpu_percent_while_full",
    ),
];

/// The median of each row over the rounds.
fn medians(rounds: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for (label, pointer) in ROWS {
        let values: Vec<f64> = rounds
            .iter()
            .filter_map(|r| r.pointer(pointer).and_then(Value::as_f64))
            .collect();
        if let Some(m) = stats::median(&values) {
            out.insert((*label).to_owned(), json!(m));
        }
    }
    Value::Object(out)
}

fn print_table(o: &Options, rounds: &[Value], median: &Value) {
    println!(
        "\nbench-longpoll: {} polls, {} replica(s){}, {} round(s)",
        o.polls,
        o.replicas,
        if o.squeeze { ", fd limit squeezed" } else { "" },
        rounds.len()
    );
    println!("{:<36} {:>12}   per round", "", "median");
    for (label, pointer) in ROWS {
        let Some(m) = median.get(*label).and_then(Value::as_f64) else {
            continue;
        };
        let each: Vec<String> = rounds
            .iter()
            .map(|r| {
                r.pointer(pointer)
                    .and_then(Value::as_f64)
                    .map_or("-".into(), |v| format!("{v:.1}"))
            })
            .collect();
        println!("{label:<36} {m:>12.1}   {}", each.join(" / "));
    }
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "round {}: push error {} statuses {} failures {} finished before push {} alive {} \
             fresh connection ok {}",
            i + 1,
            r["push_error"],
            r["statuses"],
            r["failures"],
            r["finished_before_push"],
            r["replica_alive"],
            r["fresh_connection_ok"]
        );
    }
}

/// `--store` value that starts a throwaway PostgreSQL cluster per round.
const THROWAWAY_STORE: &str = "postgres:throwaway";

/// Entry point.
pub fn run(args: &[String]) -> Result<(), String> {
    let o = parse_options(args)?;
    // `--store postgres:throwaway`: a fresh PostgreSQL cluster per round
    // (the tests' helper: temp dir, free loopback port, stopped at the end).
    let throwaway = o.store.as_deref() == Some(THROWAWAY_STORE);
    let store = if throwaway {
        Store::Shared(String::new())
    } else {
        Store::choose(o.store.as_deref(), o.replicas)?
    };
    let limit = raise_own_fd_limit(o.polls as u64 + CLIENT_SPARE_FDS)?;
    let binary = match &o.binary {
        Some(path) => path.clone(),
        None => build_control()?,
    };
    let out = steps::target_dir().join("bench-longpoll");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut rounds = Vec::new();
    for i in 0..o.rounds {
        let dir = out.join(format!("work-{}-{i}", std::process::id()));
        let database = if throwaway {
            Some(mcp_guard_e2e::postgres::Postgres::start()?)
        } else {
            None
        };
        let store = match &database {
            Some(db) => Store::Shared(db.url()),
            None => store.clone(),
        };
        let result = runtime.block_on(round(&o, &store, &binary, &dir));
        drop(database);
        // The round's replicas are stopped by now; their files are not
        // needed past a failure report.
        let _ = std::fs::remove_dir_all(&dir);
        let result = result?;
        eprintln!("bench-longpoll: round {} done: {result}", i + 1);
        rounds.push(result);
        // Let the sockets of the round leave TIME_WAIT's way.
        std::thread::sleep(Duration::from_secs(1));
    }
    let median = medians(&rounds);
    print_table(&o, &rounds, &median);
    let file = out.join(format!(
        "polls-{}-replicas-{}{}.json",
        o.polls,
        o.replicas,
        if o.squeeze { "-squeeze" } else { "" }
    ));
    let report = json!({
        "polls": o.polls,
        "replicas": o.replicas,
        "store": match &store { Store::Files => "files", Store::Shared(_) => "shared" },
        "squeeze": o.squeeze,
        "client_fd_limit": limit,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "median": median,
        "rounds": rounds,
    });
    std::fs::write(
        &file,
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", file.display()))?;
    println!("wrote {}", file.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options() {
        let o = parse_options(&[]).unwrap();
        assert_eq!((o.polls, o.rounds, o.replicas), (10_000, 1, 1));
        let o = parse_options(&args(&[
            "--polls",
            "1000",
            "--rounds",
            "3",
            "--replicas",
            "2",
            "--store",
            "postgres://x",
        ]))
        .unwrap();
        assert_eq!((o.polls, o.rounds, o.replicas), (1000, 3, 2));
        assert_eq!(o.store.as_deref(), Some("postgres://x"));
        assert!(parse_options(&args(&["--polls", "0"])).is_err());
        assert!(parse_options(&args(&["--polls"])).is_err());
        assert!(parse_options(&args(&["--nope"])).is_err());
        assert!(parse_options(&args(&["--squeeze", "--replicas", "2"])).is_err());
    }

    #[test]
    fn medians_per_row() {
        let rounds = vec![
            json!({"parked": 10.0, "latency_ms": {"p50": 3.0}}),
            json!({"parked": 10.0, "latency_ms": {"p50": 1.0}}),
            json!({"parked": 10.0, "latency_ms": {"p50": 2.0}}),
        ];
        let m = medians(&rounds);
        assert_eq!(m["parked polls"], json!(10.0));
        assert_eq!(m["push sent -> answer p50 (ms)"], json!(2.0));
        assert!(m.get("push sent -> all answered (ms)").is_none());
    }
}
