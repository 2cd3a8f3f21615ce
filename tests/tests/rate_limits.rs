//! Rate limits and token budgets through a real Envoy with two worker
//! threads (both targets when built): a burst of concurrent requests
//! admits exactly the limit (local counters in shared data are exact
//! across workers), the 429 carries `Retry-After` and the `RateLimit-*`
//! headers and a JSON body naming the limit, and a token budget is spent
//! by a streamed answer's usage chunk and then refused up front.

use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_guard_e2e::http::send;
use mcp_guard_e2e::prometheus;
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target};
use serde_json::{json, Value};

const LIMIT: usize = 12;

fn bundle() -> String {
    json!({
        "name": "rl", "version": 1,
        "limits": {"rate": [
            {"id": "tenant-rph", "requests": LIMIT, "per": "hour", "by": {"claims": ["tenant"]},
             "when": {"path": {"exact": "/healthz"}}},
            {"id": "sub-tokens", "tokens": 1, "per": "hour", "by": {"claims": ["sub"], "model": true},
             "when": {"path": {"exact": "/v1/chat/completions"}}}
        ]},
        "rules": [{"id": "all", "effect": "allow"}]
    })
    .to_string()
}

fn stack(target: &Target) -> Stack {
    Stack::start(StackOptions {
        bundles: vec![("rl".into(), bundle())],
        bundle_name: "rl".into(),
        concurrency: 2,
        target: target.clone(),
        ..StackOptions::default()
    })
    .expect("stack starts")
}

#[test]
fn limits_through_envoy() {
    for target in target::available() {
        eprintln!("limits_through_envoy: {}", target.name());
        let stack = stack(&target);
        burst_admits_exactly_the_limit(&stack);
        token_budget_spent_by_a_stream_then_refused(&stack);
    }
}

fn burst_admits_exactly_the_limit(stack: &Stack) {
    let token = tokens::mint(json!({"sub": "burst", "tenant": "t-burst"})).unwrap();
    let admitted = AtomicUsize::new(0);
    let refused = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..5 {
                    let reply = send("GET", &stack.url("/healthz"), Some(&token), &[], None)
                        .expect("request completes");
                    match reply.status {
                        200 => {
                            admitted.fetch_add(1, Ordering::Relaxed);
                        }
                        429 => refused.lock().unwrap().push(reply),
                        other => panic!("unexpected {other}: {}", reply.body),
                    }
                }
            });
        }
    });
    assert_eq!(
        admitted.into_inner(),
        LIMIT,
        "exactly the limit across workers"
    );
    let refused = refused.into_inner().unwrap();
    assert_eq!(refused.len(), 40 - LIMIT);
    let r = &refused[0];
    let reset: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&reset));
    assert_eq!(r.header("ratelimit-reset"), r.header("retry-after"));
    assert_eq!(
        r.header("ratelimit-limit"),
        Some(LIMIT.to_string().as_str())
    );
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(
        r.header("ratelimit-policy"),
        Some(format!("{LIMIT};w=3600").as_str())
    );
    let body: Value = r.json();
    assert_eq!(body["limit"], "tenant-rph");
    assert_eq!(body["reason"], "rate_limited");
    // Another tenant is counted apart.
    let other = tokens::mint(json!({"sub": "burst", "tenant": "t-other"})).unwrap();
    let reply = send("GET", &stack.url("/healthz"), Some(&other), &[], None).unwrap();
    assert_eq!(reply.status, 200);
}

fn token_budget_spent_by_a_stream_then_refused(stack: &Stack) {
    let token = tokens::mint(json!({"sub": "streamer", "tenant": "t"})).unwrap();
    let chat = r#"{"model":"demo-llm","stream":true,"stream_options":{"include_usage":true},
        "messages":[{"role":"user","content":"say something"}]}"#;
    let headers = [("content-type", "application/json")];
    let first = send(
        "POST",
        &stack.url("/v1/chat/completions"),
        Some(&token),
        &headers,
        Some(chat),
    )
    .expect("request completes");
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(
        first.body.contains("\"usage\""),
        "usage chunk: {}",
        first.body
    );
    let total = first
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v["usage"]["total_tokens"].as_u64())
        .expect("usage total");
    // The stream's charge is made when Envoy logs the stream; the next
    // request may overtake it for a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let second = loop {
        let reply = send(
            "POST",
            &stack.url("/v1/chat/completions"),
            Some(&token),
            &headers,
            Some(chat),
        )
        .expect("request completes");
        if reply.status == 429 || std::time::Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.json()["limit"], "sub-tokens");
    // Another model is another budget.
    let other = chat.replace("demo-llm", "other-llm");
    let third = send(
        "POST",
        &stack.url("/v1/chat/completions"),
        Some(&token),
        &headers,
        Some(&other),
    )
    .expect("request completes");
    assert_ne!(third.status, 429);
    let samples = prometheus::scrape(&stack.envoy.admin).expect("admin answers");
    let charged: f64 = samples
        .0
        .iter()
        .filter(|((n, _), _)| n.contains("mcp_tokens_charged_total"))
        .map(|(_, v)| *v)
        .sum();
    assert!(charged >= total as f64, "charged {charged}, usage {total}");
    let over: f64 = samples
        .0
        .iter()
        .filter(|((n, _), _)| n.contains("mcp_ratelimit_over_total"))
        .map(|(_, v)| *v)
        .sum();
    assert!(over >= (40 - LIMIT + 1) as f64, "over {over}");
}

