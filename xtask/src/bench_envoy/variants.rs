//! The variants: which filters Envoy runs and which answer it proxies.
//! The table is data: a new variant (another runtime, another bundle
//! size) is one more entry in [`all`].

use serde_json::{json, Value};

/// Which upstream answer a variant is loaded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Small JSON without PII (nginx `/small`).
    Small,
    /// ~4 KB JSON with 10 PII values (nginx `/pii`).
    Pii,
    /// OpenAI-style SSE answer (nginx `/sse`).
    Sse,
    /// A JSON-RPC `tools/call` result (nginx `/mcp`); the client sends a
    /// `tools/call` request.
    Mcp,
}

impl Answer {
    /// The upstream path.
    pub fn path(self) -> &'static str {
        match self {
            Answer::Small => "/small",
            Answer::Pii => "/pii",
            Answer::Sse => "/sse",
            Answer::Mcp => "/mcp",
        }
    }
}

/// How mcp-guard is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// proxy-wasm module in V8 (`MCP_GUARD_WASM`).
    Wasm,
    /// The same module as an Istio `WasmPlugin` runs it: Envoy's
    /// `allow_on_headers_stop_iteration` off, headers released, bodies held.
    WasmIstio,
    /// Envoy dynamic module (`MCP_GUARD_NATIVE`, a `libmcp_guard_native.so`).
    Native,
}

/// Where a variant's request limit is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitStore {
    /// `store: local`: shared data, compare-and-swap.
    Local,
    /// `store: global`: a gRPC call to `mcp-guard-ratelimit` (Redis).
    Global,
}

/// mcp-guard in a variant.
#[derive(Debug, Clone, Copy)]
pub struct Guard {
    /// Rules in the bundle (the matching ones are last).
    pub rules: usize,
    /// `pii.scrub_requests`, and the client sends a prompt with PII.
    pub scrub_requests: bool,
    /// How the filter is loaded.
    pub runtime: Runtime,
    /// A per-caller request limit that every request checks and none
    /// reaches (what a limit check costs).
    pub limit: Option<LimitStore>,
}

/// One benchmark configuration.
#[derive(Debug, Clone, Copy)]
pub struct Variant {
    /// Short name used in tables and `--only`.
    pub name: &'static str,
    /// What it shows.
    pub about: &'static str,
    /// `jwt_authn` verifying the bearer token.
    pub jwt: bool,
    /// Envoy's RBAC filter with 100 policies (allowed by the last).
    pub rbac: bool,
    /// Envoy's own MCP filter (`envoy.filters.http.mcp`) and RBAC with 100
    /// policies on its metadata (tool name and caller), the matching last.
    pub envoy_mcp: bool,
    /// The no-op proxy-wasm filter.
    pub noop_wasm: bool,
    /// mcp-guard, when present.
    pub guard: Option<Guard>,
    /// The answer it proxies.
    pub answer: Answer,
    /// The variant its ratios are taken against (itself for baselines).
    pub baseline: &'static str,
    /// Also measure time to the first byte of a slow stream.
    pub ttfb: bool,
}

const fn base(name: &'static str, about: &'static str) -> Variant {
    Variant {
        name,
        about,
        jwt: true,
        rbac: false,
        envoy_mcp: false,
        noop_wasm: false,
        guard: None,
        answer: Answer::Small,
        baseline: "A",
        ttfb: false,
    }
}

const fn guard(rules: usize, scrub_requests: bool, runtime: Runtime) -> Option<Guard> {
    Some(Guard {
        rules,
        scrub_requests,
        runtime,
        limit: None,
    })
}

const fn limited(runtime: Runtime, store: LimitStore) -> Option<Guard> {
    Some(Guard {
        rules: 100,
        scrub_requests: false,
        runtime,
        limit: Some(store),
    })
}

