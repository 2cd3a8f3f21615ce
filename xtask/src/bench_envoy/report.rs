//! Summaries across rounds and the outputs: a text table, markdown, JSON
//! and a small hand-written SVG bar chart.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::variants::Variant;

/// One variant measured once (one round).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// wrk requests/s with 8 connections.
    pub rps8: f64,
    /// wrk requests/s with 64 connections.
    pub rps64: f64,
    /// Paced latency median, µs.
    pub p50_us: f64,
    /// Paced latency 99th percentile, µs.
    pub p99_us: f64,
    /// Envoy CPU time per request over both wrk runs, µs.
    pub cpu_us_per_req: f64,
    /// Envoy RSS after the load, MiB.
    pub rss_mib: f64,
    /// Median time to first body byte of the slow stream, µs.
    pub ttfb_us: Option<f64>,
}

/// A variant's medians across rounds, and its same-round ratios against
/// its baseline.
#[derive(Debug, Clone)]
pub struct Row {
    /// The variant.
    pub variant: Variant,
    /// Rounds it was measured in.
    pub rounds: usize,
    /// Medians of the raw samples.
    pub median: Sample,
    /// Median over rounds of rps@8 / baseline's rps@8 in that round.
    pub rps8_ratio: f64,
    /// The same at 64 connections.
    pub rps64_ratio: f64,
    /// Median over rounds of p50 − baseline's p50, µs.
    pub added_p50_us: f64,
    /// Median over rounds of CPU/request ÷ baseline's.
    pub cpu_ratio: f64,
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v.get(n / 2).copied().unwrap_or(f64::NAN),
        n => {
            (v.get(n / 2 - 1).copied().unwrap_or(f64::NAN)
                + v.get(n / 2).copied().unwrap_or(f64::NAN))
                / 2.0
        }
    }
}

/// Per variant, its sample in each round (None when it did not run).
pub type Results = BTreeMap<&'static str, Vec<Option<Sample>>>;

/// Summarises the rounds into rows, in `variants` order.
pub fn summarise(variants: &[Variant], results: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    for v in variants {
        let Some(own) = results.get(v.name) else {
            continue;
        };
        let base = results.get(v.baseline);
        let pairs: Vec<(Sample, Option<Sample>)> = own
            .iter()
            .enumerate()
            .filter_map(|(round, s)| {
                let b = base.and_then(|b| b.get(round).copied().flatten());
                s.map(|s| (s, b))
            })
            .collect();
        if pairs.is_empty() {
            continue;
        }
        let m = |f: fn(&Sample) -> f64| median(pairs.iter().map(|(s, _)| f(s)));
        let r = |f: fn(&Sample) -> f64| {
            median(pairs.iter().filter_map(|(s, b)| Some(f(s) / f(&(*b)?))))
        };
        rows.push(Row {
            variant: *v,
            rounds: pairs.len(),
            median: Sample {
                rps8: m(|s| s.rps8),
                rps64: m(|s| s.rps64),
                p50_us: m(|s| s.p50_us),
                p99_us: m(|s| s.p99_us),
                cpu_us_per_req: m(|s| s.cpu_us_per_req),
                rss_mib: m(|s| s.rss_mib),
                ttfb_us: pairs
                    .iter()
                    .any(|(s, _)| s.ttfb_us.is_some())
                    .then(|| m(|s| s.ttfb_us.unwrap_or(f64::NAN))),
            },
            rps8_ratio: r(|s| s.rps8),
            rps64_ratio: r(|s| s.rps64),
            added_p50_us: median(
                pairs
                    .iter()
                    .filter_map(|(s, b)| Some(s.p50_us - (*b)?.p50_us)),
            ),
            cpu_ratio: r(|s| s.cpu_us_per_req),
        });
    }
    rows
}

const HEADERS: [&str; 13] = [
    "variant",
    "rps@8",
    "×base",
    "rps@64",
    "×base",
    "p50 µs",
    "p99 µs",
    "+p50 µs",
    "CPU µs/req",
    "×base",
    "RSS MiB",
    "TTFB µs",
    "base",
];

