//! Decision cost as bundles grow: 10, 100, 1,000 and 10,000 rules, natively
//! (`Policy::decide_calls`) and through the real `.wasm` in the wasmtime
//! host (a whole MCP request: metadata decoding, body parse, decision,
//! filter state, metrics), in the same run.
//!
//! The bundles mix what large real bundles hold: per-tool MCP rules with a
//! role condition, exact-path rules, prefix rules and a few catch-all deny
//! rules on claims; the request is a `tools/call` that one rule allows.
//!
//! `decision_kinds` compares 100 and 10,000 rules of one shape at a time
//! (per-tool, per-model under one chat path, per-path, and all mixed) and
//! prints the 10,000 / 100 ratio of each: the index must keep every shape
//! flat, not only the one the mixed bundle happens to exercise.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mcp_guard_engine::mcp::read_body;
use mcp_guard_engine::{Bundle, Claims, Decision, Policy, RequestAttrs};
use mcp_guard_host_test::Host;
use serde_json::{json, Value};
use std::hint::black_box;

const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];

fn bundle(rules: usize) -> Value {
    let rules: Vec<Value> = (0..rules)
        .map(|i| match i % 8 {
            0 => json!({"id": format!("deny-{i}"), "effect": "deny",
                        "when": {"claims": [{"claim": "flags", "contains_any": [format!("blocked-{i}")]}], "path": {"prefix": format!("/svc{i}/")}}}),
            1 | 2 => json!({"id": format!("path-{i}"), "effect": "allow",
                        "when": {"methods": ["POST"], "path": {"exact": format!("/api/r{i}")}}}),
            3 => json!({"id": format!("prefix-{i}"), "effect": "allow",
                        "when": {"path": {"prefix": format!("/svc{i}/")}, "claims": [{"claim": "tenant", "equals": "acme"}]}}),
            _ => json!({"id": format!("tool-{i}"), "effect": "allow",
                        "when": {"path": {"exact": "/mcp"}, "mcp": {"tools": [format!("tool_{i}")]},
                                 "claims": [{"claim": "roles", "contains_any": [format!("role-{}", i % 50)]}]}}),
        })
        .collect();
    json!({"name": "scale", "version": 1, "rules": rules})
}

/// The allowed tool in a bundle of `n` rules (a tool rule near the end).
fn target_tool(n: usize) -> usize {
    (0..n).rev().find(|i| i % 8 >= 4).unwrap_or(4)
}

fn call_body(tool: usize) -> String {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": format!("tool_{tool}"), "arguments": {}}}).to_string()
}

fn claims_for(tool: usize) -> Value {
    json!({"sub": "alice", "tenant": "acme", "roles": ["viewer", format!("role-{}", tool % 50)], "flags": []})
}

fn native(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision_native");
    for n in SIZES {
        let policy = Policy::new(Bundle::parse(bundle(n).to_string().as_bytes()).unwrap()).unwrap();
        let tool = target_tool(n);
        let claims = Claims::new(claims_for(tool).as_object().unwrap().clone());
        let calls = read_body(call_body(tool).as_bytes()).unwrap().mcp;
        let request = RequestAttrs::new("POST", "/mcp", "mcp.local");
        let decision = policy.decide_calls(&claims, &request, &calls);
        assert_eq!(
            decision.rule_id.as_deref(),
            Some(format!("tool-{tool}").as_str())
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| black_box(policy.decide_calls(black_box(&claims), &request, &calls)))
        });
    }
    group.finish();
}

