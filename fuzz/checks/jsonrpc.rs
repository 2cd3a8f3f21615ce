//! `jsonrpc`: request bodies read for MCP and model rules.
//!
//! Invariants: no panic in `Policy::request_body`, `mcp::read_body` or
//! the decision taken on what they read; a body over the bundle's limit
//! is `BodyTooLarge`; a body serde_json refuses is refused; a body the
//! strict reader accepts reads, through `serde_json::Value`
//! (differential), as the same model, batch and calls — method and target
//! (tool name, prompt name, resource uri). The strict reader may refuse
//! more than serde_json (duplicate or case-colliding keys, BOM, ...): by
//! design.

use mcp_guard_engine::mcp::{read_body, BodyAttrs};
use mcp_guard_engine::{Claims, McpCall, Policy, Reason, RequestAttrs};
use serde_json::{json, Map, Value};

pub const LIMIT: usize = 2048;

fn policy() -> Policy {
    let bundle = json!({
        "name": "fuzz-jsonrpc",
        "version": 1,
        "limits": {"max_request_body_bytes": LIMIT},
        "rules": [
            {"id": "deny-delete", "effect": "deny", "when": {"mcp": {"tools": ["delete_*"]}}},
            {"id": "tools", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"tools": ["get_weather", "search"]}}},
            {"id": "session", "effect": "allow", "when": {
                "mcp": {"methods": ["initialize", "tools/list", "ping"]}}},
            {"id": "chat", "effect": "allow", "when": {"models": ["demo-*"]}}
        ]
    });
    let policy = Policy::compile(bundle.to_string().as_bytes()).expect("fixed jsonrpc bundle");
    assert!(policy.needs_body());
    policy
}

thread_local! {
    static POLICY: Policy = policy();
}

/// The call serde_json sees in one object, written from the JSON-RPC and
/// MCP specifications rather than from the engine.
fn reference_call(object: &Map<String, Value>) -> Option<McpCall> {
    if object.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return None;
    }
    let Some(Value::String(method)) = object.get("method") else {
        return None;
    };
    let param = match method.as_str() {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => Some("uri"),
        _ => None,
    };
    let target = param
        .and_then(|p| object.get("params")?.as_object()?.get(p)?.as_str())
        .map(str::to_owned);
    Some(McpCall {
        target,
        id: object.get("id").cloned(),
        ..McpCall::new(method)
    })
}

/// Why the reference reading gives no attributes.
#[derive(Debug, PartialEq, Eq)]
enum RefError {
    NotJson,
    BadBatch,
}

fn reference(body: &[u8]) -> Result<BodyAttrs, RefError> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Err(RefError::NotJson);
    };
    let mut attrs = BodyAttrs::default();
    match value {
        Value::Object(object) => {
            if let Some(Value::String(model)) = object.get("model") {
                attrs.model = Some(model.clone());
            }
            attrs.mcp.extend(reference_call(&object));
        }
        Value::Array(items) if items.is_empty() => return Err(RefError::BadBatch),
        Value::Array(items) => {
            attrs.batch = true;
            for item in &items {
                attrs
                    .mcp
                    .extend(reference_call(item.as_object().ok_or(RefError::BadBatch)?));
            }
        }
        _ => {}
    }
    Ok(attrs)
}

pub fn check(data: &[u8]) {
    let engine = read_body(data);
    let want = reference(data);
    match (&engine, &want) {
        (Ok(got), Ok(want)) => {
            assert_eq!(got.model, want.model, "model");
            assert_eq!(got.batch, want.batch, "batch");
            assert_eq!(got.mcp.len(), want.mcp.len(), "number of calls");
            for (g, w) in got.mcp.iter().zip(&want.mcp) {
                assert_eq!(g.method, w.method, "method");
                assert_eq!(g.id, w.id, "id");
                assert_eq!(g.target, w.target, "target of {}", w.method);
            }
        }
        (Ok(_), Err(e)) => panic!("the strict reader accepted what serde_json reads as {e:?}"),
        (Err(_), _) => {}
    }

    POLICY.with(|policy| {
        let read = policy.request_body(data);
        if data.len() > LIMIT {
            assert_eq!(read.map_err(|r| r.reason), Err(Reason::BodyTooLarge));
            return;
        }
        assert_eq!(
            read.is_ok(),
            engine.is_ok() || data.is_empty(),
            "request_body"
        );
        if let Ok(attrs) = read {
            let claims = Claims::default();
            let model = attrs.model.as_deref();
            let request = RequestAttrs::new("POST", "/mcp", "api.local")
                .with_model(model)
                .at(1_700_000_000);
            let decision = policy.decide_calls(&claims, &request, &attrs.mcp);
            // A batch is allowed only when every call in it is.
            if decision.effect == mcp_guard_engine::Effect::Allow {
                for call in &attrs.mcp {
                    let one = policy.decide(&claims, &request.with_mcp(Some(call)));
                    assert_eq!(
                        one.effect,
                        mcp_guard_engine::Effect::Allow,
                        "batch allowed with a denied call {call:?}"
                    );
                }
            }
        }
    });
}
