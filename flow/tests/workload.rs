//! Workload identity through the exchange: the peer SPIFFE ID comes from
//! the host's view of the mTLS connection only, identifies a tokenless
//! caller only when the bundle allows it, and is checked in addition to
//! a token otherwise.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::host::PeerCertificate;
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::{ActivePolicy, Exchange};
use serde_json::{json, Value};

const AGENT: &str = "spiffe://cluster.local/ns/agents/sa/agent";
const OTHER_SA: &str = "spiffe://cluster.local/ns/agents/sa/other";

fn bundle(workloads: Option<Value>) -> Value {
    let mut identity = json!({"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"});
    if let Some(w) = workloads {
        identity["workloads"] = w;
    }
    json!({
        "name": "w", "version": 1,
        "identity": identity,
        "rules": [
            {"id": "health", "effect": "allow", "when": {"path": {"exact": "/health"}}},
            {"id": "agent", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "peers": [AGENT]}},
            {"id": "user-via-agents", "effect": "allow", "when": {
                "path": {"exact": "/both"},
                "peers": ["spiffe://cluster.local/ns/agents/*"],
                "claims": [{"claim": "sub", "equals": "alice"}]}}
        ],
        "pii": {"enabled": true, "exempt": [{"claim": "pii_exempt_never", "exists": false}]}
    })
}

fn workloads() -> Option<Value> {
    Some(json!({"allow_without_token": true, "trust_domains": ["cluster.local"]}))
}

