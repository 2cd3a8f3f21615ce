//! `cargo xtask bench-envoy`: mcp-guard under load in a real Envoy,
//! against the filters it is compared with (router only, `jwt_authn`,
//! native RBAC, a no-op wasm filter), on loopback, with `wrk` and nginx.
//!
//! Modules: [`variants`] (the table), [`envoy`] (configurations, start),
//! [`upstream`] (nginx and the streaming server), [`load`] (wrk, paced
//! latency, TTFB), [`checks`] (answers verified before timing), [`report`]
//! (table, markdown, JSON, SVG), [`procs`] (child processes, `/proc`),
//! [`wire`] (minimal HTTP/1.1), [`payloads`] (what is sent and answered).

mod checks;
mod envoy;
mod load;
mod payloads;
pub(crate) mod procs;
mod report;
mod upstream;
mod variants;
mod wire;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::steps;
use load::Request;
use report::{Results, RunInfo, Sample};
use variants::{Answer, Runtime, Variant};

/// Paced latency rate, requests per second.
const PACED_RATE: u32 = 200;

/// Command-line options.
#[derive(Debug, Clone)]
struct Options {
    seconds: u64,
    rounds: u32,
    only: Option<Vec<String>>,
    quick: bool,
    /// Skip the native module (no build, no `-native` variants).
    wasm_only: bool,
}

const USAGE: &str = "usage: cargo xtask bench-envoy [--seconds N] [--rounds N] \
    [--only A,B,...] [--quick] [--wasm-only]";

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        seconds: 3,
        rounds: 3,
        only: None,
        quick: false,
        wasm_only: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--seconds" => {
                o.seconds = value("--seconds")?
                    .parse()
                    .map_err(|_| "--seconds takes a whole number".to_string())?;
            }
            "--rounds" => {
                o.rounds = value("--rounds")?
                    .parse()
                    .map_err(|_| "--rounds takes a whole number".to_string())?;
            }
            "--only" => {
                o.only = Some(
                    value("--only")?
                        .split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                );
            }
            "--quick" => o.quick = true,
            "--wasm-only" => o.wasm_only = true,
            other => return Err(format!("unknown option `{other}`\n{USAGE}")),
        }
    }
    if o.quick {
        o.rounds = 1;
        o.seconds = 2;
    }
    if o.seconds == 0 || o.rounds == 0 {
        return Err("--seconds and --rounds must be at least 1".into());
    }
    Ok(o)
}

/// The variants to run: `--only` plus their baselines; native ones only
/// with `MCP_GUARD_NATIVE`. Also returns what was skipped and why.
fn select(o: &Options, native: bool) -> Result<(Vec<Variant>, Vec<String>), String> {
    let all = variants::all();
    if let Some(only) = &o.only {
        for name in only {
            if !all.iter().any(|v| v.name == name) {
                let names: Vec<&str> = all.iter().map(|v| v.name).collect();
                return Err(format!(
                    "unknown variant `{name}`; known: {}",
                    names.join(", ")
                ));
            }
        }
    }
    let wanted = |v: &Variant| {
        o.only.as_ref().is_none_or(|only| {
            only.iter().any(|n| n == v.name)
                || all
                    .iter()
                    .any(|w| only.iter().any(|n| n == w.name) && w.baseline == v.name)
        })
    };
    let mut chosen = Vec::new();
    let mut skipped = Vec::new();
    for v in all.iter().filter(|v| wanted(v)) {
        if v.guard.is_some_and(|g| g.runtime == Runtime::Native) && !native {
            skipped.push(v.name.to_string());
        } else {
            chosen.push(*v);
        }
    }
    let skipped = if skipped.is_empty() {
        Vec::new()
    } else {
        vec![format!("{} (MCP_GUARD_NATIVE not set)", skipped.join(", "))]
    };
    Ok((chosen, skipped))
}

/// An existing file from an environment variable, if set.
fn env_file(var: &str) -> Result<Option<PathBuf>, String> {
    match std::env::var_os(var) {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            if p.is_file() {
                Ok(Some(p))
            } else {
                Err(format!("{var}={} is not a file", p.display()))
            }
        }
        _ => Ok(None),
    }
}

