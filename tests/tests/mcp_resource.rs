//! Resource-server duties (MCP authorization) through a real Envoy on every
//! target: the RFC 9728 metadata answered by the filter in both well-known
//! forms, the exact `WWW-Authenticate` challenges, 403 `insufficient_scope`,
//! RFC 8707 audience binding, and no token passthrough to the upstream.
//!
//! One stack per target serves every case.

use mcp_guard_e2e::http::{send, Reply};
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target};
use serde_json::{json, Value};

/// The resource URI the bundle declares (never the Host the client sends).
const RESOURCE: &str = "https://mcp-guard.test/mcp";
const METADATA_URL: &str = "https://mcp-guard.test/.well-known/oauth-protected-resource/mcp";
/// An issuer `jwt_authn` does not know: the filter verifies its tokens
/// itself, from `x-agent-token` (`jwt_authn` refuses bearer tokens of
/// issuers it does not know).
const AGENTS_ISSUER: &str = "https://agents.mcp-guard.test";

fn bundle() -> Value {
    let jwks: Value = serde_json::from_str(tokens::DEMO_JWKS).unwrap();
    json!({
        "name": "mcp-resource", "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload",
            "verify": {"header": "x-agent-token", "prefix": "", "issuers": [{"iss": AGENTS_ISSUER, "audiences": [RESOURCE],
                                    "algorithms": ["ES256"], "jwks": jwks}]}},
        "resource": {
            "resource": RESOURCE,
            "authorization_servers": [tokens::DEMO_ISSUER],
            "scopes_supported": ["mcp:tools"],
            "resource_name": "mcp-guard e2e"
        },
        "rules": [
            {"id": "mcp-session", "effect": "allow", "when": {
                "methods": ["POST"], "path": {"exact": "/mcp"},
                "mcp": {"methods": ["initialize", "tools/list"]},
                "claims": [{"claim": "scope", "contains_any": ["mcp:tools"]}]}},
            {"id": "health", "effect": "allow", "when": {"path": {"exact": "/healthz"}}}
        ]
    })
}

#[test]
fn mcp_resource_server_duties() {
    for target in target::available() {
        eprintln!("mcp_resource_server_duties: {}", target.name());
        mcp_resource_server_duties_on(&target);
    }
}

fn mcp_resource_server_duties_on(target: &Target) {
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        bundles: vec![("mcp-resource".into(), bundle().to_string())],
        bundle_name: "mcp-resource".into(),
        ..StackOptions::default()
    })
    .expect("stack starts");
    metadata_is_served_in_both_forms_without_a_token(&stack);
    a_401_names_the_metadata(&stack);
    a_missing_scope_gets_403_insufficient_scope(&stack);
    a_token_for_another_audience_is_refused(&stack);
    the_upstream_never_sees_the_client_token(&stack);
}

fn list_tools() -> &'static str {
    r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
}

fn mcp(stack: &Stack, token: Option<&str>) -> Reply {
    send("POST", &stack.url("/mcp"), token, &[], Some(list_tools())).unwrap()
}

/// A request with a token the filter verifies itself, plus a client
/// `Authorization` that `jwt_authn` ignores (not a bearer token).
fn agent_request(stack: &Stack, method: &str, path: &str, token: &str) -> Reply {
    let headers = [
        ("x-agent-token", token),
        ("authorization", "Basic YWdlbnQ6c2VjcmV0"),
    ];
    let body = (method == "POST").then_some(list_tools());
    send(method, &stack.url(path), None, &headers, body).unwrap()
}

/// A `jwt_authn`-verified caller (demo issuer) with these extra claims.
fn demo_token(extra: Value) -> String {
    let mut claims = json!({"sub": "alice", "aud": [tokens::DEMO_AUDIENCE, RESOURCE]});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    tokens::mint(claims).unwrap()
}

fn metadata_is_served_in_both_forms_without_a_token(stack: &Stack) {
    let expected = json!({
        "resource": RESOURCE,
        "authorization_servers": [tokens::DEMO_ISSUER],
        "scopes_supported": ["mcp:tools"],
        "bearer_methods_supported": ["header"],
        "resource_name": "mcp-guard e2e"
    });
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let reply = send("GET", &stack.url(path), None, &[], None).unwrap();
        assert_eq!(reply.status, 200, "{path}: {reply:?}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.json(), expected, "{path}");
        assert_eq!(
            reply.header("x-demo-upstream"),
            None,
            "{path} reached the upstream"
        );

        let head = send("HEAD", &stack.url(path), None, &[], None).unwrap();
        assert_eq!(head.status, 200, "HEAD {path}: {head:?}");
        assert_eq!(head.body, "");
        assert_eq!(head.header("x-demo-upstream"), None);

        let post = send("POST", &stack.url(path), None, &[], Some("{}")).unwrap();
        assert_eq!(post.status, 405, "POST {path}: {post:?}");
        assert_eq!(post.header("allow"), Some("GET, HEAD"));
        assert_eq!(post.header("x-demo-upstream"), None);
    }
    // Other paths under the well-known prefix are not metadata.
    let other = send(
        "GET",
        &stack.url("/.well-known/oauth-protected-resource/other"),
        None,
        &[],
        None,
    )
    .unwrap();
    assert_eq!(other.status, 401, "{other:?}");
}