fn cells(row: &Row) -> [String; 13] {
    let m = &row.median;
    let f0 = |x: f64| format!("{x:.0}");
    [
        row.variant.name.to_string(),
        f0(m.rps8),
        format!("{:.2}", row.rps8_ratio),
        f0(m.rps64),
        format!("{:.2}", row.rps64_ratio),
        f0(m.p50_us),
        f0(m.p99_us),
        format!("{:+.0}", row.added_p50_us),
        format!("{:.1}", m.cpu_us_per_req),
        format!("{:.2}", row.cpu_ratio),
        format!("{:.1}", m.rss_mib),
        m.ttfb_us.map(f0).unwrap_or_else(|| "-".into()),
        row.variant.baseline.to_string(),
    ]
}

/// The table for the terminal.
pub fn text_table(rows: &[Row]) -> String {
    let all: Vec<[String; 13]> = rows.iter().map(cells).collect();
    let width = |i: usize| {
        all.iter()
            .map(|c| c.get(i).map_or(0, |s| s.chars().count()))
            .chain(HEADERS.get(i).map(|h| h.chars().count()))
            .max()
            .unwrap_or(0)
    };
    let mut out = String::new();
    let line = |cols: Vec<String>, out: &mut String| {
        for (i, c) in cols.iter().enumerate() {
            let pad = width(i).saturating_sub(c.chars().count());
            if i == 0 {
                let _ = write!(out, "{c}{} ", " ".repeat(pad));
            } else {
                let _ = write!(out, " {}{c}", " ".repeat(pad));
            }
        }
        out.push('\n');
    };
    line(HEADERS.iter().map(|h| h.to_string()).collect(), &mut out);
    for c in &all {
        line(c.to_vec(), &mut out);
    }
    out
}

/// Run settings and machine, for every output.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// Rounds.
    pub rounds: u32,
    /// Seconds per wrk run and per latency run.
    pub seconds: u64,
    /// Paced latency rate.
    pub rate: u32,
    /// Wall time of the run, s.
    pub wall_s: f64,
    /// `nproc` and the CPU model.
    pub machine: String,
    /// UTC date.
    pub date: String,
    /// Envoy version line.
    pub envoy: String,
    /// nginx served directly: (answer path, rps at 64 connections).
    pub upstream_rps: Vec<(String, f64)>,
    /// Variants skipped, with why.
    pub skipped: Vec<String>,
    /// What to keep in mind reading the numbers.
    pub note: String,
}

