//! Rate limits and token budgets through the real `.wasm`: several worker
//! VMs of one Envoy sharing one shared-data store count one limit exactly
//! (interleaved streams, no lost updates), a token budget is charged from
//! a streamed answer cut at awkward boundaries and then refused up front,
//! and the metrics move.

use mcp_guard_host_test::{Action, Host, Plugin, PluginOptions, Stream};
use serde_json::{json, Value};

fn config() -> String {
    json!({
        "headers_stop_iteration": true,
        "bundle": {
            "name": "rl", "version": 1,
            "limits": {"rate": [
                {"id": "tenant-rpm", "requests": 25, "per": "hour", "by": {"claims": ["tenant"]},
                 "when": {"path": {"prefix": "/r"}}},
                {"id": "sub-tokens", "tokens": 2500, "per": "day", "by": {"claims": ["sub"], "model": true},
                 "when": {"path": {"exact": "/v1/chat/completions"}}}
            ]},
            "pii": {"enabled": true, "types": ["email"]},
            "rules": [{"id": "all", "effect": "allow"}]
        }
    })
    .to_string()
}

/// `n` VMs of one Envoy process sharing one shared-data store.
fn workers(n: usize) -> Vec<Plugin> {
    let host = Host::from_env().unwrap_or_else(|e| panic!("{e}"));
    let first = host.plugin(config()).expect("filter starts");
    let shared = first.shared_data_handle();
    let mut all = vec![first];
    for i in 1..n {
        let options = PluginOptions {
            shared_data: Some(shared.clone()),
            random_seed: i as u64,
            ..PluginOptions::default()
        };
        all.push(host.plugin_with(config(), options).expect("filter starts"));
    }
    all
}

fn get(stream: &Stream, tenant: &str) -> Action {
    stream.set_jwt_payload(
        "jwt_payload",
        json!({"sub": "u", "tenant": tenant, "exp": 1.9e9}),
    );
    stream
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/r"),
                (":authority", "a.local"),
                ("x-request-id", "q"),
            ],
            true,
        )
        .unwrap()
}

#[test]
fn four_vms_admit_exactly_the_limit_across_interleaved_streams() {
    let vms = workers(4);
    // Headers of many streams first (each VM counts while others have
    // streams open), then finish them all.
    let mut open = Vec::new();
    for i in 0..60 {
        let stream = vms[i % 4].stream().unwrap();
        get(&stream, "acme");
        open.push(stream);
    }
    let admitted = open.iter().filter(|s| s.local_reply().is_none()).count();
    assert_eq!(admitted, 25);
    let refused = open.iter().find_map(|s| s.local_reply()).unwrap();
    assert_eq!(refused.status, 429);
    let header = |name: &str| {
        refused
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("ratelimit-limit").as_deref(), Some("25"));
    assert_eq!(header("ratelimit-policy").as_deref(), Some("25;w=3600"));
    assert!(header("retry-after").is_some());
    let body: Value = serde_json::from_slice(&refused.body).unwrap();
    assert_eq!(body["limit"], "tenant-rpm");
    for s in &open {
        s.finish().unwrap();
    }
    // Another tenant, on any VM, has its own budget.
    let s = vms[3].stream().unwrap();
    assert_eq!(get(&s, "other"), Action::Continue);
    // Metrics are per VM here (Envoy adds them up across workers).
    let over: u64 = vms
        .iter()
        .flat_map(|vm| vm.metrics().into_iter())
        .filter(|(k, _)| k.contains("mcp_ratelimit_over_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(over, 35);
}

const SSE: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"write to jane.doe@example.com\"}}],\"usage\":null}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":700,\"completion_tokens\":500,\"total_tokens\":1200}}\n\n\
data: [DONE]\n\n";

fn chat(vm: &Plugin, cuts: &[usize]) -> (Option<u32>, Vec<u8>) {
    let stream = vm.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", json!({"sub": "alice", "exp": 1.9e9}));
    stream
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                (":authority", "a.local"),
                ("content-type", "application/json"),
            ],
            false,
        )
        .unwrap();
    stream
        .request_body(br#"{"model":"m1","stream":true}"#, true)
        .unwrap();
    if let Some(reply) = stream.local_reply() {
        stream.finish().unwrap();
        return (Some(reply.status), Vec::new());
    }
    stream
        .response_headers(
            &[(":status", "200"), ("content-type", "text/event-stream")],
            false,
        )
        .unwrap();
    let mut start = 0;
    for &cut in cuts.iter().chain([&SSE.len()]) {
        stream
            .response_body(&SSE[start..cut], cut == SSE.len())
            .unwrap();
        start = cut;
    }
    let out = stream.client_response().map(|r| r.body).unwrap_or_default();
    stream.finish().unwrap();
    (None, out)
}

#[test]
fn a_token_budget_is_charged_from_a_stream_then_refused_up_front() {
    let vms = workers(2);
    // Cut inside `"total_tokens"`, inside the number, and between CR LF.
    let at = |needle: &[u8]| SSE.windows(needle.len()).position(|w| w == needle).unwrap();
    let cuts = [at(b"total_tok") + 3, at(b"1200") + 2, at(b"[DONE]") - 1];
    let (refused, out) = chat(&vms[0], &cuts);
    assert_eq!(refused, None);
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("jane.doe@example.com"), "scrubbed: {text}");
    assert!(
        text.contains("\"total_tokens\":1200"),
        "usage passes: {text}"
    );
    // 1200 of 2500: the other VM admits one more (2400 spent).
    assert_eq!(chat(&vms[1], &[7, 8, 9]).0, None);
    // 2400 of 2500 spent: still under, admitted (3600 spent).
    assert_eq!(chat(&vms[0], &[]).0, None);
    // Now over: refused before the upstream, on either VM.
    assert_eq!(chat(&vms[1], &[]).0, Some(429));
    assert_eq!(chat(&vms[0], &[]).0, Some(429));
    let charged: u64 = vms
        .iter()
        .flat_map(|vm| vm.metrics().into_iter())
        .filter(|(k, _)| k.contains("mcp_tokens_charged_total"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(charged, 3600);
}