/// The rule shapes whose per-request cost must stay flat as bundles grow.
#[derive(Clone, Copy)]
enum Kind {
    /// Per-tool MCP rules under one exact path, with a role condition.
    Tool,
    /// Per-model rules under one exact chat path (the shape that doubled
    /// in Envoy when model rules were filed under their path).
    Model,
    /// Exact-path and prefix rules.
    Path,
    /// All of the above interleaved, plus catch-all deny rules on claims.
    Mixed,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Tool, Kind::Model, Kind::Path, Kind::Mixed];

    fn name(self) -> &'static str {
        match self {
            Kind::Tool => "tool",
            Kind::Model => "model",
            Kind::Path => "path",
            Kind::Mixed => "mixed",
        }
    }

    /// The shape of rule `i`.
    fn shape(self, i: usize) -> Kind {
        match self {
            Kind::Mixed => [Kind::Tool, Kind::Model, Kind::Path][i % 3],
            other => other,
        }
    }
}

fn kind_rule(kind: Kind, i: usize) -> Value {
    let role = format!("role-{}", i % 50);
    match kind.shape(i) {
        Kind::Tool => json!({"id": format!("r{i}"), "effect": "allow",
            "when": {"methods": ["POST"], "path": {"exact": "/mcp"}, "mcp": {"tools": [format!("tool_{i}")]},
                     "claims": [{"claim": "roles", "contains_any": [role]}]}}),
        Kind::Model => json!({"id": format!("r{i}"), "effect": "allow",
            "when": {"methods": ["POST"], "path": {"exact": "/v1/chat/completions"}, "models": [format!("model-{i}")],
                     "claims": [{"claim": "roles", "contains_any": [role]}]}}),
        _ if i.is_multiple_of(2) => json!({"id": format!("r{i}"), "effect": "allow",
            "when": {"methods": ["GET"], "path": {"exact": format!("/api/r{i}")}}}),
        _ => json!({"id": format!("r{i}"), "effect": "allow",
            "when": {"path": {"prefix": format!("/svc{i}/")}, "claims": [{"claim": "tenant", "equals": "acme"}]}}),
    }
}

fn kind_bundle(kind: Kind, n: usize) -> Policy {
    let mut rules: Vec<Value> = vec![
        json!({"id": "deny-suspended", "effect": "deny", "when": {"claims": [{"claim": "suspended", "equals": true}]}}),
        json!({"id": "deny-blocked", "effect": "deny", "when": {"claims": [{"claim": "flags", "contains_any": ["blocked"]}]}}),
    ];
    rules.extend((0..n).map(|i| kind_rule(kind, i)));
    let text = json!({"name": "scale", "version": 1, "rules": rules}).to_string();
    Policy::compile(text.as_bytes()).unwrap()
}

/// One request of the given shape, allowed by rule `i`.
struct Probe {
    path: String,
    method: &'static str,
    model: Option<String>,
    calls: Vec<mcp_guard_engine::McpCall>,
    claims: Claims,
}

impl Probe {
    fn new(kind: Kind, i: usize) -> Self {
        let claims = Claims::new(
            json!({"sub": "alice", "tenant": "acme", "roles": ["viewer", format!("role-{}", i % 50)], "flags": []})
                .as_object()
                .unwrap()
                .clone(),
        );
        let (path, method, model, calls) = match kind.shape(i) {
            Kind::Tool => (
                "/mcp".to_string(),
                "POST",
                None,
                read_body(call_body(i).as_bytes()).unwrap().mcp,
            ),
            Kind::Model => (
                "/v1/chat/completions".to_string(),
                "POST",
                Some(format!("model-{i}")),
                Vec::new(),
            ),
            _ if i.is_multiple_of(2) => (format!("/api/r{i}"), "GET", None, Vec::new()),
            _ => (format!("/svc{i}/items/7"), "GET", None, Vec::new()),
        };
        Self {
            path,
            method,
            model,
            calls,
            claims,
        }
    }

    fn decide(&self, policy: &Policy) -> Decision {
        let request = RequestAttrs::new(self.method, &self.path, "api.local")
            .with_model(self.model.as_deref());
        policy.decide_calls(black_box(&self.claims), &request, &self.calls)
    }
}

