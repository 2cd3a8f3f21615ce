//! Rate limits and token budgets in the exchange flow, through the
//! in-memory host: exact counts across hosts sharing one store (threads
//! playing worker VMs), 429 answers, windows, dry runs, callers without
//! the key claim, token budgets charged from streamed answers cut at
//! every boundary, and the global service's answers (good, over, garbage,
//! none).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::rate_limit::rls;
use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::{deliver_response_body, MemoryHost, SharedStore};
use mcp_guard_flow::token_exchange::CalloutAnswer;
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde_json::{json, Value};

const NOW_MS: u64 = 1_800_000_000_000;

fn active(limits: Value) -> Arc<ActivePolicy> {
    active_with(limits, json!({"enabled": false}), false)
}

fn active_with(limits: Value, pii: Value, dry_run: bool) -> Arc<ActivePolicy> {
    let bundle = json!({
        "name": "t", "version": 1, "dry_run": dry_run,
        "limits": limits,
        "pii": pii,
        "rules": [
            {"id": "deny-x", "effect": "deny", "when": {"path": {"prefix": "/denied"}}},
            {"id": "all", "effect": "allow"}
        ]
    });
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn host(store: &SharedStore, claims: Value, path: &str, now_ms: u64) -> MemoryHost {
    let mut host = MemoryHost::at(now_ms);
    host.shared = store.clone();
    host.set_claims("jwt_payload", &claims);
    host.request.headers = vec![
        (":method".into(), "GET".into()),
        (":path".into(), path.into()),
        (":authority".into(), "api.local".into()),
        ("x-request-id".into(), "r1".into()),
    ];
    host
}

/// One header-only request; its reply status (200 when forwarded).
fn get(active: &Arc<ActivePolicy>, host: &mut MemoryHost) -> (u32, Exchange) {
    let mut ex = Exchange::new(Some(Arc::clone(active)));
    let next = ex.on_request_headers(host, true);
    let status = match host.replies.last() {
        Some(r) => r.status,
        None => {
            assert_eq!(next, Next::Continue);
            200
        }
    };
    (status, ex)
}

fn header<'a>(host: &'a MemoryHost, name: &str) -> &'a str {
    host.replies
        .last()
        .unwrap()
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .unwrap()
        .1
        .as_str()
}

#[test]
fn request_limit_admits_exactly_n_then_429_with_headers() {
    let a = active(json!({"rate": [
        {"id": "tenant-rps", "requests": 3, "per": "minute", "by": {"claims": ["tenant"]}}
    ]}));
    let store = SharedStore::default();
    let t1 = json!({"sub": "u1", "tenant": "acme"});
    let at = NOW_MS + 15_000; // 15 s into a minute-aligned window? (NOW is aligned to 20 s)
    for _ in 0..3 {
        let mut h = host(&store, t1.clone(), "/x", at);
        assert_eq!(get(&a, &mut h).0, 200);
    }
    // Denied requests do not count (and are denied as before).
    let mut h = host(&store, t1.clone(), "/denied", at);
    assert_eq!(get(&a, &mut h).0, 403);
    let mut h = host(&store, t1.clone(), "/x", at);
    let (status, mut ex) = get(&a, &mut h);
    assert_eq!(status, 429);
    let reset = 60 - (at / 1000) % 60;
    assert_eq!(header(&h, "retry-after"), reset.to_string());
    assert_eq!(header(&h, "ratelimit-limit"), "3");
    assert_eq!(header(&h, "ratelimit-remaining"), "0");
    assert_eq!(header(&h, "ratelimit-reset"), reset.to_string());
    assert_eq!(header(&h, "ratelimit-policy"), "3;w=60");
    let body: Value = serde_json::from_slice(&h.replies[0].body).unwrap();
    assert_eq!(body["limit"], "tenant-rps");
    assert_eq!(body["reason"], "rate_limited");
    assert_eq!(h.replies[0].details, "mcp_rate_limited");
    assert_eq!(h.rate_limit_counts.0, 1);
    ex.on_log(&mut h, None);
    let record = h.record().unwrap();
    assert_eq!(record["limit"]["id"], "tenant-rps");
    assert_eq!(record["limit"]["outcome"], "over");
    assert_eq!(record["reason"], "rate_limited");
    // Another tenant has its own budget.
    let mut h = host(&store, json!({"tenant": "other"}), "/x", at);
    assert_eq!(get(&a, &mut h).0, 200);
    // The next window starts afresh.
    let mut h = host(&store, t1, "/x", at + reset * 1000);
    assert_eq!(get(&a, &mut h).0, 200);
}