/// `docs/bench/envoy.md`.
pub fn markdown(rows: &[Row], info: &RunInfo) -> String {
    let mut md = String::from("# mcp-guard in Envoy: load benchmark\n\n");
    let _ = writeln!(
        md,
        "Generated by `cargo xtask bench-envoy` on {} ({}), {}; {} rounds × {} s per run, \
         wall time {:.0} s.\n\n**Machine note:** {}\n",
        info.date, info.machine, info.envoy, info.rounds, info.seconds, info.wall_s, info.note
    );
    md.push_str("| variant | what | ");
    md.push_str(&HEADERS.get(1..).unwrap_or_default().join(" | "));
    md.push_str(" |\n|---|---|");
    md.push_str(&"---:|".repeat(HEADERS.len() - 1));
    md.push('\n');
    for row in rows {
        let c = cells(row);
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            row.variant.name,
            row.variant.about,
            c.get(1..).unwrap_or_default().join(" | ")
        );
    }
    md.push_str("\nnginx served directly (64 connections): ");
    let direct: Vec<String> = info
        .upstream_rps
        .iter()
        .map(|(p, r)| format!("`{p}` {r:.0} rps"))
        .collect();
    md.push_str(&direct.join(", "));
    md.push_str(".\n");
    if !info.skipped.is_empty() {
        let _ = writeln!(md, "\nSkipped: {}.", info.skipped.join("; "));
    }
    let _ = write!(
        md,
        "\n![rps@8 ratio and CPU per request](envoy.svg)\n\n## How measured\n\n\
         Each variant is a generated Envoy 1.40 configuration with the same listener, routes and \
         clusters and one worker (`--concurrency 1`), started fresh for every measurement; only \
         the HTTP filter chain differs. The upstream is nginx (one process, fixed answers: a small \
         JSON, a ~4 KB JSON with 10 PII values, an OpenAI-style SSE answer), all on loopback; \
         every request is a keep-alive `POST` with a chat body and a valid ES256 token. Before \
         timing, each variant's answers are checked (status 200, exact bytes when nothing is \
         scrubbed, 10 or 2 redaction markers and no original value when scrubbed, 403 on an \
         unlisted path with mcp-guard, a scrubbed prompt at the upstream for `R`). Variants run \
         round by round ({rounds} rounds, the order rotated each round), and ratios are taken \
         within a round against the baseline (`A`, or `A-SSE` for SSE), then the median across \
         rounds is shown. Throughput: `wrk -t1` with 8 and 64 connections, {s} s each after a 1 s \
         warm-up. CPU per request: Envoy's utime+stime from `/proc/<pid>/stat` across both wrk \
         runs divided by the requests wrk completed. Latency: one connection, requests paced at \
         {rate}/s for {s} s by xtask's own client (closed loop: a slow answer delays the next \
         request; wrk cannot hold a fixed rate), request written → answer read; `+p50` is the \
         difference to the baseline's p50 in the same round. RSS: `VmRSS` after the load. TTFB: \
         a second, in-process upstream streams 21 SSE events 1 ms apart; the median time from \
         writing the request to the first body byte over sequential requests. Native (dynamic \
         module) variants run only when `MCP_GUARD_NATIVE` names a `libmcp_guard_native.so`.\n",
        rounds = info.rounds,
        s = info.seconds,
        rate = info.rate,
    );
    md
}

/// `docs/bench/envoy.json`.
pub fn json(rows: &[Row], info: &RunInfo) -> Value {
    let num = |x: f64| if x.is_finite() { json!(x) } else { Value::Null };
    json!({
        "date": info.date, "machine": info.machine, "envoy": info.envoy,
        "rounds": info.rounds, "seconds": info.seconds, "paced_rate": info.rate,
        "wall_seconds": info.wall_s, "note": info.note,
        "nginx_direct_rps64": info.upstream_rps.iter().map(|(p, r)| (p.clone(), json!(r))).collect::<serde_json::Map<_, _>>(),
        "skipped": info.skipped,
        "variants": rows.iter().map(|r| json!({
            "name": r.variant.name, "about": r.variant.about, "baseline": r.variant.baseline,
            "rounds": r.rounds,
            "rps8": num(r.median.rps8), "rps64": num(r.median.rps64),
            "rps8_ratio": num(r.rps8_ratio), "rps64_ratio": num(r.rps64_ratio),
            "p50_us": num(r.median.p50_us), "p99_us": num(r.median.p99_us),
            "added_p50_us": num(r.added_p50_us),
            "cpu_us_per_req": num(r.median.cpu_us_per_req), "cpu_ratio": num(r.cpu_ratio),
            "rss_mib": num(r.median.rss_mib),
            "ttfb_p50_us": r.median.ttfb_us.map_or(Value::Null, num),
        })).collect::<Vec<_>>(),
    })
}