/// Rules (near the end of an `n`-rule bundle) that the probes of `kind`
/// target: one of each shape for the mixed set.
fn probes(kind: Kind, n: usize) -> Vec<Probe> {
    let last = |shape: usize| (0..n).rev().find(|i| i % 3 == shape).unwrap_or(shape);
    let targets: Vec<usize> = match kind {
        Kind::Mixed => vec![last(0), last(1), last(2), last(2).saturating_sub(3)],
        Kind::Path => vec![n - 2, n - 1],
        _ => vec![n - 1],
    };
    let probes: Vec<Probe> = targets.into_iter().map(|i| Probe::new(kind, i)).collect();
    probes
}

const KIND_SIZES: [usize; 2] = [100, 10_000];

/// Nanoseconds per pass over `probes`: the best of several timed rounds.
fn best_ns(policy: &Policy, probes: &[Probe], rounds: usize, iters: u32) -> f64 {
    (0..rounds)
        .map(|_| {
            let start = std::time::Instant::now();
            for _ in 0..iters {
                for probe in probes {
                    black_box(probe.decide(policy));
                }
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .fold(f64::INFINITY, f64::min)
}

fn kinds(c: &mut Criterion) {
    let mut group = c.benchmark_group("decision_kinds");
    let mut summary = Vec::new();
    for kind in Kind::ALL {
        let mut built = Vec::new();
        for n in KIND_SIZES {
            let policy = kind_bundle(kind, n);
            let probes = probes(kind, n);
            for probe in &probes {
                let decision = probe.decide(&policy);
                assert_eq!(
                    decision.effect,
                    mcp_guard_engine::Effect::Allow,
                    "{} {n}",
                    kind.name()
                );
            }
            group.bench_with_input(BenchmarkId::new(kind.name(), n), &n, |b, _| {
                b.iter(|| {
                    for probe in &probes {
                        black_box(probe.decide(&policy));
                    }
                })
            });
            built.push((policy, probes));
        }
        // Alternate the two sizes so drift on a shared machine hits both.
        let (mut small, mut large) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..5 {
            if let [(p0, q0), (p1, q1)] = built.as_slice() {
                small = small.min(best_ns(p0, q0, 5, 20_000));
                large = large.min(best_ns(p1, q1, 5, 20_000));
            }
        }
        summary.push((kind.name(), small, large));
    }
    group.finish();
    eprintln!("\ndecision cost per request set, best of 25 rounds (same run):");
    eprintln!(
        "{:<6} {:>12} {:>12} {:>8}",
        "rules", "100", "10,000", "ratio"
    );
    for (name, small, large) in summary {
        eprintln!(
            "{name:<6} {small:>10.1}ns {large:>10.1}ns {:>7.2}x",
            large / small
        );
    }
}

fn wasm(c: &mut Criterion) {
    let Ok(host) = Host::from_env() else {
        eprintln!("decision_wasm skipped: no filter module (cargo xtask build-wasm, or set MCP_GUARD_WASM)");
        return;
    };
    let mut group = c.benchmark_group("decision_wasm");
    group.sample_size(30);
    for n in SIZES {
        let plugin = host
            .plugin(json!({ "bundle": bundle(n) }).to_string())
            .unwrap();
        let tool = target_tool(n);
        let claims = claims_for(tool);
        let body = call_body(tool);
        let headers = [
            (":method", "POST"),
            (":path", "/mcp"),
            (":authority", "mcp.local"),
            ("content-type", "application/json"),
        ];
        let once = plugin.stream().unwrap();
        once.set_jwt_payload("jwt_payload", claims.clone());
        once.request_headers(&headers, false).unwrap();
        once.request_body(body.as_bytes(), true).unwrap();
        assert!(once.local_reply().is_none(), "the bench request is allowed");
        once.finish().unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let stream = plugin.stream().unwrap();
                stream.set_jwt_payload("jwt_payload", claims.clone());
                stream.request_headers(&headers, false).unwrap();
                black_box(stream.request_body(body.as_bytes(), true).unwrap());
                stream.finish().unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, native, kinds, wasm);
criterion_main!(benches);
