//! Resource-server duties through the exchange (in-memory host): the
//! metadata answered locally, challenges on every 401 / scope 403,
//! audience binding, and no token passthrough — each tried the way an
//! attacker would.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::{MemoryHost, Reply};
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde_json::{json, Value};

const NOW_MS: u64 = 1_800_000_000_000;
const RESOURCE: &str = "https://mcp.example.com/mcp";
const METADATA_URL: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

fn bundle() -> Value {
    json!({
        "name": "r", "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload"},
        "resource": {
            "resource": RESOURCE,
            "authorization_servers": ["https://auth.example.com"],
            "scopes_supported": ["tools:read", "tools:write", "tools:admin"],
            "resource_name": "Example MCP"
        },
        "rules": [
            {"id": "deny-suspended", "effect": "deny",
             "when": {"claims": [{"claim": "suspended", "equals": true}]}},
            {"id": "read", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"methods": ["tools/list"]},
                "claims": [{"claim": "scope", "contains_any": ["tools:read"]}]}},
            {"id": "write", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"tools": ["delete_*"]},
                "claims": [{"claim": "scp", "contains_all": ["tools:write", "tools:admin"]}]}},
            {"id": "plain", "effect": "allow", "when": {"path": {"prefix": "/plain/"}}}
        ],
        "pii": {"enabled": false}
    })
}

fn active(bundle: &Value) -> Arc<ActivePolicy> {
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn host(method: &str, path: &str, authority: &str, claims: Option<Value>) -> MemoryHost {
    let mut host = MemoryHost::at(NOW_MS);
    if let Some(claims) = claims {
        host.set_claims("jwt_payload", &claims);
    }
    host.request.headers = vec![
        (":method".into(), method.into()),
        (":path".into(), path.into()),
        (":authority".into(), authority.into()),
        ("x-request-id".into(), "r1".into()),
        ("authorization".into(), "Bearer client-token".into()),
    ];
    host
}

/// Claims of a caller whose token was issued for this server.
fn caller(extra: Value) -> Value {
    let mut c = json!({"sub": "alice", "aud": RESOURCE});
    c.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    c
}

/// Runs the request side; the body (if any) ends the stream.
fn run(bundle: &Value, host: &mut MemoryHost, body: Option<Value>) -> Exchange {
    let mut ex = Exchange::new(Some(active(bundle)));
    match body {
        None => {
            ex.on_request_headers(host, true);
        }
        Some(body) => {
            if ex.on_request_headers(host, false) == Next::Pause && !ex.decided() {
                host.request.body = body.to_string().into_bytes();
                let size = host.request.body.len();
                ex.on_request_body(host, size, true);
            }
        }
    }
    ex
}

fn only_reply(host: &MemoryHost) -> &Reply {
    assert_eq!(host.replies.len(), 1, "{:?}", host.replies);
    &host.replies[0]
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn body(reply: &Reply) -> Value {
    serde_json::from_slice(&reply.body).unwrap()
}

fn list() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
}

fn call(tool: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": tool}})
}

fn expected_document() -> Value {
    json!({
        "resource": RESOURCE,
        "authorization_servers": ["https://auth.example.com"],
        "scopes_supported": ["tools:read", "tools:write", "tools:admin"],
        "bearer_methods_supported": ["header"],
        "resource_name": "Example MCP"
    })
}

#[test]
fn both_well_known_forms_are_answered_without_a_token() {
    let b = bundle();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
        // A query names nothing the document depends on.
        "/.well-known/oauth-protected-resource/mcp?resource=https://evil.example",
    ] {
        for method in ["GET", "HEAD"] {
            let mut h = host(method, path, "mcp.example.com", None);
            let mut ex = run(&b, &mut h, None);
            assert!(!ex.forwarded(), "{method} {path}");
            let reply = only_reply(&h);
            assert_eq!(reply.status, 200, "{method} {path}");
            assert_eq!(header(reply, "content-type"), Some("application/json"));
            assert_eq!(body(reply), expected_document(), "{method} {path}");
            assert_eq!(h.counts.allowed + h.counts.denied, 0);
            // The local reply passes back through the response side.
            assert_eq!(ex.on_response_headers(&mut h, false), Next::Continue);
            // A body after the answer is never released upstream.
            assert_eq!(ex.on_request_body(&mut h, 3, true), Next::Pause);
        }
    }
}

