//! Load: `wrk` for throughput, a paced single-connection client for
//! latency (wrk cannot hold a fixed rate), and time to first byte of a
//! slow stream.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::wire::{self, Conn};

/// What one request of a variant looks like.
#[derive(Debug, Clone)]
pub struct Request {
    /// Path on the listener.
    pub path: String,
    /// Bearer token.
    pub token: String,
    /// JSON body.
    pub body: String,
}

/// A finished wrk run.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    /// Requests completed.
    pub requests: u64,
    /// Requests per second.
    pub rps: f64,
}

/// Writes the wrk Lua script that sends `req` as a keep-alive POST.
pub fn wrk_script(req: &Request, dir: &Path, name: &str) -> Result<PathBuf, String> {
    if req.body.contains("]==]") || req.token.contains("]==]") {
        return Err("request cannot be quoted for Lua".into());
    }
    let script = format!(
        "wrk.method = \"POST\"\nwrk.body = [==[{}]==]\n\
         wrk.headers[\"content-type\"] = \"application/json\"\n\
         wrk.headers[\"accept\"] = \"application/json, text/event-stream\"\n\
         wrk.headers[\"authorization\"] = [==[Bearer {}]==]\n",
        req.body, req.token
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, script).map_err(|e| e.to_string())?;
    Ok(path)
}

/// The count after `label` in wrk's output (`Non-2xx or 3xx responses: 5`).
fn count_after(out: &str, label: &str) -> u64 {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Parses wrk's summary; fails on non-2xx answers or socket errors other
/// than timeouts.
pub fn parse_wrk(out: &str) -> Result<WrkRun, String> {
    let requests = out
        .lines()
        .find_map(|l| {
            let (n, rest) = l.trim().split_once(' ')?;
            rest.starts_with("requests in").then(|| n.parse().ok())?
        })
        .ok_or_else(|| format!("no request count in wrk output:\n{out}"))?;
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no Requests/sec in wrk output:\n{out}"))?;
    let non_2xx = count_after(out, "Non-2xx or 3xx responses:");
    if non_2xx > 0 {
        return Err(format!("{non_2xx} answers were not 2xx:\n{out}"));
    }
    if let Some(errors) = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
    {
        let bad: u64 = errors
            .split(',')
            .filter(|e| !e.contains("timeout"))
            .filter_map(|e| e.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum();
        if bad > 0 {
            return Err(format!("wrk saw socket errors:\n{out}"));
        }
    }
    Ok(WrkRun { requests, rps })
}

/// Runs wrk (one thread) with `connections` for `seconds`.
pub fn wrk(
    port: u16,
    path: &str,
    script: &Path,
    connections: u32,
    seconds: u64,
) -> Result<WrkRun, String> {
    let out = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")])
        .arg("-s")
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text)
}

/// Sends one request on a fresh connection; the whole answer.
pub fn exchange(port: u16, req: &Request) -> Result<wire::Message, String> {
    let mut conn = Conn::connect(port).map_err(|e| e.to_string())?;
    conn.write_all(&wire::post(&req.path, &req.token, &req.body))
        .map_err(|e| e.to_string())?;
    conn.read_message()
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "connection closed before an answer".to_string())
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
}

/// The `q` quantile (0..=1) of sorted samples (nearest rank).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64) * q).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or(f64::NAN)
}

/// One connection, one request at a time, started every `1/rate` s for
/// `seconds` (late requests go at once: a closed loop, so a stall delays
/// the next request rather than piling them up). Every answer must be a
/// 200; latency is request written → answer fully read.
pub fn paced(port: u16, req: &Request, rate: u32, seconds: u64) -> Result<Latency, String> {
    let bytes = wire::post(&req.path, &req.token, &req.body);
    let mut conn = Conn::connect(port).map_err(|e| e.to_string())?;
    let interval = Duration::from_secs(1) / rate.max(1);
    let total = u64::from(rate) * seconds;
    let start = Instant::now();
    let mut samples = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for i in 0..total {
        let due = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t0 = Instant::now();
        conn.write_all(&bytes).map_err(|e| e.to_string())?;
        let msg = conn
            .read_message()
            .map_err(|e| e.to_string())?
            .ok_or("connection closed during the latency run")?;
        samples.push(t0.elapsed().as_secs_f64() * 1e6);
        if msg.status() != 200 {
            return Err(format!("latency run: status {}", msg.status()));
        }
    }
    samples.sort_by(f64::total_cmp);
    Ok(Latency {
        p50_us: quantile(&samples, 0.5),
        p99_us: quantile(&samples, 0.99),
    })
}

/// Median time (µs) from writing a request to holding the first body byte
/// of the slow stream (events 1 ms apart), over `n` sequential requests.
pub fn ttfb(port: u16, req: &Request, n: usize) -> Result<f64, String> {
    let bytes = wire::post(&req.path, &req.token, &req.body);
    let mut conn = Conn::connect(port).map_err(|e| e.to_string())?;
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        conn.write_all(&bytes).map_err(|e| e.to_string())?;
        let msg = conn
            .read_message()
            .map_err(|e| e.to_string())?
            .ok_or("connection closed during the stream run")?;
        let body = String::from_utf8_lossy(&msg.body);
        if msg.status() != 200 || !body.ends_with("data: [DONE]\n\n") {
            return Err(format!(
                "stream run: status {}, body {body:?}",
                msg.status()
            ));
        }
        let first = msg.first_body_byte.ok_or("stream answer without a body")?;
        samples.push(first.duration_since(t0).as_secs_f64() * 1e6);
    }
    samples.sort_by(f64::total_cmp);
    Ok(quantile(&samples, 0.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK_OK: &str = "Running 2s test @ http://127.0.0.1:1/small
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   310.12us  101.00us   3.00ms   90.00%
  48000 requests in 2.00s, 10.00MB read
Requests/sec:  23999.50
Transfer/sec:      5.00MB
";

    #[test]
    fn parses_wrk_summary() {
        let run = parse_wrk(WRK_OK).unwrap();
        assert_eq!(run.requests, 48000);
        assert!((run.rps - 23999.5).abs() < 1e-9);
    }

    #[test]
    fn non_2xx_and_socket_errors_fail() {
        let non2xx = format!("{WRK_OK}  Non-2xx or 3xx responses: 12\n");
        assert!(parse_wrk(&non2xx).is_err());
        let reset = format!("{WRK_OK}  Socket errors: connect 0, read 3, write 0, timeout 0\n");
        assert!(parse_wrk(&reset).is_err());
        let timeouts = format!("{WRK_OK}  Socket errors: connect 0, read 0, write 0, timeout 7\n");
        assert!(parse_wrk(&timeouts).is_ok());
        assert!(parse_wrk("garbage").is_err());
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let s: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&s, 0.5), 50.0);
        assert_eq!(quantile(&s, 0.99), 99.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
