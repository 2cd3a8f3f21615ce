//! Identity verified by the filter itself (bundle `identity.verify`),
//! through the real `.wasm`: good tokens pass, and an adversarial set of
//! tokens is refused with 401 and a precise reason code.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use mcp_guard_host_test::{Host, Plugin};
use serde_json::{json, Value};

const KEY_PEM: &str = include_str!("../../envoy/demo-keys/demo-signing-key.pem");
const JWKS: &str = include_str!("../../envoy/demo-keys/demo-jwks.json");
const ISS: &str = "https://issuer.mcp-guard.demo";
const AUD: &str = "mcp-guard-demo";

/// The host clock in these tests: 2026-11-21 14:30 UTC.
const NOW: u64 = 1_795_271_400;

fn plugin() -> Plugin {
    let bundle = json!({
        "name": "verify", "version": 1,
        "identity": {"verify": {"issuers": [{
            "iss": ISS, "audiences": [AUD], "algorithms": ["ES256"],
            "jwks": serde_json::from_str::<Value>(JWKS).unwrap()}]}},
        "rules": [{"id": "users", "effect": "allow", "when": {"claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}]
    });
    let plugin = Host::from_env()
        .unwrap()
        .plugin(json!({ "bundle": bundle }).to_string())
        .unwrap();
    plugin
        .set_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(NOW))
        .unwrap();
    plugin
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "alice", "roles": ["model-user"], "iat": NOW - 10, "exp": NOW + 600})
}

fn sign(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("mcp-guard-demo-1".into());
    encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(KEY_PEM.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

/// Sends a GET with `authorization` set (when given); returns the 401
/// detail code, or `None` when the request went upstream.
fn outcome(plugin: &Plugin, authorization: Option<&str>) -> Option<(u32, String, String)> {
    let stream = plugin.stream().unwrap();
    let mut headers = vec![
        (":method", "GET"),
        (":path", "/v1/models"),
        (":authority", "h"),
    ];
    if let Some(a) = authorization {
        headers.push(("authorization", a));
    }
    stream.request_headers(&headers, true).unwrap();
    let reply = stream.local_reply()?;
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    Some((
        reply.status,
        body["reason"].as_str().unwrap_or_default().into(),
        body["detail"].as_str().unwrap_or_default().into(),
    ))
}

#[test]
fn a_valid_token_is_verified_in_the_filter() {
    let plugin = plugin();
    let token = sign(&claims());
    assert_eq!(outcome(&plugin, Some(&format!("Bearer {token}"))), None);
    // The second time the cache answers; the result must be the same.
    assert_eq!(outcome(&plugin, Some(&format!("Bearer {token}"))), None);
    let viewer =
        sign(&json!({"iss": ISS, "aud": AUD, "sub": "v", "roles": ["viewer"], "exp": NOW + 60}));
    assert_eq!(
        outcome(&plugin, Some(&format!("Bearer {viewer}"))).map(|o| o.0),
        Some(403)
    );
}

#[test]
fn adversarial_tokens_are_rejected_with_reason_codes() {
    let plugin = plugin();
    let good = sign(&claims());
    let parts: Vec<&str> = good.split('.').collect();
    let with_claims = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        sign(&c)
    };
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(
            &json!({"iss": ISS, "aud": AUD, "sub": "alice", "roles": ["model-user", "admin"], "exp": NOW + 600})
        ),
        parts[2]
    );
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        parts[1]
    );
    let hs256 = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "HS256", "kid": "mcp-guard-demo-1"})),
        parts[1],
        parts[2]
    );
    let wrong_kid = format!(
        "{}.{}.{}",
        b64(&json!({"alg": "ES256", "kid": "rotated-away"})),
        parts[1],
        parts[2]
    );
    let huge = format!("{}.{}.{}", parts[0], "A".repeat(20_000), parts[2]);
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", alg_none, "alg_none"),
        ("HS/ES confusion", hs256, "alg_not_allowed"),
        ("unknown kid", wrong_kid, "unknown_kid"),
        (
            "expired",
            with_claims(&|c| c["exp"] = json!(NOW - 3600)),
            "expired",
        ),
        (
            "nbf in future",
            with_claims(&|c| c["nbf"] = json!(NOW + 3600)),
            "not_yet_valid",
        ),
        (
            "wrong audience",
            with_claims(&|c| c["aud"] = json!("someone-else")),
            "wrong_audience",
        ),
        (
            "wrong issuer",
            with_claims(&|c| c["iss"] = json!("https://evil.example")),
            "wrong_issuer",
        ),
        (
            "exp of the wrong type",
            with_claims(&|c| c["exp"] = json!("tomorrow")),
            "bad_claims",
        ),
        ("tampered payload", tampered, "bad_signature"),
        (
            "truncated",
            good[..good.len() - 10].to_string(),
            "bad_signature",
        ),
        (
            "two parts",
            format!("{}.{}", parts[0], parts[1]),
            "malformed",
        ),
        (
            "not base64",
            format!("{}.{}.%%%", parts[0], parts[1]),
            "malformed",
        ),
        ("huge", huge, "token_too_large"),
    ];
    for (name, token, code) in cases {
        let got = outcome(&plugin, Some(&format!("Bearer {token}")));
        assert_eq!(
            got,
            Some((401, "invalid_token".into(), code.into())),
            "{name}"
        );
    }
    assert_eq!(
        outcome(&plugin, Some("Basic YWxpY2U6cHc=")),
        Some((401, "invalid_token".into(), "malformed".into()))
    );
    assert_eq!(
        outcome(&plugin, None),
        Some((401, "missing_token".into(), String::new()))
    );
    assert!(plugin.failure().is_none(), "no input kills the VM");
}

#[test]
fn envoy_verified_claims_take_precedence_over_a_header_token() {
    let plugin = plugin();
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload(
        "jwt_payload",
        json!({"sub": "alice", "roles": ["model-user"]}),
    );
    stream
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/"),
                (":authority", "h"),
                ("authorization", "Bearer garbage"),
            ],
            true,
        )
        .unwrap();
    assert!(stream.local_reply().is_none());
}
