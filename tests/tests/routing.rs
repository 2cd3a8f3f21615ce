//! Routing by policy on a real Envoy: the bundle's `routes` choose the
//! cluster of each allowed request (an Envoy route with `cluster_header`
//! reads the filter's header), rewrite the model, and fall back to
//! another cluster when the chosen one fails. Several demo upstreams,
//! each naming itself in `x-demo-upstream`, show which one answered.

use std::time::{Duration, Instant};

use mcp_guard_e2e::http::{send, Reply};
use mcp_guard_e2e::{
    target, tokens, RouteCluster, RouteUpstream, Stack, StackOptions, Target, DEMO_BUNDLE,
};
use serde_json::{json, Value};

const ROUTE: &str = "x-mcp-guard-cluster";
const CARD: &str = "4111 1111 1111 1111";

fn bundle() -> String {
    let mut bundle: Value = serde_json::from_str(DEMO_BUNDLE).expect("demo bundle");
    bundle["name"] = json!("routes");
    bundle["routes"] = json!({
        "rules": [
            {"id": "restricted-private",
             "description": "restricted tenants use the private deployment",
             "when": {"claims": [{"claim": "tenant", "equals": "restricted"}]},
             "cluster": "llm-private",
             "models": {"demo-gpt": "demo-private-70b", "*": "demo-private-8b"},
             "fallback": "llm-default"},
            {"id": "cards-private", "when": {"prompt_pii": ["card"]},
             "cluster": "llm-private", "models": {"*": "demo-private-8b"}},
            {"id": "broken", "when": {"claims": [{"claim": "tenant", "equals": "broken"}]},
             "cluster": "llm-broken", "fallback": "llm-default"},
            {"id": "down", "when": {"claims": [{"claim": "tenant", "equals": "down"}]},
             "cluster": "llm-down", "fallback": "llm-default"},
            {"id": "general", "cluster": "llm-default"}
        ]
    });
    bundle.to_string()
}

fn stack(target: &Target, istio_mode: bool) -> Stack {
    Stack::start(StackOptions {
        bundles: vec![("routes".into(), bundle())],
        bundle_name: "routes".into(),
        target: target.clone(),
        istio_mode,
        route_clusters: vec![
            RouteCluster::demo("llm-private"),
            RouteCluster::demo("llm-default"),
            RouteCluster {
                name: "llm-broken".into(),
                upstream: RouteUpstream::Failing(500),
            },
            RouteCluster {
                name: "llm-down".into(),
                upstream: RouteUpstream::Closed,
            },
        ],
        ..StackOptions::default()
    })
    .expect("stack starts")
}

fn token(tenant: &str) -> String {
    tokens::mint(
        json!({"sub": format!("{tenant}-user"), "tenant": tenant, "roles": ["model-user"]}),
    )
    .expect("token")
}

fn chat(stack: &Stack, tenant: &str, model: &str, prompt: &str, headers: &[(&str, &str)]) -> Reply {
    let body = json!({"model": model, "messages": [{"role": "user", "content": prompt}]});
    send(
        "POST",
        &stack.url("/v1/chat/completions"),
        Some(&token(tenant)),
        headers,
        Some(&body.to_string()),
    )
    .expect("request")
}

fn answered_by(reply: &Reply) -> &str {
    reply.header("x-demo-upstream").unwrap_or("(none)")
}