/// `docs/bench/envoy.svg`: rps@8 ratio (left) and CPU µs/request (right)
/// as horizontal bars, one row per variant.
pub fn svg(rows: &[Row]) -> String {
    let (label_w, bar_w, gap, row_h, top) = (130.0, 260.0, 70.0, 22.0, 40.0);
    let width = label_w + 2.0 * bar_w + gap + 80.0;
    let height = top + row_h * rows.len() as f64 + 20.0;
    let max_ratio = rows
        .iter()
        .map(|r| r.rps8_ratio)
        .filter(|x| x.is_finite())
        .fold(1.0, f64::max);
    let max_cpu = rows
        .iter()
        .map(|r| r.median.cpu_us_per_req)
        .filter(|x| x.is_finite())
        .fold(1.0, f64::max);
    let right = label_w + bar_w + gap;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{label_w}\" y=\"20\" font-weight=\"bold\">rps@8 ÷ baseline (same round)</text>\n\
         <text x=\"{right}\" y=\"20\" font-weight=\"bold\">Envoy CPU µs per request</text>\n"
    );
    for (i, row) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let ratio = if row.rps8_ratio.is_finite() {
            row.rps8_ratio
        } else {
            0.0
        };
        let cpu = if row.median.cpu_us_per_req.is_finite() {
            row.median.cpu_us_per_req
        } else {
            0.0
        };
        let w1 = bar_w * ratio / max_ratio;
        let w2 = bar_w * cpu / max_cpu;
        let color = if row.variant.guard.is_some() {
            "#d9822b"
        } else {
            "#4a78b5"
        };
        let _ = write!(
            s,
            "<text x=\"{lx}\" y=\"{ty:.0}\" text-anchor=\"end\">{name}</text>\n\
             <rect x=\"{label_w}\" y=\"{y:.0}\" width=\"{w1:.1}\" height=\"{h:.0}\" fill=\"{color}\"/>\n\
             <text x=\"{t1:.1}\" y=\"{ty:.0}\">{ratio:.2}</text>\n\
             <rect x=\"{right}\" y=\"{y:.0}\" width=\"{w2:.1}\" height=\"{h:.0}\" fill=\"{color}\"/>\n\
             <text x=\"{t2:.1}\" y=\"{ty:.0}\">{cpu:.1}</text>\n",
            lx = label_w - 8.0,
            ty = y + row_h * 0.65,
            name = row.variant.name,
            h = row_h - 6.0,
            t1 = label_w + w1 + 4.0,
            t2 = right + w2 + 4.0,
        );
    }
    let x1 = label_w + bar_w / max_ratio;
    let _ = writeln!(
        s,
        "<line x1=\"{x1:.1}\" y1=\"{top}\" x2=\"{x1:.1}\" y2=\"{y2:.0}\" stroke=\"#333\" \
         stroke-dasharray=\"3,3\"/>\n</svg>",
        y2 = height - 20.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_envoy::variants;

    fn sample(rps: f64, p50: f64, cpu: f64) -> Sample {
        Sample {
            rps8: rps,
            rps64: rps,
            p50_us: p50,
            p99_us: p50 * 2.0,
            cpu_us_per_req: cpu,
            rss_mib: 30.0,
            ttfb_us: None,
        }
    }

    #[test]
    fn ratios_are_taken_within_a_round_then_medianed() {
        let all = variants::all();
        let pick: Vec<Variant> = all
            .into_iter()
            .filter(|v| v.name == "A" || v.name == "B")
            .collect();
        let mut results = Results::new();
        // The machine gets twice as fast in round 2: ratios stay 0.5.
        results.insert(
            "A",
            vec![
                Some(sample(1000.0, 100.0, 10.0)),
                Some(sample(2000.0, 50.0, 5.0)),
            ],
        );
        results.insert(
            "B",
            vec![
                Some(sample(500.0, 130.0, 20.0)),
                Some(sample(1000.0, 80.0, 10.0)),
            ],
        );
        let rows = summarise(&pick, &results);
        let b = rows.iter().find(|r| r.variant.name == "B").unwrap();
        assert!((b.rps8_ratio - 0.5).abs() < 1e-9);
        assert!((b.cpu_ratio - 2.0).abs() < 1e-9);
        assert!((b.added_p50_us - 30.0).abs() < 1e-9);
        assert!((b.median.rps8 - 750.0).abs() < 1e-9);
        let a = rows.iter().find(|r| r.variant.name == "A").unwrap();
        assert!((a.rps8_ratio - 1.0).abs() < 1e-9);
        let table = text_table(&rows);
        assert!(table.lines().count() == 3 && table.contains("0.50"));
        let svg = svg(&rows);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<rect").count(), 1 + 2 * rows.len());
    }
}