/// Builds the no-op proxy-wasm filter; returns its path.
fn build_noop_wasm() -> Result<PathBuf, String> {
    steps::ensure_wasm_target()?;
    steps::run(
        &steps::cargo(),
        &[
            "build",
            "--package",
            "mcp-guard-noop-filter",
            "--target",
            "wasm32-wasip1",
            "--release",
        ],
        &[],
    )?;
    Ok(steps::target_dir().join("wasm32-wasip1/release/noop_filter.wasm"))
}

/// Output of a short command, trimmed ("" when it fails).
fn command_text(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// `Envoy 1.40.0` from `envoy --version` (`<path>  version: <sha>/1.40.0/Clean/...`).
fn envoy_version(output: &str) -> String {
    output
        .split_once("version:")
        .and_then(|(_, v)| v.trim().split('/').nth(1))
        .map_or_else(|| "Envoy".into(), |v| format!("Envoy {v}"))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{} cores, {cpu}", command_text("nproc", &[]))
}

/// What a variant's client sends.
fn request_for(v: &Variant, token: &str) -> Request {
    let scrub = v.guard.is_some_and(|g| g.scrub_requests);
    Request {
        path: v.answer.path().to_string(),
        token: token.to_string(),
        body: if v.answer == Answer::Mcp {
            payloads::mcp_call(variants::MCP_TOOL)
        } else if scrub {
            payloads::pii_request()
        } else {
            payloads::chat_request()
        },
    }
}

/// Starts a fresh Envoy for `v`, checks it, measures it, stops it.
fn measure(
    v: &Variant,
    inputs: &envoy::Inputs,
    dir: &Path,
    o: &Options,
    token: &str,
    stream: &upstream::StreamUpstream,
) -> Result<Sample, String> {
    let req = request_for(v, token);
    let stream_req = Request {
        path: "/stream/sse".into(),
        ..request_for(v, token)
    };
    let vdir = dir.join(v.name);
    let mut envoy = envoy::start(v, inputs, &vdir)?;
    checks::variant(v, envoy.port, &req, &stream_req, stream)?;
    if v.answer == Answer::Mcp && (v.guard.is_some() || v.envoy_mcp) {
        for (attack, status) in checks::mcp_attacks(v, envoy.port, &req)? {
            let outcome = if status == 200 {
                "FORWARDED"
            } else {
                "refused"
            };
            eprintln!(
                "bench-envoy: {:<15} attack \"{attack}\": {status} ({outcome})",
                v.name
            );
        }
    }
    let script = load::wrk_script(&req, &vdir, "request")?;
    let pid = envoy.guard.pid();
    load::wrk(envoy.port, &req.path, &script, 8, 1)?; // warm-up
    let cpu0 = procs::cpu_micros(pid)?;
    let r8 = load::wrk(envoy.port, &req.path, &script, 8, o.seconds)?;
    let r64 = load::wrk(envoy.port, &req.path, &script, 64, o.seconds)?;
    let cpu1 = procs::cpu_micros(pid)?;
    let served = (r8.requests + r64.requests).max(1);
    let latency = load::paced(envoy.port, &req, PACED_RATE, o.seconds)?;
    let ttfb_us = if v.ttfb {
        Some(load::ttfb(
            envoy.port,
            &stream_req,
            if o.quick { 20 } else { 60 },
        )?)
    } else {
        None
    };
    let rss_mib = procs::rss_kib(pid)? as f64 / 1024.0;
    envoy.guard.check_alive()?;
    // The same answers after the load: nothing degraded under it.
    checks::variant(v, envoy.port, &req, &stream_req, stream)
        .map_err(|e| format!("after the load: {e}"))?;
    envoy.guard.stop();
    Ok(Sample {
        rps8: r8.rps,
        rps64: r64.rps,
        p50_us: latency.p50_us,
        p99_us: latency.p99_us,
        cpu_us_per_req: (cpu1.saturating_sub(cpu0)) as f64 / served as f64,
        rss_mib,
        ttfb_us,
    })
}

/// Runs the benchmark; `args` are the task's options.
pub fn run(args: &[String]) -> Result<(), String> {
    let started = Instant::now();
    let o = parse_options(args)?;
    // Both targets by default: the native module is built like the wasm
    // filter unless given or skipped.
    let native = match env_file("MCP_GUARD_NATIVE")? {
        _ if o.wasm_only => None,
        Some(p) => Some(p),
        None => Some(steps::build_native()?),
    };
    if let Some(so) = &native {
        if so.file_name().and_then(|n| n.to_str()) != Some("libmcp_guard_native.so") {
            return Err(format!(
                "MCP_GUARD_NATIVE must name a file called libmcp_guard_native.so (Envoy loads \
                 lib<name>.so from ENVOY_DYNAMIC_MODULES_SEARCH_PATH), not {}",
                so.display()
            ));
        }
    }
    let (chosen, skipped) = select(&o, native.is_some())?;
    if !skipped.is_empty() {
        eprintln!("bench-envoy: skipping {}", skipped.join("; "));
    }
    checks::corpus()?;
    upstream::ensure_debian_tool("wrk", "wrk")?;
    let envoy_bin = match env_file("MCP_GUARD_ENVOY")? {
        Some(p) => p,
        None => steps::ensure_envoy()?,
    };
    let wasm = match env_file("MCP_GUARD_WASM")? {
        Some(p) => p,
        None => steps::build_wasm()?,
    };
    let noop_wasm = build_noop_wasm()?;
    let dir = steps::target_dir().join("bench-envoy");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;

    let nginx = upstream::start_nginx(&dir)?;
    let stream = upstream::StreamUpstream::start()?;
    // Global-limit variants ask the real service, counting in Redis.
    let global = chosen.iter().any(|v| {
        v.guard
            .is_some_and(|g| g.limit == Some(variants::LimitStore::Global))
    });
    let rate_limit_service = if global {
        steps::ensure_redis()?;
        steps::run(
            &steps::cargo(),
            &["build", "--package", "mcp-guard-ratelimit"],
            &[],
        )?;
        let redis = mcp_guard_e2e::redis::Redis::start()?;
        let service = mcp_guard_e2e::ratelimit::RateLimitProcess::start(
            &redis.url(),
            &[],
            dir.join("ratelimit.log"),
        )?;
        Some((redis, service))
    } else {
        None
    };
    let token = mcp_guard_e2e::tokens::mint(json!({
        "sub": "alice", "tenant": "acme", "roles": ["model-user"],
        "exp": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs()).unwrap_or(0) + 24 * 3600,
    }))
    .map_err(|e| e.to_string())?;
    let inputs = envoy::Inputs {
        envoy: envoy_bin.clone(),
        wasm,
        noop_wasm,
        native,
        nginx_port: nginx.port,
        stream_port: stream.port,
        ratelimit_port: rate_limit_service.as_ref().map(|(_, s)| s.grpc_port()),
    };

    // The upstream alone must be far faster than any Envoy variant.
    let mut upstream_rps = Vec::new();
    for answer in [Answer::Small, Answer::Pii, Answer::Sse, Answer::Mcp] {
        let req = Request {
            path: answer.path().into(),
            token: token.clone(),
            body: payloads::chat_request(),
        };
        let script = load::wrk_script(&req, &dir, "direct")?;
        let run = load::wrk(nginx.port, &req.path, &script, 64, o.seconds)?;
        eprintln!(
            "bench-envoy: nginx direct {}: {:.0} rps",
            answer.path(),
            run.rps
        );
        upstream_rps.push((answer.path().to_string(), run.rps));
    }

    let mut nginx = nginx;
    nginx.guard.check_alive()?;
    let mut results = Results::new();
    for round in 0..o.rounds {
        let mut order = chosen.clone();
        let len = order.len().max(1);
        order.rotate_left(round as usize % len);
        for v in &order {
            let t = Instant::now();
            let sample = measure(v, &inputs, &dir, &o, &token, &stream)?;
            eprintln!(
                "bench-envoy: round {}/{} {:<15} rps@8 {:>7.0} rps@64 {:>7.0} p50 {:>5.0} µs \
                 p99 {:>5.0} µs CPU {:>5.1} µs/req RSS {:>5.1} MiB{} ({:.0?})",
                round + 1,
                o.rounds,
                v.name,
                sample.rps8,
                sample.rps64,
                sample.p50_us,
                sample.p99_us,
                sample.cpu_us_per_req,
                sample.rss_mib,
                sample
                    .ttfb_us
                    .map(|t| format!(" TTFB {t:.0} µs"))
                    .unwrap_or_default(),
                t.elapsed()
            );
            let slot = results
                .entry(v.name)
                .or_insert_with(|| vec![None; o.rounds as usize]);
            if let Some(s) = slot.get_mut(round as usize) {
                *s = Some(sample);
            }
        }
    }
    drop(nginx);
    drop(stream);
    drop(rate_limit_service);

    let rows = report::summarise(&chosen, &results);
    let rps64_of = |name: &str| {
        rows.iter()
            .find(|r| r.variant.name == name)
            .map_or(f64::NAN, |r| r.median.rps64)
    };
    let fastest = rows.iter().map(|r| r.median.rps64).fold(0.0, f64::max);
    let slowest_direct = upstream_rps
        .iter()
        .map(|(_, r)| *r)
        .fold(f64::MAX, f64::min);
    let headroom = slowest_direct / fastest.max(1.0);
    let info = RunInfo {
        rounds: o.rounds,
        seconds: o.seconds,
        rate: PACED_RATE,
        wall_s: started.elapsed().as_secs_f64(),
        machine: machine(),
        date: command_text("date", &["-u", "+%Y-%m-%d"]),
        envoy: envoy_version(&command_text(
            &envoy_bin.display().to_string(),
            &["--version"],
        )),
        upstream_rps,
        skipped,
        note: std::env::var("BENCH_NOTE").unwrap_or_else(|_| {
            "wrk, nginx and Envoy share this machine's cores (on 2 cores wrk and Envoy's \
             worker each take about one): absolute rps depend on the machine and on what \
             else runs on it; trust the same-run ratios (×base)."
                .into()
        }),
    };
    println!("\n{}", report::text_table(&rows));
    println!(
        "nginx direct (its slowest answer, {slowest_direct:.0} rps) is {headroom:.1}x the \
         fastest Envoy variant and {:.1}x A at 64 connections{}",
        slowest_direct / rps64_of("A"),
        if headroom < 2.0 {
            " — WARNING: the upstream may limit the results"
        } else {
            ""
        }
    );
    let out_dir = if o.quick || o.only.is_some() {
        dir.clone()
    } else {
        mcp_guard_e2e::paths::workspace_root().join("docs/bench")
    };
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let write = |name: &str, text: String| {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write("envoy.md", report::markdown(&rows, &info))?;
    write(
        "envoy.json",
        serde_json::to_string_pretty(&report::json(&rows, &info)).map_err(|e| e.to_string())?
            + "\n",
    )?;
    write("envoy.svg", report::svg(&rows))?;
    println!(
        "wrote envoy.md, envoy.json, envoy.svg to {} (wall time {:.0?})",
        out_dir.display(),
        Duration::from_secs_f64(info.wall_s)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_parse_and_quick_overrides() {
        let o = parse_options(&args(&["--seconds", "5", "--rounds", "2"])).unwrap();
        assert_eq!((o.seconds, o.rounds, o.quick), (5, 2, false));
        let q = parse_options(&args(&["--quick", "--rounds", "9"])).unwrap();
        assert_eq!((q.seconds, q.rounds), (2, 1));
        assert!(parse_options(&args(&["--seconds"])).is_err());
        assert!(parse_options(&args(&["--seconds", "0"])).is_err());
        assert!(parse_options(&args(&["--bogus"])).is_err());
    }

    #[test]
    fn only_adds_baselines_and_native_needs_the_library() {
        let o = parse_options(&args(&["--only", "C,B-native"])).unwrap();
        let (chosen, skipped) = select(&o, false).unwrap();
        let names: Vec<&str> = chosen.iter().map(|v| v.name).collect();
        assert_eq!(names, ["A", "A-SSE", "C"]);
        assert_eq!(skipped.len(), 1);
        let (chosen, _) = select(&o, true).unwrap();
        assert!(chosen.iter().any(|v| v.name == "B-native"));
        let bad = parse_options(&args(&["--only", "Z"])).unwrap();
        assert!(select(&bad, false).is_err());
    }

    #[test]
    fn envoy_version_is_read_past_the_binary_path() {
        let out = "/work/x/.venv/bin/envoy  version: 9e55/1.40.0/Clean/RELEASE/BoringSSL";
        assert_eq!(envoy_version(out), "Envoy 1.40.0");
        assert_eq!(envoy_version(""), "Envoy");
    }

    #[test]
    fn default_run_skips_only_native_variants() {
        let o = parse_options(&[]).unwrap();
        let (chosen, _) = select(&o, false).unwrap();
        assert_eq!(chosen.len(), 17);
        assert!(chosen
            .iter()
            .all(|v| v.guard.is_none_or(|g| g.runtime != Runtime::Native)));
    }
}