fn active(bundle: &Value) -> Arc<ActivePolicy> {
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn host(path: &str, token_sub: Option<&str>, peer: Option<&str>) -> MemoryHost {
    let mut host = MemoryHost::at(1_800_000_000_000);
    if let Some(sub) = token_sub {
        host.set_claims("jwt_payload", &json!({"sub": sub}));
    }
    if let Some(peer) = peer {
        host.set_peer_uri_san(peer);
    }
    host.request.headers = vec![
        (":method".into(), "GET".into()),
        (":path".into(), path.into()),
        (":authority".into(), "api.local".into()),
    ];
    host
}

/// Runs the request headers; returns (forwarded, record).
fn run(bundle: &Value, host: &mut MemoryHost) -> (bool, Value, Exchange) {
    let mut ex = Exchange::new(Some(active(bundle)));
    ex.on_request_headers(host, true);
    (ex.forwarded(), host.record().unwrap(), ex)
}

#[test]
fn a_tokenless_workload_is_identified_by_its_spiffe_id() {
    let b = bundle(workloads());
    let mut h = host("/mcp", None, Some(AGENT));
    let (forwarded, record, ex) = run(&b, &mut h);
    assert!(forwarded, "{record}");
    assert_eq!(record["rule"], "agent");
    assert_eq!(record["sub"], AGENT);
    assert_eq!(record["peer"], AGENT);
    // Not exempt from scrubbing through a claim test it cannot fail.
    assert_eq!(ex.record().scrub_note, None);
}

#[test]
fn other_workloads_and_rules_without_peers_do_not_admit_it() {
    let b = bundle(workloads());
    for (path, peer) in [("/mcp", OTHER_SA), ("/health", AGENT), ("/both", AGENT)] {
        let mut h = host(path, None, Some(peer));
        let (forwarded, record, _) = run(&b, &mut h);
        assert!(!forwarded, "{path} {peer}");
        assert_eq!(record["reason"], "default_deny", "{path} {peer}: {record}");
        assert_eq!(record["sub"], peer);
        assert_eq!(h.replies[0].status, 403);
    }
}

#[test]
fn workloads_outside_the_trust_domains_or_without_the_setting_need_a_token() {
    let outside = "spiffe://other.td/ns/agents/sa/agent";
    let lookalike = "spiffe://cluster.local.evil/ns/agents/sa/agent";
    for (b, peer) in [
        (bundle(workloads()), outside),
        (bundle(workloads()), lookalike),
        (bundle(None), AGENT),
        (
            bundle(Some(
                json!({"allow_without_token": false, "trust_domains": ["cluster.local"]}),
            )),
            AGENT,
        ),
    ] {
        let mut h = host("/mcp", None, Some(peer));
        let (forwarded, record, _) = run(&b, &mut h);
        assert!(!forwarded);
        assert_eq!(record["reason"], "missing_token", "{peer}: {record}");
        assert_eq!(h.replies[0].status, 401);
    }
}

#[test]
fn only_the_connection_identifies_never_a_header_or_a_bad_certificate() {
    let b = bundle(workloads());
    let xfcc = format!("By=spiffe://cluster.local/ns/mesh/sa/gw;URI={AGENT}");
    // Forged XFCC on a connection without a client certificate.
    let mut h = host("/mcp", None, None);
    h.request
        .headers
        .push(("x-forwarded-client-cert".into(), xfcc.clone()));
    let (forwarded, record, _) = run(&b, &mut h);
    assert!(!forwarded);
    assert_eq!(record["reason"], "missing_token");
    // Forged XFCC next to a real certificate of another workload.
    let mut h = host("/mcp", None, Some(OTHER_SA));
    h.request
        .headers
        .push(("x-forwarded-client-cert".into(), xfcc));
    let (forwarded, record, _) = run(&b, &mut h);
    assert!(!forwarded);
    assert_eq!(record["sub"], OTHER_SA);
    // A SAN the host reports without a presented certificate, or a
    // certificate whose URI SAN is not a SPIFFE ID.
    for cert in [
        PeerCertificate {
            presented: false,
            uri_san: Some(AGENT.into()),
        },
        PeerCertificate {
            presented: true,
            uri_san: Some(format!("{AGENT}?x=1")),
        },
        PeerCertificate {
            presented: true,
            uri_san: Some("https://cluster.local/ns/agents/sa/agent".into()),
        },
        PeerCertificate {
            presented: true,
            uri_san: None,
        },
    ] {
        let mut h = host("/mcp", None, None);
        h.peer = cert.clone();
        let (forwarded, record, _) = run(&b, &mut h);
        assert!(!forwarded, "{cert:?}");
        assert_eq!(record["reason"], "missing_token", "{cert:?}");
        assert!(record.get("peer").is_none(), "{record}");
    }
}

#[test]
fn with_a_token_both_the_user_and_the_peer_must_hold() {
    let b = bundle(workloads());
    let mut h = host("/both", Some("alice"), Some(AGENT));
    let (forwarded, record, _) = run(&b, &mut h);
    assert!(forwarded, "{record}");
    assert_eq!(record["sub"], "alice");
    assert_eq!(record["peer"], AGENT);
    for (sub, peer) in [
        ("alice", None),
        ("alice", Some("spiffe://cluster.local/ns/web/sa/x")),
        ("bob", Some(AGENT)),
    ] {
        let mut h = host("/both", Some(sub), peer);
        let (forwarded, record, _) = run(&b, &mut h);
        assert!(!forwarded, "{sub} {peer:?}");
        assert_eq!(record["reason"], "default_deny");
        assert_eq!(record["sub"], sub);
    }
    // A token holder keeps its claim-based exemption.
    let mut h = host("/health", Some("alice"), Some(AGENT));
    let (forwarded, _, ex) = run(&b, &mut h);
    assert!(forwarded);
    assert_eq!(ex.record().scrub_note, Some("exempt"));
}

#[test]
fn a_bad_token_is_never_replaced_by_the_peer() {
    let b = bundle(workloads());
    let mut h = host("/mcp", None, Some(AGENT));
    // jwt_authn metadata that is not a payload map.
    h.set_property(&["metadata"], b"\xff\xff not protobuf".to_vec());
    let (forwarded, record, _) = run(&b, &mut h);
    assert!(!forwarded);
    assert_eq!(record["reason"], "invalid_token", "{record}");
}

#[test]
fn bundles_that_never_use_the_peer_do_not_read_it() {
    let b = json!({"name": "n", "version": 1, "rules": [
        {"id": "all", "effect": "allow", "when": {"path": {"exact": "/x"}}}]});
    let mut h = host("/x", Some("alice"), Some(AGENT));
    let (forwarded, record, _) = run(&b, &mut h);
    assert!(forwarded);
    assert!(record.get("peer").is_none(), "{record}");
}

/// `tools/list` answers are filtered as the caller would be decided: a
/// workload-only caller sees the tools a peers rule gives it, not those
/// of rules written for token holders.
#[test]
fn tool_lists_are_filtered_as_the_workload_would_be_decided() {
    let b = json!({
        "name": "l", "version": 1,
        "identity": {"workloads": {"allow_without_token": true, "trust_domains": ["cluster.local"]}},
        "rules": [
            {"id": "list", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "peers": [AGENT], "mcp": {"methods": ["tools/list"]}}},
            {"id": "agent-tools", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "peers": ["spiffe://cluster.local/ns/agents/*"],
                "mcp": {"tools": ["get_weather"]}}},
            {"id": "users-tools", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"tools": ["delete_customer"]}}}
        ],
        "pii": {"enabled": false}
    });
    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}).to_string();
    let answer = json!({"jsonrpc": "2.0", "id": 7, "result": {"tools": [
        {"name": "get_weather"}, {"name": "delete_customer"}]}})
    .to_string();
    for content_type in ["application/json", "text/event-stream"] {
        let mut h = host("/mcp", None, Some(AGENT));
        h.request.headers[0].1 = "POST".into();
        h.request
            .headers
            .push(("content-type".into(), "application/json".into()));
        let mut ex = Exchange::new(Some(active(&b)));
        ex.on_request_headers(&mut h, false);
        h.request.body = list.clone().into_bytes();
        ex.on_request_body(&mut h, list.len(), true);
        assert!(ex.forwarded(), "{:?}", h.record());
        let body = if content_type == "text/event-stream" {
            format!("event: message\ndata: {answer}\n\n")
        } else {
            answer.clone()
        };
        h.response.headers = vec![
            (":status".into(), "200".into()),
            ("content-type".into(), content_type.into()),
        ];
        ex.on_response_headers(&mut h, false);
        h.response.body = body.clone().into_bytes();
        ex.on_response_body(&mut h, body.len(), true);
        let text = String::from_utf8(h.response.body.clone()).unwrap();
        assert!(text.contains("get_weather"), "{content_type}: {text}");
        assert!(!text.contains("delete_customer"), "{content_type}: {text}");
        assert_eq!(ex.record().mcp_hidden, 1, "{content_type}");
    }
}