#[test]
fn every_matching_limit_is_checked_and_a_spent_one_counts_nothing() {
    let a = active(json!({"rate": [
        {"id": "wide", "requests": 10, "per": "hour", "by": {"claims": ["sub"]}},
        {"id": "narrow", "requests": 1, "per": "hour", "by": {"claims": ["sub"]},
         "when": {"path": {"prefix": "/n"}}}
    ]}));
    let store = SharedStore::default();
    let c = json!({"sub": "u"});
    let mut h = host(&store, c.clone(), "/n", NOW_MS);
    assert_eq!(get(&a, &mut h).0, 200);
    let mut h = host(&store, c.clone(), "/n", NOW_MS);
    assert_eq!(get(&a, &mut h).0, 429);
    assert_eq!(header(&h, "ratelimit-limit"), "1");
    // "wide" counted 1 (the refused request counted nothing): 9 left.
    for _ in 0..9 {
        let mut h = host(&store, c.clone(), "/w", NOW_MS);
        assert_eq!(get(&a, &mut h).0, 200);
    }
    let mut h = host(&store, c, "/w", NOW_MS);
    assert_eq!(get(&a, &mut h).0, 429);
}

#[test]
fn callers_without_the_claim_share_one_budget() {
    let a = active(json!({"rate": [
        {"id": "per-tenant", "requests": 2, "per": "day", "by": {"claims": ["tenant"]}}
    ]}));
    let store = SharedStore::default();
    let mut h = host(&store, json!({"sub": "a"}), "/x", NOW_MS);
    assert_eq!(get(&a, &mut h).0, 200);
    let mut h = host(&store, json!({"sub": "b", "tenant": null}), "/x", NOW_MS);
    assert_eq!(get(&a, &mut h).0, 200);
    let mut h = host(&store, json!({"sub": "c"}), "/x", NOW_MS);
    assert_eq!(get(&a, &mut h).0, 429);
    // A tenant literally named like the marker is someone else.
    let mut h = host(&store, json!({"tenant": "(absent)"}), "/x", NOW_MS);
    assert_eq!(get(&a, &mut h).0, 200);
}

#[test]
fn dry_run_limits_and_bundles_record_but_never_refuse() {
    for (limit_dry, bundle_dry) in [(true, false), (false, true)] {
        let a = active_with(
            json!({"rate": [{"id": "l", "requests": 1, "per": "second", "dry_run": limit_dry}]}),
            json!({"enabled": false}),
            bundle_dry,
        );
        let store = SharedStore::default();
        let mut h = host(&store, json!({"sub": "u"}), "/x", NOW_MS);
        assert_eq!(get(&a, &mut h).0, 200);
        let mut h = host(&store, json!({"sub": "u"}), "/x", NOW_MS);
        let (status, mut ex) = get(&a, &mut h);
        assert_eq!(status, 200);
        assert_eq!(h.rate_limit_counts.0, 1);
        ex.on_log(&mut h, None);
        assert_eq!(h.record().unwrap()["limit"]["outcome"], "over");
    }
}

#[test]
fn threads_sharing_one_store_admit_exactly_the_limit() {
    let a = active(json!({"rate": [
        {"id": "burst", "requests": 137, "per": "hour", "by": {"claims": ["tenant"]}}
    ]}));
    let store = SharedStore::default();
    let admitted = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                for _ in 0..40 {
                    let mut h = host(&store, json!({"tenant": "t"}), "/x", NOW_MS);
                    if get(&a, &mut h).0 == 200 {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else {
                        assert_eq!(h.replies[0].status, 429, "{:?}", h.logs);
                    }
                }
            });
        }
    });
    assert_eq!(admitted.into_inner(), 137);
}

const SSE: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"mail bob@example.com\"}}],\"usage\":null}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":600,\"completion_tokens\":400,\"total_tokens\":1000}}\r\n\r\n\
data: [DONE]\n\n";

