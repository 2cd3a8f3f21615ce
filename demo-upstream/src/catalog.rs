//! What the demo MCP server offers: three tools (one leaking PII, one
//! harmless, one destructive, so policies have something to tell apart),
//! a resource and a prompt.

use serde_json::{json, Map, Value};

use crate::content::{DELETE_CUSTOMER_TEXT, SEARCH_CUSTOMERS_TEXT, SERVER_NAME, WEATHER_TEXT};
use crate::mcp::RpcError;

/// Protocol versions this server speaks, newest first.
const PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-03-26", "2024-11-05"];

/// The `initialize` result: the client's protocol version when known,
/// otherwise the newest this server speaks.
pub(crate) fn initialize(params: &Map<String, Value>) -> Value {
    let requested = params.get("protocolVersion").and_then(Value::as_str);
    let version = requested
        .and_then(|v| PROTOCOL_VERSIONS.iter().find(|known| **known == v))
        .unwrap_or(&PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": false },
            "resources": { "listChanged": false, "subscribe": false },
            "prompts": { "listChanged": false },
        },
        "serverInfo": { "name": SERVER_NAME, "version": env!("CARGO_PKG_VERSION") },
    })
}

/// The `tools/list` result.
pub(crate) fn tools() -> Value {
    json!({
        "tools": [
            {
                "name": "search_customers",
                "description": "Search the customer database by name or e-mail.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "query": { "type": "string" } },
                    "required": ["query"],
                },
            },
            {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "city": { "type": "string" } },
                    "required": ["city"],
                },
            },
            {
                "name": "delete_customer",
                "description": "Permanently delete a customer record.",
                "inputSchema": {
                    "type": "object",
                    "properties": { "customer_id": { "type": "string" } },
                    "required": ["customer_id"],
                },
            },
        ]
    })
}

/// The `tools/call` result for `params.name` with `params.arguments`.
pub(crate) fn call_tool(params: &Map<String, Value>) -> Result<Value, RpcError> {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Err(RpcError::InvalidParams(
            "params.name must be a string".into(),
        ));
    };
    match params.get("arguments") {
        None | Some(Value::Null | Value::Object(_)) => {}
        Some(_) => {
            return Err(RpcError::InvalidParams(
                "params.arguments must be an object".into(),
            ))
        }
    }
    let text = match name {
        "search_customers" => SEARCH_CUSTOMERS_TEXT,
        "get_weather" => WEATHER_TEXT,
        "delete_customer" => DELETE_CUSTOMER_TEXT,
        other => return Err(RpcError::InvalidParams(format!("unknown tool {other:?}"))),
    };
    Ok(json!({
        "content": [{ "type": "text", "text": text }],
        "isError": false,
    }))
}

/// The `resources/list` result.
pub(crate) fn resources() -> Value {
    json!({
        "resources": [{
            "uri": "demo://customers/schema",
            "name": "customer-schema",
            "description": "Fields of a customer record.",
            "mimeType": "application/json",
        }]
    })
}

/// The `prompts/list` result.
pub(crate) fn prompts() -> Value {
    json!({
        "prompts": [{
            "name": "summarise_customer",
            "description": "Summarise a customer's account history.",
            "arguments": [{ "name": "customer_id", "required": true }],
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }

    #[test]
    fn initialize_negotiates_the_version() {
        let known = initialize(&params(json!({"protocolVersion": "2024-11-05"})));
        assert_eq!(known["protocolVersion"], "2024-11-05");
        let unknown = initialize(&params(json!({"protocolVersion": "1999-01-01"})));
        assert_eq!(unknown["protocolVersion"], PROTOCOL_VERSIONS[0]);
    }

    #[test]
    fn unknown_tool_is_invalid_params() {
        let err = call_tool(&params(json!({"name": "launch"}))).unwrap_err();
        assert_eq!(err.code(), -32602);
        let err = call_tool(&params(json!({"name": "get_weather", "arguments": 3}))).unwrap_err();
        assert_eq!(err.code(), -32602);
    }
}
