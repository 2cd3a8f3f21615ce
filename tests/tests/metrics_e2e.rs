//! The filter's Prometheus metrics through a real Envoy, both targets:
//! labelled series (wasm: labels in the stat name, turned into tags by the
//! bootstrap's `stats_config.stats_tags`; native: label vecs), the latency
//! histograms with the configured buckets, the policy info gauge across a
//! bundle update, and every metric the Grafana dashboard queries.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mcp_guard_e2e::http::{get_text, send, Reply};
use mcp_guard_e2e::prometheus::{self, Samples, Series};
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target, DEMO_BUNDLE};
use serde_json::Value;

/// The dashboard checked in for SREs.
const DASHBOARD: &str = include_str!("../../docs/grafana/mcp-guard.json");

const CHAT: &str =
    r#"{"model":"demo-llm","messages":[{"role":"user","content":"Who can I call?"}]}"#;

/// Every metric the filter exports (histograms add `_bucket`, `_sum`,
/// `_count`).
const OURS: [&str; 8] = [
    "mcp_decisions_total",
    "mcp_redactions_total",
    "mcp_pii_blocked_total",
    "mcp_tool_pin_mismatch_total",
    "mcp_bundle_fetches_total",
    "mcp_policy_info",
    "mcp_decision_duration_microseconds",
    "mcp_scrub_duration_microseconds",
];

struct Scrape(Samples);

impl Scrape {
    fn take(stack: &Stack) -> Self {
        Self(prometheus::scrape(&stack.envoy.admin).expect("admin answers"))
    }

    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.0.get(name, labels)
    }

    fn names(&self) -> BTreeSet<&str> {
        self.0 .0.keys().map(|(n, _)| n.as_str()).collect()
    }

    /// The filter's series, under whatever name Envoy gave them (Envoy's
    /// own `wasm.mcp_guard.*` VM stats are not ours).
    fn mcp(&self) -> impl Iterator<Item = (&Series, &f64)> {
        self.0
             .0
            .iter()
            .filter(|((n, _), _)| OURS.iter().any(|base| n.contains(base)))
    }
}