/// A chat completion with a streamed answer cut at `cuts`; the reply
/// status and what reached the client.
fn chat(active: &Arc<ActivePolicy>, host: &mut MemoryHost, cuts: &[usize]) -> (u32, Vec<u8>) {
    host.request.headers[0].1 = "POST".into();
    host.request.headers[1].1 = "/v1/chat/completions".into();
    host.request
        .headers
        .push(("content-type".into(), "application/json".into()));
    host.request.body = br#"{"model":"gpt-x","stream":true}"#.to_vec();
    let mut ex = Exchange::new(Some(Arc::clone(active)));
    if ex.on_request_headers(host, false) == Next::Pause && host.replies.is_empty() {
        let size = host.request.body.len();
        ex.on_request_body(host, size, true);
    }
    if let Some(r) = host.replies.last() {
        let status = r.status;
        ex.on_log(host, None);
        return (status, Vec::new());
    }
    host.response.headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "text/event-stream".into()),
    ];
    let paused = ex.on_response_headers(host, false) == Next::Pause;
    let out = deliver_response_body(&mut ex, host, SSE, cuts, false, paused);
    ex.on_log(host, None);
    (200, out)
}

#[test]
fn token_budget_is_charged_from_a_stream_cut_anywhere_then_refused_up_front() {
    for pii in [
        json!({"enabled": false}),
        json!({"enabled": true, "types": ["email"]}),
    ] {
        for cut in (1..SSE.len()).step_by(7).chain([SSE.len() - 1]) {
            let a = active_with(
                json!({"rate": [{"id": "sub-tokens", "tokens": 1500, "per": "hour",
                    "by": {"claims": ["sub"], "model": true},
                    "when": {"path": {"exact": "/v1/chat/completions"}}}]}),
                pii.clone(),
                false,
            );
            let store = SharedStore::default();
            let mut h = host(&store, json!({"sub": "u"}), "/", NOW_MS);
            let (status, out) = chat(&a, &mut h, &[cut, cut + 1, cut + 3]);
            assert_eq!(status, 200);
            if pii["enabled"] == true {
                assert!(!out.windows(7).any(|w| w == b"bob@exa"), "scrubbed");
            } else {
                assert_eq!(out, SSE);
            }
            assert_eq!(h.rate_limit_counts.2, 1000, "cut {cut}");
            let rec = h.record().unwrap();
            assert_eq!(rec["limit"]["charged_tokens"], 1000);
            assert_eq!(rec["limit"]["remaining"], 500);
            // 1000 of 1500 spent: one more is admitted, and charged.
            let mut h = host(&store, json!({"sub": "u"}), "/", NOW_MS);
            assert_eq!(chat(&a, &mut h, &[cut]).0, 200);
            // 2000 spent: refused before the upstream sees it.
            let mut h = host(&store, json!({"sub": "u"}), "/", NOW_MS);
            assert_eq!(chat(&a, &mut h, &[]).0, 429);
            assert_eq!(header(&h, "ratelimit-limit"), "1500");
            // Another model is another budget.
            let mut h = host(&store, json!({"sub": "u"}), "/", NOW_MS);
            h.request.body = Vec::new();
            let mut ex = Exchange::new(Some(Arc::clone(&a)));
            h.request.headers[0].1 = "POST".into();
            h.request.headers[1].1 = "/v1/chat/completions".into();
            ex.on_request_headers(&mut h, false);
            h.request.body = br#"{"model":"other"}"#.to_vec();
            ex.on_request_body(&mut h, 17, true);
            assert!(h.replies.is_empty());
        }
    }
}

#[test]
fn answers_without_usage_are_charged_an_estimate() {
    let a = active(json!({"rate": [{"id": "t", "tokens": 100000, "per": "day",
        "by": {"claims": ["sub"]}}]}));
    let store = SharedStore::default();
    let mut h = host(&store, json!({"sub": "u"}), "/", NOW_MS);
    let mut ex = Exchange::new(Some(Arc::clone(&a)));
    assert_eq!(ex.on_request_headers(&mut h, true), Next::Continue);
    h.response.headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "application/json".into()),
    ];
    ex.on_response_headers(&mut h, false);
    let body = vec![b'x'; 3000];
    deliver_response_body(&mut ex, &mut h, &body, &[1000], false, false);
    ex.on_log(&mut h, None);
    assert_eq!(h.rate_limit_counts.2, 1000);
    assert!(h.logs.iter().any(|l| l.contains("estimate")));
}

fn grpc_frame(msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}

fn global_limits(on_unavailable: &str) -> Value {
    json!({
        "rate": [{"id": "g", "requests": 5, "per": "minute", "by": {"claims": ["sub"]}, "store": "global"}],
        "global": {"cluster": "rls", "domain": "mcp-guard", "timeout_ms": 150, "on_unavailable": on_unavailable}
    })
}