#[test]
fn other_methods_on_the_well_known_path_get_405() {
    let b = bundle();
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "get"] {
        let mut h = host(
            method,
            "/.well-known/oauth-protected-resource/mcp",
            "mcp.example.com",
            Some(caller(json!({}))),
        );
        let ex = run(&b, &mut h, None);
        assert!(!ex.forwarded());
        let reply = only_reply(&h);
        assert_eq!(reply.status, 405, "{method}");
        assert_eq!(header(reply, "allow"), Some("GET, HEAD"));
        assert!(!String::from_utf8_lossy(&reply.body).contains("authorization_servers"));
    }
}

#[test]
fn a_spoofed_host_changes_neither_the_document_nor_the_challenge() {
    let b = bundle();
    let mut h = host(
        "GET",
        "/.well-known/oauth-protected-resource",
        "evil.example",
        None,
    );
    run(&b, &mut h, None);
    let reply = only_reply(&h);
    assert_eq!(body(reply), expected_document());
    assert!(!String::from_utf8_lossy(&reply.body).contains("evil"));

    let mut h = host("POST", "/mcp", "evil.example:443", None);
    run(&b, &mut h, Some(list()));
    let reply = only_reply(&h);
    assert_eq!(reply.status, 401);
    assert_eq!(
        header(reply, "www-authenticate"),
        Some(format!("Bearer resource_metadata=\"{METADATA_URL}\"").as_str())
    );
}

#[test]
fn disguised_well_known_paths_are_never_answered_with_metadata() {
    let b = bundle();
    for path in [
        "/.well-known/%6fauth-protected-resource",
        "/.well-known/oauth-protected-resource%2Fmcp",
        "/.well-known/oauth-protected-resource%2fmcp",
        "/x/../.well-known/oauth-protected-resource",
        "/.well-known/./oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp/../mcp",
        "//.well-known/oauth-protected-resource",
        "/.well-known//oauth-protected-resource",
        "/.WELL-KNOWN/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp/",
        "/.well-known/oauth-protected-resource/other",
        "/.well-known/oauth-protected-resourcex",
        "/.well-known/oauth-protected-resource#/mcp",
        ".well-known/oauth-protected-resource",
    ] {
        for claims in [None, Some(caller(json!({})))] {
            let mut h = host("GET", path, "mcp.example.com", claims.clone());
            let ex = run(&b, &mut h, None);
            assert!(!ex.forwarded(), "{path} was forwarded");
            let reply = only_reply(&h);
            assert_ne!(reply.status, 200, "{path}");
            assert!([400, 401, 403].contains(&reply.status), "{path}: {reply:?}");
            assert!(
                !String::from_utf8_lossy(&reply.body).contains("authorization_servers"),
                "{path}"
            );
        }
    }
}

#[test]
fn every_401_names_the_metadata_and_invalid_tokens_say_so() {
    let b = bundle();
    let mut h = host("POST", "/mcp", "mcp.example.com", None);
    run(&b, &mut h, Some(list()));
    let reply = only_reply(&h);
    assert_eq!(reply.status, 401);
    assert_eq!(body(reply)["reason"], "missing_token");
    assert_eq!(
        header(reply, "www-authenticate"),
        Some(format!("Bearer resource_metadata=\"{METADATA_URL}\"").as_str())
    );

    // Metadata that is not a claim set: an invalid token.
    let mut h = host("POST", "/mcp", "mcp.example.com", None);
    h.set_property(&["metadata"], vec![0xff, 0x01, 0x02]);
    run(&b, &mut h, Some(list()));
    let reply = only_reply(&h);
    assert_eq!(reply.status, 401);
    assert_eq!(body(reply)["reason"], "invalid_token");
    assert_eq!(
        header(reply, "www-authenticate"),
        Some(
            format!("Bearer error=\"invalid_token\", resource_metadata=\"{METADATA_URL}\"")
                .as_str()
        )
    );
}