/// Waits until `ready` holds for a scrape (histograms reach the admin
/// output at Envoy's stats flush, every 5 s by default).
fn scrape_until(stack: &Stack, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scrape = Scrape::take(stack);
        if ready(&scrape) || Instant::now() > deadline {
            return scrape;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn chat(stack: &Stack, token: Option<&str>) -> Reply {
    send(
        "POST",
        &stack.url("/v1/chat/completions"),
        token,
        &[],
        Some(CHAT),
    )
    .expect("request completes")
}

/// Metric names a PromQL expression reads (`mcp_*` identifiers).
fn referenced_metrics(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("mcp_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn dashboard_metrics() -> BTreeSet<String> {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("dashboard is JSON");
    let mut names = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            names.extend(referenced_metrics(target["expr"].as_str().expect("expr")));
        }
    }
    names
}

#[test]
fn labelled_metrics_histograms_and_dashboard() {
    let wanted = dashboard_metrics();
    assert!(wanted.len() >= 7, "dashboard reads {wanted:?}");
    for target in target::available() {
        eprintln!(
            "labelled_metrics_histograms_and_dashboard: {}",
            target.name()
        );
        labelled_metrics_on(&target, &wanted);
    }
}

fn labelled_metrics_on(target: &Target, dashboard: &BTreeSet<String>) {
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        ..StackOptions::default()
    })
    .expect("stack starts");

    // One allowed chat whose answer carries PII, one denied caller, two
    // unauthenticated requests.
    let allowed = chat(&stack, Some(&tokens::alice().unwrap()));
    assert_eq!(allowed.status, 200, "{allowed:?}");
    let emails = allowed.body.matches("[EMAIL]").count();
    let phones = allowed.body.matches("[PHONE]").count();
    assert!(emails >= 1 && phones >= 1, "{}", allowed.body);
    let denied = chat(&stack, Some(&tokens::mallory().unwrap()));
    assert_eq!(denied.status, 403, "{denied:?}");
    let deny_reason = denied.json()["reason"].as_str().unwrap().to_owned();
    for _ in 0..2 {
        assert_eq!(chat(&stack, None).status, 401);
    }

    // A second bundle version replaces the first.
    let mut v2: Value = serde_json::from_str(DEMO_BUNDLE).unwrap();
    v2["description"] = Value::String("metrics e2e v2".into());
    let pushed = stack.push("demo", &v2.to_string()).unwrap();
    assert_eq!(pushed.json()["version"], 2, "{pushed:?}");
    stack
        .wait_for_version(2, 2, Duration::from_secs(30))
        .expect("v2 active");

    let decisions = "mcp_decisions_total";
    let scrape = scrape_until(&stack, |s| {
        s.get("mcp_decision_duration_microseconds_count", &[]) == Some(4.0)
            && s.get("mcp_scrub_duration_microseconds_count", &[]) == Some(1.0)
            && s.get("mcp_policy_info", &[("name", "demo"), ("version", "2")]) == Some(1.0)
    });
    let show = || {
        scrape
            .mcp()
            .map(|(k, v)| format!("{k:?} {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // Decisions by outcome and reason, counted exactly.
    let decided =
        |outcome, reason| scrape.get(decisions, &[("outcome", outcome), ("reason", reason)]);
    assert_eq!(decided("allow", "rule_allow"), Some(1.0), "{}", show());
    assert_eq!(decided("deny", "missing_token"), Some(2.0), "{}", show());
    assert_eq!(decided("deny", &deny_reason), Some(1.0), "{}", show());
    let total: f64 = scrape
        .mcp()
        .filter(|((n, _), _)| n == decisions)
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, 4.0, "{}", show());

    // Redactions per type, as many as the caller saw replaced.
    let redactions = |ty| scrape.get("mcp_redactions_total", &[("type", ty)]);
    assert_eq!(redactions("email"), Some(emails as f64), "{}", show());
    assert_eq!(redactions("phone"), Some(phones as f64), "{}", show());

    // The policy info gauge: 1 for the active bundle, 0 for the replaced.
    let info = |version| scrape.get("mcp_policy_info", &[("name", "demo"), ("version", version)]);
    assert_eq!(info("2"), Some(1.0), "{}", show());
    assert_eq!(info("1"), Some(0.0), "{}", show());

    // Both fetches that brought a bundle were counted as ok.
    let ok = scrape.get("mcp_bundle_fetches_total", &[("result", "ok")]);
    assert!(ok.is_some_and(|n| n >= 1.0), "{}", show());

    // Latency histograms: one decision per request, one scrubbed answer,
    // in the configured microsecond buckets.
    let count = |h: &str| scrape.get(&format!("{h}_count"), &[]);
    assert_eq!(
        count("mcp_decision_duration_microseconds"),
        Some(4.0),
        "{}",
        show()
    );
    assert_eq!(
        count("mcp_scrub_duration_microseconds"),
        Some(1.0),
        "{}",
        show()
    );
    let bucket = |h: &str, le: &str| scrape.get(&format!("{h}_bucket"), &[("le", le)]);
    assert_eq!(
        bucket("mcp_decision_duration_microseconds", "+Inf"),
        Some(4.0),
        "{}",
        show()
    );
    assert!(
        bucket("mcp_scrub_duration_microseconds", "250").is_some(),
        "the configured buckets apply: {}",
        show()
    );
    let sum = scrape.get("mcp_decision_duration_microseconds_sum", &[]);
    assert!(sum.is_some_and(|s| s > 0.0), "{}", show());

    // No Envoy default tag extractor touched the names: every mcp series
    // is a bare `mcp_*` name with only our labels.
    let ours = [
        "outcome", "reason", "type", "result", "name", "version", "le",
    ];
    for ((name, labels), _) in scrape.mcp() {
        assert!(
            OURS.iter().any(|base| name
                .strip_prefix(base)
                .is_some_and(|rest| { ["", "_bucket", "_sum", "_count"].contains(&rest) })),
            "mangled name {name}: {}",
            show()
        );
        for key in labels.keys() {
            assert!(ours.contains(&key.as_str()), "label {key} on {name}");
        }
    }

    // Prometheus types: counters, a gauge, histograms.
    let raw = get_text(&format!("http://{}/stats/prometheus", stack.envoy.admin)).unwrap();
    for (name, kind) in [
        ("mcp_decisions_total", "counter"),
        ("mcp_policy_info", "gauge"),
        ("mcp_decision_duration_microseconds", "histogram"),
    ] {
        assert!(
            raw.contains(&format!("# TYPE {name} {kind}\n")),
            "{name}: {raw}"
        );
    }

    // Every metric is exported, and every metric the dashboard queries.
    for base in OURS {
        assert!(
            scrape.mcp().any(|((n, _), _)| n.starts_with(base)),
            "{base} missing: {}",
            show()
        );
    }
    let names = scrape.names();
    for metric in dashboard {
        assert!(
            names.contains(metric.as_str()),
            "dashboard reads {metric}, Envoy exports none: {}",
            show()
        );
    }
}
