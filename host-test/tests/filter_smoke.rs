//! Smoke tests of the real mcp-guard filter through the host: the module
//! must be built first (`cargo build -p mcp-guard-filter --target
//! wasm32-wasip1 --release`, or `MCP_GUARD_WASM`).

use mcp_guard_host_test::{Action, Host, HttpCallResponse, Plugin};
use serde_json::json;

fn plugin(config: serde_json::Value) -> Plugin {
    let host = Host::from_env().unwrap_or_else(|e| panic!("{e}"));
    host.plugin(config.to_string()).expect("filter starts")
}

fn bundle() -> serde_json::Value {
    json!({"name": "smoke", "version": 1, "rules": [
        {"id": "alice-mcp", "effect": "allow",
         "when": {"methods": ["POST"], "path": {"prefix": "/mcp"},
                  "claims": [{"claim": "sub", "equals": "alice"}]}}
    ]})
}

#[test]
fn allows_denies_and_scrubs() {
    let plugin = plugin(json!({ "bundle": bundle() }));

    let allowed = plugin.stream().unwrap();
    allowed.set_jwt_payload("jwt_payload", json!({"sub": "alice", "exp": 1.9e9}));
    let action = allowed
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/mcp"),
                (":authority", "api"),
            ],
            true,
        )
        .unwrap();
    assert_eq!(action, Action::Continue);
    assert!(allowed.upstream_request().unwrap().complete);
    allowed
        .response_headers(
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        )
        .unwrap();
    allowed
        .response_body(br#"{"mail":"bob@exam"#, false)
        .unwrap();
    allowed.response_body(br#"ple.com"}"#, true).unwrap();
    let response = allowed.client_response().unwrap();
    assert!(
        !response.body_text().contains("bob@example.com"),
        "{}",
        response.body_text()
    );
    assert!(allowed.filter_state()["wasm.mcp_decision"].contains("\"allow\""));
    allowed.finish().unwrap();

    let anonymous = plugin.stream().unwrap();
    anonymous
        .request_headers(&[(":method", "POST"), (":path", "/mcp")], false)
        .unwrap();
    assert_eq!(anonymous.local_reply().unwrap().status, 401);
    assert!(anonymous.upstream_request().is_none());
    assert_eq!(anonymous.client_response().unwrap().status, 401);
    assert_eq!(
        anonymous.request_body(b"{}", true).unwrap(),
        Action::NotCalled
    );
    anonymous.finish().unwrap();

    assert!(plugin.failure().is_none());
    let decided: u64 = plugin
        .metrics()
        .iter()
        .filter(|(k, _)| k.starts_with("mcp_decisions_total."))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(decided, 2);
}

#[test]
fn fetches_its_bundle_from_the_control_service() {
    let plugin = plugin(
        json!({"control": {"cluster": "control", "bundle": "smoke", "allow_unsigned": true}}),
    );
    let before = plugin.stream().unwrap();
    before
        .request_headers(&[(":method", "POST"), (":path", "/mcp")], true)
        .unwrap();
    assert_eq!(before.local_reply().unwrap().status, 503, "no policy yet");

    assert!(plugin.tick().unwrap());
    let calls = plugin.pending_http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].upstream, "control");
    assert_eq!(calls[0].header(":path"), Some("/v1/bundles/smoke"));
    let answer = HttpCallResponse::new(200, bundle().to_string()).header("etag", "\"v1\"");
    plugin.respond_http_call(calls[0].token, &answer).unwrap();

    let after = plugin.stream().unwrap();
    after.set_jwt_payload("jwt_payload", json!({"sub": "alice"}));
    after
        .request_headers(&[(":method", "POST"), (":path", "/mcp")], true)
        .unwrap();
    assert!(after.local_reply().is_none());
    assert!(after.upstream_request().is_some());
}