#[test]
fn tokens_for_another_audience_are_invalid() {
    let b = bundle();
    let allowed = |aud: Option<Value>| {
        let mut claims = json!({"sub": "alice"});
        if let Some(aud) = aud {
            claims["aud"] = aud;
        }
        let mut h = host("GET", "/plain/x", "mcp.example.com", Some(claims));
        let ex = run(&b, &mut h, None);
        if !ex.forwarded() {
            let reply = only_reply(&h);
            assert_eq!(reply.status, 401);
            assert_eq!(body(reply)["reason"], "invalid_token");
            assert_eq!(body(reply)["detail"], "audience");
            assert!(header(reply, "www-authenticate")
                .unwrap()
                .starts_with("Bearer error=\"invalid_token\", resource_metadata="));
        }
        ex.forwarded()
    };
    assert!(allowed(Some(json!(RESOURCE))));
    assert!(allowed(Some(json!(["https://other.example", RESOURCE]))));
    assert!(!allowed(None));
    assert!(!allowed(Some(json!(format!("{RESOURCE}/")))));
    assert!(!allowed(Some(json!("https://other.example.com/mcp"))));
    assert!(!allowed(Some(json!(["https://other.example.com/mcp"]))));
    assert!(!allowed(Some(json!("https://mcp.example.com"))));
    assert!(!allowed(Some(json!([]))));
    assert!(!allowed(Some(json!({"aud": RESOURCE}))));

    // An explicit audience list replaces the resource URI.
    let mut b = bundle();
    b["resource"]["audiences"] = json!(["mcp-prod"]);
    let mut h = host(
        "GET",
        "/plain/x",
        "mcp.example.com",
        Some(json!({"sub": "a", "aud": "mcp-prod"})),
    );
    assert!(run(&b, &mut h, None).forwarded());
    let mut h = host(
        "GET",
        "/plain/x",
        "mcp.example.com",
        Some(caller(json!({}))),
    );
    assert!(!run(&b, &mut h, None).forwarded());
}

#[test]
fn a_missing_scope_gets_403_insufficient_scope_with_the_rules_scopes() {
    let b = bundle();
    let challenge = |scopes: &str| {
        format!(
            "Bearer error=\"insufficient_scope\", scope=\"{scopes}\", resource_metadata=\"{METADATA_URL}\""
        )
    };
    // "tools:readwrite" contains "tools:read" as a substring only.
    for scope in ["openid tools:readwrite", "tools:rea", "", "Tools:read"] {
        let mut h = host(
            "POST",
            "/mcp",
            "mcp.example.com",
            Some(caller(json!({"scope": scope}))),
        );
        let ex = run(&b, &mut h, Some(list()));
        assert!(!ex.forwarded(), "{scope:?}");
        let reply = only_reply(&h);
        assert_eq!(reply.status, 403);
        assert_eq!(body(reply)["reason"], "insufficient_scope");
        assert_eq!(
            header(reply, "www-authenticate"),
            Some(challenge("tools:read").as_str())
        );
        let record = h.record().unwrap();
        assert_eq!(record["reason"], "insufficient_scope");
    }
    let mut h = host(
        "POST",
        "/mcp",
        "mcp.example.com",
        Some(caller(json!({"scope": "openid tools:read"}))),
    );
    assert!(run(&b, &mut h, Some(list())).forwarded());

    // `scp` as an array, several scopes required.
    let mut h = host(
        "POST",
        "/mcp",
        "mcp.example.com",
        Some(caller(json!({"scp": ["tools:write"]}))),
    );
    run(&b, &mut h, Some(call("delete_customer")));
    let reply = only_reply(&h);
    assert_eq!(reply.status, 403);
    assert_eq!(
        header(reply, "www-authenticate"),
        Some(challenge("tools:write tools:admin").as_str())
    );
    let mut h = host(
        "POST",
        "/mcp",
        "mcp.example.com",
        Some(caller(json!({"scp": ["tools:admin", "tools:write"]}))),
    );
    assert!(run(&b, &mut h, Some(call("delete_customer"))).forwarded());
}