fn a_401_names_the_metadata(stack: &Stack) {
    let reply = mcp(stack, None);
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.json()["reason"], "missing_token");
    assert_eq!(
        reply.header("www-authenticate").map(str::to_owned),
        Some(format!("Bearer resource_metadata=\"{METADATA_URL}\""))
    );
    // A token the filter verifies itself, expired: invalid_token.
    let expired = tokens::mint(
        json!({"sub": "agent", "iss": AGENTS_ISSUER, "aud": RESOURCE,
                                      "scope": "mcp:tools", "exp": 1_000_000}),
    )
    .unwrap();
    let reply = agent_request(stack, "POST", "/mcp", &expired);
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.json()["reason"], "invalid_token");
    assert_eq!(
        reply.header("www-authenticate").map(str::to_owned),
        Some(format!(
            "Bearer error=\"invalid_token\", resource_metadata=\"{METADATA_URL}\""
        ))
    );
}

fn a_missing_scope_gets_403_insufficient_scope(stack: &Stack) {
    // `mcp:toolsx` contains `mcp:tools` only as a substring.
    let reply = mcp(
        stack,
        Some(&demo_token(json!({"scope": "openid mcp:toolsx"}))),
    );
    assert_eq!(reply.status, 403, "{reply:?}");
    assert_eq!(reply.json()["reason"], "insufficient_scope");
    assert_eq!(
        reply.header("www-authenticate").map(str::to_owned),
        Some(format!(
            "Bearer error=\"insufficient_scope\", scope=\"mcp:tools\", resource_metadata=\"{METADATA_URL}\""
        ))
    );
    assert_eq!(reply.header("x-demo-upstream"), None);
    let reply = mcp(
        stack,
        Some(&demo_token(json!({"scope": "openid mcp:tools"}))),
    );
    assert_eq!(reply.status, 200, "{reply:?}");
}

fn a_token_for_another_audience_is_refused(stack: &Stack) {
    // Accepted by jwt_authn (its audience), but not issued for this server.
    let token = tokens::mint(json!({"sub": "alice", "scope": "mcp:tools"})).unwrap();
    let reply = mcp(stack, Some(&token));
    assert_eq!(reply.status, 401, "{reply:?}");
    assert_eq!(reply.json()["reason"], "invalid_token");
    assert_eq!(reply.json()["detail"], "audience");
    assert_eq!(
        reply.header("www-authenticate").map(str::to_owned),
        Some(format!(
            "Bearer error=\"invalid_token\", resource_metadata=\"{METADATA_URL}\""
        ))
    );
    assert_eq!(reply.header("x-demo-upstream"), None);
    // Trailing slash: a different resource.
    let token = tokens::mint(json!({"sub": "alice", "scope": "mcp:tools",
        "aud": [tokens::DEMO_AUDIENCE, format!("{RESOURCE}/")]}))
    .unwrap();
    assert_eq!(mcp(stack, Some(&token)).status, 401);
}

fn the_upstream_never_sees_the_client_token(stack: &Stack) {
    // Verified by the filter itself: the client's `authorization` reaches
    // the filter, which removes it (and the token header) on the way up.
    let agent = tokens::mint(
        json!({"sub": "agent", "iss": AGENTS_ISSUER, "aud": RESOURCE, "scope": "mcp:tools"}),
    )
    .unwrap();
    let reply = agent_request(stack, "POST", "/mcp", &agent);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-demo-upstream"), Some("1"));
    assert_eq!(reply.header("x-seen-authorization"), Some("0"));
    let reply = agent_request(stack, "GET", "/healthz", &agent);
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-seen-authorization"), Some("0"));
    // Verified by jwt_authn.
    let reply = mcp(stack, Some(&demo_token(json!({"scope": "mcp:tools"}))));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.header("x-seen-authorization"), Some("0"));
}