fn global_bundle() -> String {
    json!({
        "name": "rlg", "version": 1,
        "limits": {
            "rate": [
                {"id": "g-tenant", "requests": 7, "per": "hour", "by": {"claims": ["tenant"]},
                 "when": {"path": {"exact": "/healthz"}}, "store": "global"},
                {"id": "g-tokens", "tokens": 2, "per": "hour", "by": {"claims": ["sub"]},
                 "when": {"path": {"exact": "/v1/chat/completions"}}, "store": "global"}
            ],
            "global": {"cluster": "mcp_guard_ratelimit", "domain": "mcp-guard-e2e", "timeout_ms": 1000}
        },
        "rules": [{"id": "all", "effect": "allow"}]
    })
    .to_string()
}

/// Two Envoys (replicas) sharing one Redis-backed rate-limit service:
/// a global limit admits exactly its count across both, a token budget
/// charged through one replica refuses on the other, and a service that
/// is gone fails closed (503 `ratelimit_unavailable`).
#[test]
fn global_limits_across_two_envoys() {
    use mcp_guard_e2e::ratelimit::RateLimitProcess;
    use mcp_guard_e2e::redis::Redis;
    let Some(target) = target::available().into_iter().next() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("mcp-guard-rl-global-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let redis = Redis::start().expect("redis starts");
    let mut service = RateLimitProcess::start(&redis.url(), &[], dir.join("ratelimit.log"))
        .expect("rate-limit service starts");
    let replica = || {
        Stack::start(StackOptions {
            bundles: vec![("rlg".into(), global_bundle())],
            bundle_name: "rlg".into(),
            concurrency: 2,
            target: target.clone(),
            ratelimit_port: Some(service.grpc_port()),
            ..StackOptions::default()
        })
        .expect("stack starts")
    };
    let (a, b) = (replica(), replica());
    let tenant = format!("t-{}", std::process::id());
    let token = tokens::mint(json!({"sub": format!("s-{tenant}"), "tenant": tenant})).unwrap();
    let statuses: Vec<u16> = (0..12)
        .map(|i| {
            let stack = if i % 2 == 0 { &a } else { &b };
            send("GET", &stack.url("/healthz"), Some(&token), &[], None)
                .expect("request completes")
                .status
        })
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        7,
        "{statuses:?}"
    );
    assert!(statuses[7..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = send("GET", &b.url("/healthz"), Some(&token), &[], None).unwrap();
    assert_eq!(refused.status, 429);
    assert_eq!(refused.json()["limit"], "g-tenant");
    assert!(refused.header("retry-after").is_some());

    // Tokens: the stream through `a` is charged (usage - 1 after the
    // check's 1); `b` then refuses up front.
    let chat = r#"{"model":"demo-llm","stream":true,"stream_options":{"include_usage":true},
        "messages":[{"role":"user","content":"hello there"}]}"#;
    let headers = [("content-type", "application/json")];
    let first = send(
        "POST",
        &a.url("/v1/chat/completions"),
        Some(&token),
        &headers,
        Some(chat),
    )
    .expect("request completes");
    assert_eq!(first.status, 200, "{}", first.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let second = loop {
        let reply = send(
            "POST",
            &b.url("/v1/chat/completions"),
            Some(&token),
            &headers,
            Some(chat),
        )
        .expect("request completes");
        if reply.status == 429 || std::time::Instant::now() > deadline {
            break reply;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.json()["limit"], "g-tokens");

    // The service is gone: fail closed.
    service.kill9();
    let other = tokens::mint(json!({"sub": "x", "tenant": "fresh"})).unwrap();
    let down = send("GET", &a.url("/healthz"), Some(&other), &[], None).unwrap();
    assert_eq!(down.status, 503, "{}", down.body);
    assert_eq!(down.json()["reason"], "ratelimit_unavailable");
}