#[test]
fn denials_that_no_scope_would_lift_carry_no_scope_hint() {
    let b = bundle();
    // A deny rule matched: its 403 stays rule_deny.
    let mut h = host(
        "POST",
        "/mcp",
        "mcp.example.com",
        Some(caller(json!({"suspended": true}))),
    );
    run(&b, &mut h, Some(list()));
    let reply = only_reply(&h);
    assert_eq!(
        (reply.status, body(reply)["reason"].clone()),
        (403, json!("rule_deny"))
    );
    assert_eq!(header(reply, "www-authenticate"), None);
    // No allow rule is about this call at all: default deny.
    let mut h = host("POST", "/mcp", "mcp.example.com", Some(caller(json!({}))));
    run(&b, &mut h, Some(call("get_weather")));
    let reply = only_reply(&h);
    assert_eq!(body(reply)["reason"], "default_deny");
    assert_eq!(header(reply, "www-authenticate"), None);
    // A batch: the denied call decides, and it is the one judged.
    let batch = json!([list(), call("get_weather")]);
    let mut h = host(
        "POST",
        "/mcp",
        "mcp.example.com",
        Some(caller(json!({"scope": "tools:read"}))),
    );
    run(&b, &mut h, Some(batch));
    assert_eq!(body(only_reply(&h))["reason"], "default_deny");
}

#[test]
fn the_client_token_never_reaches_the_upstream_unless_forwarding_is_on() {
    let mut b = bundle();
    let mut h = host(
        "GET",
        "/plain/x",
        "mcp.example.com",
        Some(caller(json!({}))),
    );
    assert!(run(&b, &mut h, None).forwarded());
    assert!(h.request.headers.iter().all(|(k, _)| k != "authorization"));

    // Decided at the end of the body: still removed.
    let mut h = host(
        "POST",
        "/mcp",
        "mcp.example.com",
        Some(caller(json!({"scope": "tools:read"}))),
    );
    assert!(run(&b, &mut h, Some(list())).forwarded());
    assert!(h.request.headers.iter().all(|(k, _)| k != "authorization"));

    b["identity"]["forward_authorization"] = json!(true);
    let mut h = host(
        "GET",
        "/plain/x",
        "mcp.example.com",
        Some(caller(json!({}))),
    );
    assert!(run(&b, &mut h, None).forwarded());
    assert!(h
        .request
        .headers
        .contains(&("authorization".into(), "Bearer client-token".into())));
}

#[test]
fn without_a_resource_section_nothing_changes() {
    let mut b = bundle();
    b.as_object_mut().unwrap().remove("resource");
    let mut h = host("GET", "/.well-known/oauth-protected-resource", "h", None);
    run(&b, &mut h, None);
    let reply = only_reply(&h);
    assert_eq!(reply.status, 401);
    assert_eq!(
        header(reply, "www-authenticate"),
        Some("Bearer realm=\"mcp-guard\"")
    );
    // No audience binding, no scope hint.
    let mut h = host("GET", "/plain/x", "h", Some(json!({"sub": "a"})));
    assert!(run(&b, &mut h, None).forwarded());
    let mut h = host("POST", "/mcp", "h", Some(json!({"scope": "x"})));
    run(&b, &mut h, Some(list()));
    assert_eq!(body(only_reply(&h))["reason"], "default_deny");
}

#[test]
fn the_callers_token_is_not_passed_through_in_trailers_either() {
    // An upstream that merges trailers into headers would read a token
    // the client sent as a trailer (one not meant for this server, say).
    let b = bundle();
    let mut h = host(
        "POST",
        "/plain/x",
        "mcp.example.com",
        Some(caller(json!({}))),
    );
    let mut ex = Exchange::new(Some(active(&b)));
    // HTTP/2: headers, body, then trailers end the request.
    assert_eq!(ex.on_request_headers(&mut h, false), Next::Pause);
    h.request.body = b"{}".to_vec();
    assert_eq!(ex.on_request_body(&mut h, 2, false), Next::Pause);
    h.request.trailers = vec![
        ("Authorization".into(), "Bearer upstream-token".into()),
        ("x-checksum".into(), "1".into()),
    ];
    assert_eq!(ex.on_request_trailers(&mut h), Next::Continue);
    assert!(ex.forwarded());
    assert_eq!(
        h.request.trailers,
        [("x-checksum".to_owned(), "1".to_owned())]
    );
    // Unless the bundle forwards the client's credentials on purpose.
    let mut b = bundle();
    b["identity"]["forward_authorization"] = json!(true);
    let mut h = host(
        "POST",
        "/plain/x",
        "mcp.example.com",
        Some(caller(json!({}))),
    );
    let mut ex = Exchange::new(Some(active(&b)));
    ex.on_request_headers(&mut h, false);
    h.request.body = b"{}".to_vec();
    ex.on_request_body(&mut h, 2, false);
    h.request.trailers = vec![("authorization".into(), "Bearer t".into())];
    ex.on_request_trailers(&mut h);
    assert!(ex.forwarded());
    assert_eq!(h.request.trailers.len(), 1);
}