/// The access-log record of the request with this subject (last one).
fn record_of(stack: &Stack, sub: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let found = stack
            .envoy
            .access_log_lines()
            .into_iter()
            .rev()
            .find(|l| l["mcp"]["sub"] == sub);
        match found {
            Some(line) => return line["mcp"].clone(),
            None if Instant::now() > deadline => panic!("no access-log record for {sub}"),
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn held_headers(stack: &Stack) {
    // General traffic goes to the default deployment, model untouched.
    let reply = chat(stack, "acme", "demo-gpt", "What is the weather?", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(answered_by(&reply), "llm-default");
    assert_eq!(reply.json()["model"], "demo-gpt");

    // A restricted tenant goes private; the upstream sees the new model.
    let reply = chat(stack, "restricted", "demo-gpt", "hello", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(answered_by(&reply), "llm-private");
    assert_eq!(reply.json()["model"], "demo-private-70b");
    let record = record_of(stack, "restricted-user");
    assert_eq!(record["route"]["rule"], "restricted-private");
    assert_eq!(record["route"]["cluster"], "llm-private");
    assert_eq!(record["route"]["model"], "demo-private-70b");
    assert_eq!(record["route"]["fell_back"], false);

    // A prompt with a card number goes private, whoever sends it.
    let reply = chat(
        stack,
        "acme",
        "demo-llm",
        &format!("Charge card {CARD}"),
        &[],
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(answered_by(&reply), "llm-private");
    assert_eq!(reply.json()["model"], "demo-private-8b");

    // The client cannot choose: its route header (any case, repeated) is
    // removed before the route is chosen.
    for (tenant, sent, expected) in [
        ("acme", "llm-private", "llm-default"),
        ("restricted", "llm-default", "llm-private"),
        ("acme", "llm-down", "llm-default"),
    ] {
        let reply = chat(
            stack,
            tenant,
            "demo-gpt",
            "hello",
            &[(ROUTE, sent), ("X-Mcp-Guard-Cluster", sent)],
        );
        assert_eq!(reply.status, 200, "{tenant} {reply:?}");
        assert_eq!(answered_by(&reply), expected, "{tenant} sent {sent}");
    }
    // Nor on a request the policy denies (no route, no client copy): the
    // denial is the filter's.
    let reply = send(
        "POST",
        &stack.url("/v1/chat/completions"),
        Some(&tokens::mallory().expect("token")),
        &[(ROUTE, "llm-private")],
        Some(r#"{"model":"demo-gpt","messages":[{"role":"user","content":"x"}]}"#),
    )
    .expect("request");
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.header("x-demo-upstream"), None);

    // Fallback: the chosen deployment answers 500 → the default answers.
    let reply = chat(stack, "broken", "demo-gpt", "hello", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(answered_by(&reply), "llm-default");
    assert_eq!(reply.json()["model"], "demo-gpt");
    let record = record_of(stack, "broken-user");
    assert_eq!(record["route"]["fell_back"], true, "{record}");
    assert_eq!(record["route"]["fallback"], "llm-default");

    // ... or cannot be reached at all (Envoy's own 503).
    let reply = chat(stack, "down", "demo-gpt", "hello", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(answered_by(&reply), "llm-default");

    // The fallback's answer is scrubbed like any other (the demo chat
    // reply carries the demo's PII).
    let reply = chat(stack, "broken", "demo-gpt", "Who can I call?", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(!reply.body.contains(CARD), "{}", reply.body);

    assert!(stack.stat("mcp_routes_total").unwrap_or(0) >= 9);
    assert!(stack.stat("mcp_route_fallbacks_total").unwrap_or(0) >= 3);
}

#[test]
fn routes_choose_the_cluster_rewrite_the_model_and_fall_back() {
    for target in target::available() {
        eprintln!("routing: {}", target.name());
        let stack = stack(&target, false);
        held_headers(&stack);
    }
}

/// Istio mode: headers leave before the body is read. The route chosen
/// on them must be the body's, or the request is refused (503) and its
/// body never leaves.
#[test]
fn released_headers_route_on_headers_and_refuse_a_body_that_disagrees() {
    let stack = stack(&Target::wasm(), true);
    let reply = chat(
        &stack,
        "restricted",
        "demo-gpt",
        "hello",
        &[(ROUTE, "llm-default")],
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(answered_by(&reply), "llm-private");
    assert_eq!(reply.json()["model"], "demo-private-70b");

    let reply = chat(&stack, "acme", "demo-gpt", "hello", &[]);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(answered_by(&reply), "llm-default");

    // The headers went to the default deployment; the body holds a card.
    let reply = chat(&stack, "acme", "demo-gpt", &format!("card {CARD}"), &[]);
    assert_eq!(reply.status, 503, "{reply:?}");
    assert!(reply.body.contains("route_unavailable"), "{}", reply.body);
}