#[test]
fn global_limits_ask_the_service_and_follow_its_answer() {
    let answers: Vec<(CalloutAnswer, u32)> = vec![
        // OK, 4 remaining.
        (
            CalloutAnswer {
                headers: Vec::new(),
                status: Some("200".into()),
                body: grpc_frame(&[0x08, 1, 0x12, 4, 0x08, 1, 0x18, 4]),
                grpc_status: Some("0".into()),
            },
            200,
        ),
        // OVER_LIMIT, reset in 7 s.
        (
            CalloutAnswer {
                headers: Vec::new(),
                status: Some("200".into()),
                body: grpc_frame(&[0x08, 2, 0x12, 6, 0x08, 2, 0x22, 2, 0x08, 7]),
                grpc_status: Some("0".into()),
            },
            429,
        ),
        // Garbage, a gRPC error, a failed call, a 503.
        (
            CalloutAnswer {
                headers: Vec::new(),
                status: Some("200".into()),
                body: b"<html>".to_vec(),
                grpc_status: Some("0".into()),
            },
            503,
        ),
        (
            CalloutAnswer {
                headers: Vec::new(),
                status: Some("200".into()),
                body: Vec::new(),
                grpc_status: Some("14".into()),
            },
            503,
        ),
        (CalloutAnswer::default(), 503),
        (
            CalloutAnswer {
                headers: Vec::new(),
                status: Some("503".into()),
                body: Vec::new(),
                grpc_status: None,
            },
            503,
        ),
    ];
    for (answer, expected) in answers {
        let a = active(global_limits("deny"));
        let store = SharedStore::default();
        let mut h = host(&store, json!({"sub": "u"}), "/x", NOW_MS);
        let mut ex = Exchange::new(Some(Arc::clone(&a)));
        assert_eq!(ex.on_request_headers(&mut h, true), Next::Pause);
        let call = h.callouts.last().unwrap().clone();
        assert_eq!(call.cluster, "rls");
        assert_eq!(call.header(":path"), Some(rls::PATH));
        assert_eq!(call.header("content-type"), Some("application/grpc"));
        assert_eq!(call.header("te"), Some("trailers"));
        assert_eq!(call.timeout_ms, 150);
        // domain, one descriptor with ("limit","g"), ("claim.sub","u"), override 5/min, hits 1
        let expect = rls::encode_request(
            "mcp-guard",
            &[rls::Descriptor {
                entries: vec![
                    ("limit".into(), "g".into()),
                    ("claim.sub".into(), "u".into()),
                ],
                limit: Some((5, mcp_guard_engine::rate_limit::Per::Minute)),
            }],
            1,
        );
        assert_eq!(call.body, expect);
        ex.on_callout_answer(&mut h, call.id, &answer);
        match expected {
            200 => {
                assert!(h.replies.is_empty());
                assert_eq!(h.resumed, 1);
                assert!(ex.forwarded());
            }
            429 => {
                assert_eq!(h.replies[0].status, 429);
                assert_eq!(header(&h, "retry-after"), "7");
                assert_eq!(h.resumed, 0);
            }
            _ => {
                assert_eq!(h.replies[0].status, 503);
                let body: Value = serde_json::from_slice(&h.replies[0].body).unwrap();
                assert_eq!(body["reason"], "ratelimit_unavailable");
                assert_eq!(h.rate_limit_counts.1, 1);
                assert_eq!(h.resumed, 0);
            }
        }
        // A second (late, duplicate) answer changes nothing.
        let replies = h.replies.len();
        ex.on_callout_answer(&mut h, call.id, &answer);
        assert_eq!(h.replies.len(), replies);
    }
}