#[test]
fn dry_run_never_passes_the_callers_token_through() {
    // A dry-run bundle lets every denial through; the requests it would
    // have refused before any rule ran (no token, a token for another
    // server, a malformed request line, a refused body) still lose the
    // caller's token, like every allowed request.
    let mut b = bundle();
    b["dry_run"] = json!(true);
    b["inject"] = json!([{"claim": "sub", "header": "x-user"}]);
    let cases = [
        ("GET", "/plain/x", None),
        (
            "GET",
            "/plain/x",
            Some(json!({"sub": "a", "aud": "https://other/mcp"})),
        ),
        ("GET", "/plain/%2e%2e/x", Some(caller(json!({})))),
        ("GET", "/admin", Some(caller(json!({})))),
    ];
    for (method, path, claims) in cases {
        let mut h = host(method, path, "mcp.example.com", claims.clone());
        h.request.headers.push(("X_User".into(), "admin".into()));
        let ex = run(&b, &mut h, None);
        assert!(ex.forwarded(), "dry-run forwards {path} {claims:?}");
        assert!(
            h.request.headers.iter().all(|(k, _)| k != "authorization"),
            "{path} {claims:?}: the client's token reached the upstream"
        );
        assert!(
            h.request
                .headers
                .iter()
                .all(|(k, v)| k != "X_User" && v != "admin"),
            "{path} {claims:?}: a forged injected header reached the upstream"
        );
    }
    let mut h = host("POST", "/mcp", "mcp.example.com", Some(caller(json!({}))));
    h.request
        .headers
        .push(("content-type".into(), "application/json".into()));
    let ex = run(
        &b,
        &mut h,
        Some(json!({"jsonrpc": "2.0", "id": 1, "method": 7})),
    );
    assert!(ex.forwarded());
    assert!(h.request.headers.iter().all(|(k, _)| k != "authorization"));
}

/// In-filter verification (no `jwt_authn`): the same audience binding,
/// and the token header goes the way of `authorization`.
mod in_filter_verification {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ed25519_dalek::{Signer as _, SigningKey};

    use super::*;

    const ISS: &str = "https://idp.example.com";

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn token(claims: Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(json!({"alg": "EdDSA", "typ": "JWT"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{payload}");
        let sig = URL_SAFE_NO_PAD.encode(key().sign(signed.as_bytes()).to_bytes());
        format!("{signed}.{sig}")
    }

    fn verifying_bundle() -> Value {
        let x = URL_SAFE_NO_PAD.encode(key().verifying_key().as_bytes());
        let mut b = bundle();
        b["identity"]["verify"] = json!({"header": "x-agent-token", "prefix": "",
            "issuers": [{"iss": ISS, "audiences": [RESOURCE, "other-aud"], "algorithms": ["EdDSA"],
                         "jwks": {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x}]}}]});
        b
    }

    fn agent(aud: &str) -> MemoryHost {
        let t = token(json!({"iss": ISS, "sub": "agent", "aud": aud, "exp": NOW_MS / 1000 + 600}));
        let mut h = host("GET", "/plain/x", "mcp.example.com", None);
        h.request.headers.push(("x-agent-token".into(), t));
        h
    }

    #[test]
    fn the_audience_binds_and_every_credential_header_is_removed() {
        let b = verifying_bundle();
        let mut h = agent(RESOURCE);
        assert!(run(&b, &mut h, None).forwarded(), "{:?}", h.replies);
        for name in ["authorization", "x-agent-token"] {
            assert!(h.request.headers.iter().all(|(k, _)| k != name), "{name}");
        }
        // Accepted by the issuer's audiences, but not meant for this server.
        let mut h = agent("other-aud");
        assert!(!run(&b, &mut h, None).forwarded());
        let reply = only_reply(&h);
        assert_eq!(reply.status, 401);
        assert_eq!(body(reply)["detail"], "audience");
        assert_eq!(
            header(reply, "www-authenticate").map(str::to_owned),
            Some(format!(
                "Bearer error=\"invalid_token\", resource_metadata=\"{METADATA_URL}\""
            ))
        );
    }
}
