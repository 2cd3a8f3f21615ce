//! `POST /mcp`: the JSON-RPC 2.0 layer of MCP (single messages and
//! batches, notifications, the standard error codes). What the methods
//! return lives in [`crate::catalog`].

use serde_json::{json, Map, Value};

use crate::catalog;

/// A JSON-RPC error, with the code the specification gives each kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RpcError {
    /// The body is not JSON.
    #[error("Parse error: {0}")]
    Parse(String),
    /// The JSON is not a valid request object.
    #[error("Invalid Request: {0}")]
    InvalidRequest(&'static str),
    /// No such method.
    #[error("Method not found: {0}")]
    MethodNotFound(String),
    /// The method exists but its params are wrong (including unknown tools).
    #[error("Invalid params: {0}")]
    InvalidParams(String),
}

impl RpcError {
    /// The numeric code JSON-RPC 2.0 assigns to this kind of error.
    pub(crate) fn code(&self) -> i64 {
        match self {
            RpcError::Parse(_) => -32700,
            RpcError::InvalidRequest(_) => -32600,
            RpcError::MethodNotFound(_) => -32601,
            RpcError::InvalidParams(_) => -32602,
        }
    }
}

/// Answers a raw JSON-RPC payload. `None` means nothing is owed to the
/// client: the payload held only notifications.
pub(crate) fn respond(body: &[u8]) -> Option<Value> {
    let payload: Value = match serde_json::from_slice(body) {
        Ok(payload) => payload,
        Err(e) => return Some(error_reply(Value::Null, &RpcError::Parse(e.to_string()))),
    };
    match payload {
        Value::Array(batch) if batch.is_empty() => Some(error_reply(
            Value::Null,
            &RpcError::InvalidRequest("empty batch"),
        )),
        Value::Array(batch) => {
            let replies: Vec<Value> = batch.iter().filter_map(respond_one).collect();
            (!replies.is_empty()).then_some(Value::Array(replies))
        }
        single => respond_one(&single),
    }
}

/// Answers one message of a payload; `None` for a notification.
fn respond_one(message: &Value) -> Option<Value> {
    let Some(object) = message.as_object() else {
        return Some(error_reply(
            Value::Null,
            &RpcError::InvalidRequest("a message must be an object"),
        ));
    };
    let id = match object.get("id") {
        None => None,
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => Some(id.clone()),
        Some(_) => {
            return Some(error_reply(
                Value::Null,
                &RpcError::InvalidRequest("id must be a string, a number or null"),
            ))
        }
    };
    let reply_id = id.clone().unwrap_or(Value::Null);
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(error_reply(
            reply_id,
            &RpcError::InvalidRequest("jsonrpc must be \"2.0\""),
        ));
    }
    let Some(method) = object.get("method").and_then(Value::as_str) else {
        return Some(error_reply(
            reply_id,
            &RpcError::InvalidRequest("method must be a string"),
        ));
    };
    let params = match object.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(params)) => params.clone(),
        Some(_) => {
            return id.map(|id| {
                error_reply(
                    id,
                    &RpcError::InvalidParams("params must be an object".into()),
                )
            })
        }
    };
    let outcome = dispatch(method, &params);
    // A notification is never answered, not even with an error.
    let id = id?;
    Some(match outcome {
        Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
        Err(e) => error_reply(id, &e),
    })
}

/// Runs one method.
fn dispatch(method: &str, params: &Map<String, Value>) -> Result<Value, RpcError> {
    match method {
        "initialize" => Ok(catalog::initialize(params)),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(catalog::tools()),
        "tools/call" => catalog::call_tool(params),
        "resources/list" => Ok(catalog::resources()),
        "prompts/list" => Ok(catalog::prompts()),
        m if m.starts_with("notifications/") => Ok(Value::Null),
        other => Err(RpcError::MethodNotFound(other.to_owned())),
    }
}

/// A JSON-RPC error response.
fn error_reply(id: Value, error: &RpcError) -> Value {
    json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": { "code": error.code(), "message": error.to_string() },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(reply: &Value) -> Option<i64> {
        reply["error"]["code"].as_i64()
    }

    #[test]
    fn parse_error_has_null_id() {
        let reply = respond(b"{not json").unwrap();
        assert_eq!(code(&reply), Some(-32700));
        assert_eq!(reply["id"], Value::Null);
    }

    #[test]
    fn invalid_requests() {
        let reply = respond(b"[]").unwrap();
        assert_eq!(code(&reply), Some(-32600));
        let reply = respond(br#"{"id":1,"method":"ping"}"#).unwrap();
        assert_eq!(code(&reply), Some(-32600));
        assert_eq!(reply["id"], 1);
        let reply = respond(br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#).unwrap();
        assert_eq!(code(&reply), Some(-32600));
        let reply = respond(br#"[1]"#).unwrap();
        assert_eq!(code(&reply[0]), Some(-32600));
    }

    #[test]
    fn notifications_are_not_answered() {
        assert_eq!(
            respond(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            None
        );
        assert_eq!(respond(br#"{"jsonrpc":"2.0","method":"nope"}"#), None);
        let reply = respond(
            br#"[{"jsonrpc":"2.0","method":"notifications/initialized"},
                 {"jsonrpc":"2.0","id":"a","method":"ping"}]"#,
        )
        .unwrap();
        assert_eq!(reply.as_array().map(Vec::len), Some(1));
        assert_eq!(reply[0]["id"], "a");
    }

    #[test]
    fn unknown_method_and_bad_params() {
        let reply = respond(br#"{"jsonrpc":"2.0","id":7,"method":"tools/destroy"}"#).unwrap();
        assert_eq!(code(&reply), Some(-32601));
        let reply =
            respond(br#"{"jsonrpc":"2.0","id":8,"method":"tools/call","params":[1]}"#).unwrap();
        assert_eq!(code(&reply), Some(-32602));
    }
}
