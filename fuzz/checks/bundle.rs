//! `bundle`: `Policy::compile` on arbitrary bytes.
//!
//! Invariants: no panic; a bundle that compiles serialises (serde) to
//! text that compiles again to the same bundle, and both policies decide
//! a few fixed requests alike (serialisation loses nothing the rules use).

use mcp_guard_engine::{Claims, McpCall, Policy, RequestAttrs};
use serde_json::json;

pub fn check(data: &[u8]) {
    let Ok(policy) = Policy::compile(data) else {
        return;
    };
    let text = serde_json::to_vec(policy.bundle()).expect("a compiled bundle serialises");
    let again = Policy::compile(&text).unwrap_or_else(|e| {
        panic!(
            "re-serialised bundle does not compile: {e:?}\n{}",
            String::from_utf8_lossy(&text)
        )
    });
    assert_eq!(
        again.bundle(),
        policy.bundle(),
        "round trip changed the bundle"
    );
    assert_eq!(again.needs_body(), policy.needs_body());
    assert_eq!(again.header_names(), policy.header_names());

    let claims = [
        Claims::default(),
        Claims::from_json(
            json!({"sub": "alice", "roles": ["model-user", "admin"], "scope": "mcp:tools",
                   "tenant": "acme", "suspended": false})
            .to_string()
            .as_bytes(),
        )
        .expect("fixed claims"),
    ];
    let headers = [("x-model", "demo-1"), ("x-tenant", "acme")];
    let calls = [
        McpCall::new("tools/list"),
        McpCall::targeting("tools/call", "get_weather"),
        McpCall::targeting("resources/read", "file:///etc/passwd"),
    ];
    for claims in &claims {
        for (method, path, host) in [
            ("POST", "/mcp", "api.local"),
            ("POST", "/v1/chat/completions", "model.local"),
            ("GET", "/admin", "api.local"),
        ] {
            let request = RequestAttrs::new(method, path, host)
                .with_headers(&headers)
                .with_model(Some("demo-1"))
                .at(1_700_000_000);
            assert_eq!(
                policy.decide(claims, &request),
                again.decide(claims, &request),
                "{method} {path}"
            );
            assert_eq!(
                policy.decide_calls(claims, &request, &calls),
                again.decide_calls(claims, &request, &calls),
                "{method} {path} calls"
            );
        }
    }
}