/// Every variant, in table order.
pub fn all() -> Vec<Variant> {
    use Runtime::{Native, Wasm};
    let a = base("A", "jwt_authn + router");
    vec![
        Variant {
            jwt: false,
            ..base("A0", "router only")
        },
        a,
        Variant {
            rbac: true,
            ..base("N", "A + native RBAC, 100 policies")
        },
        Variant {
            noop_wasm: true,
            ..base("W0", "A + no-op proxy-wasm filter")
        },
        Variant {
            guard: guard(100, false, Wasm),
            ..base("B-nopii", "A + mcp-guard, 100 rules, small JSON")
        },
        Variant {
            guard: guard(100, false, Wasm),
            answer: Answer::Pii,
            ..base("B", "A + mcp-guard, 100 rules, 4 KB JSON, 10 PII scrubbed")
        },
        Variant {
            guard: guard(10_000, false, Wasm),
            ..base("B10k", "B-nopii with 10,000 rules")
        },
        Variant {
            guard: guard(100, true, Wasm),
            ..base("R", "B-nopii + scrub_requests, prompt with PII")
        },
        Variant {
            answer: Answer::Sse,
            baseline: "A-SSE",
            ttfb: true,
            ..base("A-SSE", "A on the SSE answer")
        },
        Variant {
            guard: guard(100, false, Wasm),
            answer: Answer::Sse,
            baseline: "A-SSE",
            ttfb: true,
            ..base("C", "A-SSE + mcp-guard, SSE scrubbed")
        },
        // MCP authorization: a `tools/call` allowed by tool name and caller,
        // by Envoy's own MCP filter + RBAC and by mcp-guard.
        Variant {
            answer: Answer::Mcp,
            baseline: "A-MCP",
            ..base("A-MCP", "A on an MCP tools/call")
        },
        Variant {
            envoy_mcp: true,
            answer: Answer::Mcp,
            baseline: "A-MCP",
            ..base("E-MCP", "A-MCP + Envoy's MCP filter + RBAC, 100 policies")
        },
        Variant {
            guard: guard(100, false, Wasm),
            answer: Answer::Mcp,
            baseline: "A-MCP",
            ..base("G-MCP", "A-MCP + mcp-guard, 100 rules")
        },
        // As a plain Istio WasmPlugin (no allow_on_headers_stop_iteration).
        Variant {
            guard: guard(100, false, Runtime::WasmIstio),
            answer: Answer::Mcp,
            baseline: "A-MCP",
            ..base("G-MCP-istio", "G-MCP, headers released (Istio WasmPlugin)")
        },
        Variant {
            guard: guard(100, false, Runtime::WasmIstio),
            answer: Answer::Pii,
            ..base("B-istio", "B, headers released (Istio WasmPlugin)")
        },
        // What a rate-limit check adds, against the same filter without.
        Variant {
            guard: limited(Wasm, LimitStore::Local),
            baseline: "B-nopii",
            ..base(
                "L-local",
                "B-nopii + a local request limit per caller (never reached)",
            )
        },
        Variant {
            guard: limited(Wasm, LimitStore::Global),
            baseline: "B-nopii",
            ..base(
                "L-global",
                "B-nopii + a global request limit per caller (mcp-guard-ratelimit + Redis)",
            )
        },
        Variant {
            guard: limited(Native, LimitStore::Local),
            baseline: "B-nopii-native",
            ..base("L-local-native", "L-local, dynamic module")
        },
        // The same filter as an Envoy dynamic module (MCP_GUARD_NATIVE).
        Variant {
            guard: guard(100, false, Native),
            ..base("B-nopii-native", "B-nopii, dynamic module")
        },
        Variant {
            guard: guard(100, false, Native),
            answer: Answer::Pii,
            ..base("B-native", "B, dynamic module")
        },
        Variant {
            guard: guard(10_000, false, Native),
            ..base("B10k-native", "B10k, dynamic module")
        },
        Variant {
            guard: guard(100, true, Native),
            ..base("R-native", "R, dynamic module")
        },
        Variant {
            guard: guard(100, false, Native),
            answer: Answer::Sse,
            baseline: "A-SSE",
            ttfb: true,
            ..base("C-native", "C, dynamic module")
        },
        Variant {
            guard: guard(100, false, Native),
            answer: Answer::Mcp,
            baseline: "A-MCP",
            ..base("G-MCP-native", "G-MCP, dynamic module")
        },
    ]
}

/// Paths every bundle allows (through its last rules).
pub const ALLOWED_PATHS: [&str; 3] = ["/small", "/pii", "/sse"];
/// The MCP tool the bench caller may call; any other tool is refused.
pub const MCP_TOOL: &str = "get_weather";
/// A tool no bench policy allows (checked to be refused).
pub const MCP_FORBIDDEN_TOOL: &str = "delete_everything";
/// Prefix of the streaming upstream's paths, allowed too.
pub const STREAM_PREFIX: &str = "/stream/";

