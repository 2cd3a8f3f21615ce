//! Attacks on which token a token exchange trades: the subject token must
//! be the one that identified the caller. A request identified by one
//! token (another header, another `jwt_authn` location, a workload peer,
//! a dry-run bundle letting an invalid token through) must never get
//! another token it carries in `Authorization` exchanged, e.g. a victim's
//! token issued for another audience (a confused deputy at the IdP).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::{ActivePolicy, Exchange};
use serde_json::{json, Value};

const NOW_MS: u64 = 1_800_000_000_000;
const NOW_S: u64 = NOW_MS / 1000;
const ISS: &str = "https://idp.example.com";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn jwt(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "typ": "JWT"}).to_string());
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(key().sign(signed.as_bytes()).to_bytes());
    format!("{signed}.{sig}")
}

fn bundle() -> Value {
    json!({
        "name": "t", "version": 1,
        "rules": [{"id": "plain", "effect": "allow", "when": {"path": {"prefix": "/plain/"}}}],
        "token_exchange": {
            "cluster": "idp", "authority": "idp.local", "path": "/token",
            "audience": "mcp-tools", "client_id": "guard"
        }
    })
}

fn active(b: &Value) -> Arc<ActivePolicy> {
    Arc::new(ActivePolicy::new(
        Policy::compile(b.to_string().as_bytes()).unwrap(),
        None,
    ))
}

fn host(authorization: Option<&str>) -> MemoryHost {
    let mut h = MemoryHost::at(NOW_MS);
    h.request.headers = vec![
        (":method".into(), "GET".into()),
        (":path".into(), "/plain/x".into()),
        (":authority".into(), "api.local".into()),
    ];
    if let Some(token) = authorization {
        h.request
            .headers
            .push(("authorization".into(), format!("Bearer {token}")));
    }
    h
}

fn run(a: &Arc<ActivePolicy>, h: &mut MemoryHost) -> Exchange {
    let mut x = Exchange::new(Some(Arc::clone(a))).with_exchange_secret(Some(Arc::from("s")));
    x.on_request_headers(h, true);
    x
}

fn victim() -> String {
    jwt(&json!({"iss": ISS, "sub": "victim", "aud": "another-server", "exp": NOW_S + 600}))
}

fn assert_not_exchanged(h: &MemoryHost, x: &Exchange) {
    assert!(h.callouts.is_empty(), "the victim's token went to the IdP");
    assert!(!x.forwarded());
    let reply = h.replies.first().expect("a refusal");
    assert_eq!(reply.status, 503);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["detail"], "subject_not_caller");
}

#[test]
fn jwt_authn_identified_another_token_than_authorization() {
    // jwt_authn verified mallory's token from another location (its own
    // header, `access_token`, or `allow_missing_or_failed` skipping the
    // Authorization one); Authorization carries the victim's token.
    let a = active(&bundle());
    let mut h = host(Some(&victim()));
    h.set_claims(
        "jwt_payload",
        &json!({"iss": ISS, "sub": "mallory", "aud": "mcp", "exp": NOW_S + 600}),
    );
    let x = run(&a, &mut h);
    assert_not_exchanged(&h, &x);

    // The same token in both places is exchanged (Envoy's metadata holds
    // numbers as doubles: `exp` still compares equal).
    let own = json!({"iss": ISS, "sub": "mallory", "aud": "mcp", "exp": NOW_S + 600});
    let mut h = host(Some(&jwt(&own)));
    h.set_claims("jwt_payload", &own);
    run(&a, &mut h);
    assert_eq!(h.callouts.len(), 1, "{:?}", h.replies);
}

#[test]
fn in_filter_verification_from_another_header() {
    let x = URL_SAFE_NO_PAD.encode(key().verifying_key().as_bytes());
    let mut b = bundle();
    b["identity"] = json!({"verify": {"header": "x-agent-token", "prefix": "",
        "issuers": [{"iss": ISS, "audiences": ["mcp"], "algorithms": ["EdDSA"],
                     "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]}}]}});
    let a = active(&b);
    let mallory = jwt(&json!({"iss": ISS, "sub": "mallory", "aud": "mcp", "exp": NOW_S + 600}));
    let mut h = host(Some(&victim()));
    h.request.headers.push(("x-agent-token".into(), mallory));
    let x = run(&a, &mut h);
    assert_not_exchanged(&h, &x);
}

#[test]
fn a_dry_run_bundle_never_exchanges_a_token_that_failed_identification() {
    // The token fails (not meant for this server); dry-run lets the
    // request through, but what identified nobody is not exchanged.
    let mut b = bundle();
    b["dry_run"] = json!(true);
    b["resource"] = json!({"resource": "https://mcp.example.com/mcp",
        "authorization_servers": ["https://idp.example.com"]});
    let a = active(&b);
    let mut h = host(Some(&victim()));
    h.set_claims(
        "jwt_payload",
        &json!({"iss": ISS, "sub": "victim", "aud": "another-server", "exp": NOW_S + 600}),
    );
    let x = run(&a, &mut h);
    assert_not_exchanged(&h, &x);
}

#[test]
fn a_workload_caller_never_gets_a_carried_token_exchanged() {
    let mut b = bundle();
    b["identity"] = json!({"workloads": {"allow_without_token": true,
        "trust_domains": ["cluster.local"]}});
    b["rules"] = json!([{"id": "agents", "effect": "allow", "when": {
        "path": {"prefix": "/plain/"}, "peers": ["spiffe://cluster.local/ns/a/sa/agent"]}}]);
    let a = active(&b);
    // jwt_authn let the (failed) token through without metadata.
    let mut h = host(Some(&victim()));
    h.set_peer_uri_san("spiffe://cluster.local/ns/a/sa/agent");
    let x = run(&a, &mut h);
    assert_not_exchanged(&h, &x);
}