#[test]
fn an_unavailable_service_may_be_allowed_and_a_refused_call_fails_closed() {
    let a = active(global_limits("allow"));
    let mut h = host(&SharedStore::default(), json!({"sub": "u"}), "/x", NOW_MS);
    let mut ex = Exchange::new(Some(Arc::clone(&a)));
    assert_eq!(ex.on_request_headers(&mut h, true), Next::Pause);
    let id = h.callouts[0].id;
    ex.on_callout_answer(&mut h, id, &CalloutAnswer::default());
    assert!(h.replies.is_empty() && ex.forwarded() && h.resumed == 1);
    assert_eq!(h.rate_limit_counts.1, 1);
    ex.on_log(&mut h, None);
    assert_eq!(h.record().unwrap()["limit"]["outcome"], "unavailable");

    let a = active(global_limits("deny"));
    let mut h = host(&SharedStore::default(), json!({"sub": "u"}), "/x", NOW_MS);
    h.refuse_callouts = true;
    let mut ex = Exchange::new(Some(Arc::clone(&a)));
    ex.on_request_headers(&mut h, true);
    assert_eq!(h.replies[0].status, 503);
    // The stream ends while the service is asked: nothing is released.
    let mut h = host(&SharedStore::default(), json!({"sub": "u"}), "/x", NOW_MS);
    let mut ex = Exchange::new(Some(Arc::clone(&a)));
    ex.on_request_headers(&mut h, true);
    ex.on_stream_done();
    let ok = CalloutAnswer {
        headers: Vec::new(),
        status: Some("200".into()),
        body: grpc_frame(&[0x08, 1, 0x12, 2, 0x08, 1]),
        grpc_status: Some("0".into()),
    };
    ex.on_callout_answer(&mut h, 1, &ok);
    assert_eq!(h.resumed, 0);
    assert!(!ex.forwarded());
}

#[test]
fn global_token_budgets_charge_usage_minus_one_detached() {
    let a = active(json!({
        "rate": [{"id": "gt", "tokens": 100000, "per": "hour", "by": {"claims": ["sub"]}, "store": "global"}],
        "global": {"cluster": "rls", "domain": "d"}
    }));
    let mut h = host(&SharedStore::default(), json!({"sub": "u"}), "/", NOW_MS);
    h.request.headers[0].1 = "POST".into();
    h.request.headers[1].1 = "/v1/chat/completions".into();
    h.request.body = br#"{"model":"m"}"#.to_vec();
    let mut ex = Exchange::new(Some(Arc::clone(&a)));
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
    ex.on_request_body(&mut h, 13, true);
    let ok = CalloutAnswer {
        headers: Vec::new(),
        status: Some("200".into()),
        body: grpc_frame(&[0x08, 1, 0x12, 4, 0x08, 1, 0x18, 9]),
        grpc_status: Some("0".into()),
    };
    let id = h.callouts[0].id;
    ex.on_callout_answer(&mut h, id, &ok);
    assert!(ex.forwarded());
    h.response.headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "text/event-stream".into()),
    ];
    ex.on_response_headers(&mut h, false);
    deliver_response_body(&mut ex, &mut h, SSE, &[50, 51], false, false);
    ex.on_log(&mut h, None);
    assert_eq!(h.detached.len(), 1);
    let charge = &h.detached[0];
    let expect = rls::encode_request(
        "d",
        &[rls::Descriptor {
            entries: vec![
                ("limit".into(), "gt".into()),
                ("claim.sub".into(), "u".into()),
            ],
            limit: Some((100000, mcp_guard_engine::rate_limit::Per::Hour)),
        }],
        999,
    );
    assert_eq!(charge.body, expect);
    assert_eq!(h.rate_limit_counts.2, 1000);
}

#[test]
fn headers_released_an_upstream_answer_before_the_service_is_refused() {
    let a = active(json!({
        "rate": [{"id": "g", "requests": 5, "per": "minute", "by": {"model": true}, "store": "global"}],
        "global": {"cluster": "rls", "domain": "d"}
    }));
    let mut h = host(&SharedStore::default(), json!({"sub": "u"}), "/x", NOW_MS);
    h.request.headers[0].1 = "POST".into();
    let mut ex = Exchange::new(Some(Arc::clone(&a))).with_held_headers(false);
    // Headers go on (not held), the body is held for the model.
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Continue);
    h.request.body = br#"{"model":"m"}"#.to_vec();
    assert_eq!(ex.on_request_body(&mut h, 13, true), Next::Pause);
    assert_eq!(h.callouts.len(), 1);
    // The upstream answers the headers before the service does.
    h.response.headers = vec![(":status".into(), "200".into())];
    assert_eq!(ex.on_response_headers(&mut h, false), Next::Pause);
    assert_eq!(h.replies[0].status, 502);
    // The late OK neither releases the body nor answers again.
    let ok = CalloutAnswer {
        headers: Vec::new(),
        status: Some("200".into()),
        body: grpc_frame(&[0x08, 1, 0x12, 2, 0x08, 1]),
        grpc_status: Some("0".into()),
    };
    ex.on_callout_answer(&mut h, 1, &ok);
    assert_eq!(h.resumed, 0);
    assert_eq!(h.replies.len(), 1);
}