/// A bundle shaped like `policies/demo.json` with `rules` rules: filler
/// deny and allow rules no bench request matches (other tenants, paths,
/// roles and models), then the rules that allow the bench requests.
/// The bench bundle, with a request limit per caller (`sub`) high enough never
/// to refuse: every request reads and counts it.
pub fn bundle_with(rules: usize, scrub_requests: bool, limit: Option<LimitStore>) -> Value {
    let mut b = bundle_rules(rules, scrub_requests);
    if let Some(store) = limit {
        let store = match store {
            LimitStore::Local => "local",
            LimitStore::Global => "global",
        };
        b["limits"] = json!({
            "rate": [{"id": "bench-rps", "requests": 1_000_000_000u64, "per": "second",
                      "by": {"claims": ["sub"]}, "store": store}]
        });
        if store == "global" {
            b["limits"]["global"] = json!({"cluster": RATELIMIT_CLUSTER,
                "domain": "mcp-guard-bench", "timeout_ms": 1000, "on_unavailable": "deny"});
        }
    }
    b
}

/// The Envoy cluster of the global rate limit service.
pub const RATELIMIT_CLUSTER: &str = "mcp_guard_ratelimit";

fn bundle_rules(rules: usize, scrub_requests: bool) -> Value {
    let matching = ALLOWED_PATHS.len() + 2;
    let mut list = Vec::with_capacity(rules);
    for i in 0..rules.saturating_sub(matching) {
        list.push(if i % 10 == 0 {
            json!({"id": format!("deny-tenant-{i}"), "effect": "deny",
                   "when": {"claims": [{"claim": "tenant", "equals": format!("suspended-{i}")}]}})
        } else if i % 3 == 0 {
            json!({"id": format!("mcp-tools-{i}"), "effect": "allow", "when": {
                "methods": ["POST"], "path": {"exact": "/mcp"},
                "mcp": {"tools": [format!("tool_{i}_*")]},
                "claims": [{"claim": "roles", "contains_any": [format!("team-{i}")]}]}})
        } else {
            json!({"id": format!("chat-{i}"), "effect": "allow", "when": {
                "methods": ["POST"], "path": {"exact": format!("/svc-{i}/v1/chat/completions")},
                "models": [format!("model-{i}-*")],
                "claims": [{"claim": "roles", "contains_any": [format!("team-{i}")]}]}})
        });
    }
    for path in ALLOWED_PATHS {
        list.push(
            json!({"id": format!("bench{}", path.replace('/', "-")), "effect": "allow",
            "when": {"methods": ["POST"], "path": {"exact": path}, "models": ["bench-*"],
                     "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}),
        );
    }
    list.push(json!({"id": "bench-mcp", "effect": "allow",
        "when": {"methods": ["POST"], "path": {"exact": "/mcp"},
                 "mcp": {"methods": ["tools/call"], "tools": [MCP_TOOL]},
                 "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}));
    list.push(json!({"id": "bench-stream", "effect": "allow",
        "when": {"methods": ["POST"], "path": {"prefix": STREAM_PREFIX},
                 "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}));
    json!({
        "name": "bench", "version": 1,
        "description": format!("Benchmark bundle: {rules} rules, the matching ones last."),
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "inject": [{"claim": "sub", "header": "x-mcp-subject"}],
        "rules": list,
        "pii": {"scrub_requests": scrub_requests}
    })
}

/// The plugin configuration: the bundle inline, no control service;
/// headers held while bodies are read, as the filter's Envoy sets
/// `allow_on_headers_stop_iteration` (the native module ignores it).
pub fn plugin_config(g: &Guard) -> String {
    let held = g.runtime != Runtime::WasmIstio;
    json!({"bundle": bundle_with(g.rules, g.scrub_requests, g.limit), "headers_stop_iteration": held})
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_baselines_exist() {
        let all = all();
        for v in &all {
            assert_eq!(all.iter().filter(|w| w.name == v.name).count(), 1);
            assert!(all.iter().any(|w| w.name == v.baseline), "{}", v.name);
        }
    }

    #[test]
    fn bundles_have_the_asked_size_are_valid_and_match_last() {
        for rules in [100, 10_000] {
            let b = bundle_with(rules, false, None);
            let list = b["rules"].as_array().unwrap();
            assert_eq!(list.len(), rules);
            assert_eq!(list.last().unwrap()["id"], "bench-stream");
            let text = serde_json::to_vec(&b).unwrap();
            let parsed = mcp_guard_engine::Bundle::parse(&text).unwrap();
            parsed.validate().unwrap();
        }
        for store in [LimitStore::Local, LimitStore::Global] {
            let text = serde_json::to_vec(&bundle_with(100, false, Some(store))).unwrap();
            let parsed = mcp_guard_engine::Bundle::parse(&text).unwrap();
            assert_eq!(parsed.limits.rate.len(), 1);
        }
    }
}
