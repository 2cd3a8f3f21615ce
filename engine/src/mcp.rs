//! AI attributes read from request bodies: the model of an LLM call and
//! the MCP JSON-RPC calls of a request, plus filtering of MCP list answers
//! down to what the caller may use.

use serde_json::Value;

/// One MCP JSON-RPC call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCall {
    /// JSON-RPC method, e.g. `tools/call`.
    pub method: String,
    /// The tool name, resource URI or prompt name the call targets.
    pub target: Option<String>,
    /// JSON-RPC id (absent for notifications), kept to match answers.
    pub id: Option<Value>,
}

impl McpCall {
    /// A call with no target, e.g. `tools/list`.
    pub fn new(method: &str) -> Self {
        Self {
            method: method.to_string(),
            target: None,
            id: None,
        }
    }

    /// A call targeting a tool / resource / prompt.
    pub fn targeting(method: &str, target: &str) -> Self {
        Self {
            target: Some(target.to_string()),
            ..Self::new(method)
        }
    }

    /// What kind of target this call's method takes.
    pub fn target_kind(&self) -> Option<TargetKind> {
        TargetKind::of_method(&self.method)
    }
}

/// The three kinds of MCP objects a call can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    /// `tools/call` → `params.name`.
    Tool,
    /// `resources/read`, `resources/subscribe` → `params.uri`.
    Resource,
    /// `prompts/get` → `params.name`.
    Prompt,
}

impl TargetKind {
    /// The kind targeted by a call method.
    pub fn of_method(method: &str) -> Option<Self> {
        match method {
            "tools/call" => Some(Self::Tool),
            "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                Some(Self::Resource)
            }
            "prompts/get" => Some(Self::Prompt),
            _ => None,
        }
    }

    /// The kind listed by a list method, with the list's field and the
    /// element field naming each entry.
    pub fn of_list_method(method: &str) -> Option<(Self, &'static str, &'static str)> {
        match method {
            "tools/list" => Some((Self::Tool, "tools", "name")),
            "resources/list" => Some((Self::Resource, "resources", "uri")),
            "prompts/list" => Some((Self::Prompt, "prompts", "name")),
            _ => None,
        }
    }

    /// The call method that uses an object of this kind.
    pub fn call_method(self) -> &'static str {
        match self {
            Self::Tool => "tools/call",
            Self::Resource => "resources/read",
            Self::Prompt => "prompts/get",
        }
    }

    fn param(self) -> &'static str {
        match self {
            Self::Resource => "uri",
            Self::Tool | Self::Prompt => "name",
        }
    }
}

/// What a request body says about the request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodyAttrs {
    /// `model` of an OpenAI-style body.
    pub model: Option<String>,
    /// MCP calls: one, or every call of a batch.
    pub mcp: Vec<McpCall>,
    /// The body was a JSON-RPC batch.
    pub batch: bool,
}

/// Why a body that should be JSON-RPC could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Not JSON at all.
    #[error("request body is not JSON")]
    NotJson,
    /// An empty batch or an element that is not an object.
    #[error("malformed JSON-RPC batch")]
    BadBatch,
}

fn call_of(object: &serde_json::Map<String, Value>) -> Option<McpCall> {
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return None;
    }
    let method = object.get("method")?.as_str()?;
    let target = TargetKind::of_method(method)
        .and_then(|kind| object.get("params")?.get(kind.param())?.as_str())
        .map(str::to_string);
    Some(McpCall {
        method: method.to_string(),
        target,
        id: object.get("id").cloned(),
    })
}

/// Reads the model and MCP calls from a JSON body, parsing it once.
/// Non-JSON bodies are an error only when the caller needs attributes.
pub fn read_body(body: &[u8]) -> Result<BodyAttrs, BodyError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| BodyError::NotJson)?;
    let mut attrs = BodyAttrs::default();
    match &value {
        Value::Object(object) => {
            attrs.model = object
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_string);
            attrs.mcp.extend(call_of(object));
        }
        Value::Array(items) => {
            if items.is_empty() {
                return Err(BodyError::BadBatch);
            }
            attrs.batch = true;
            for item in items {
                let object = item.as_object().ok_or(BodyError::BadBatch)?;
                // A batch element that is not a JSON-RPC call (e.g. a
                // response) is ignored: only calls are decided.
                attrs.mcp.extend(call_of(object));
            }
        }
        _ => {}
    }
    Ok(attrs)
}

/// Removes from MCP list answers every entry the caller may not use.
///
/// `list_calls` are the list calls of the request (with their ids);
/// `allowed(kind, name)` decides one entry. Returns the new body when
/// anything was removed, with the number removed; `None` when the body is
/// unchanged or not a JSON-RPC answer.
pub fn filter_list_answer(
    body: &[u8],
    list_calls: &[McpCall],
    mut allowed: impl FnMut(TargetKind, &str) -> bool,
) -> Option<(Vec<u8>, usize)> {
    let mut value: Value = serde_json::from_slice(body).ok()?;
    let mut removed = 0;
    let mut filter_one = |answer: &mut Value| {
        let id = answer.get("id").cloned();
        let Some(call) = list_calls
            .iter()
            .find(|c| c.id == id || (list_calls.len() == 1 && c.id.is_none()))
        else {
            return;
        };
        let Some((kind, field, key)) = TargetKind::of_list_method(&call.method) else {
            return;
        };
        let Some(entries) = answer
            .get_mut("result")
            .and_then(|r| r.get_mut(field))
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        let before = entries.len();
        entries.retain(|entry| {
            entry
                .get(key)
                .and_then(Value::as_str)
                .is_some_and(|name| allowed(kind, name))
        });
        removed += before - entries.len();
    };
    match &mut value {
        Value::Array(answers) => answers.iter_mut().for_each(&mut filter_one),
        answer @ Value::Object(_) => filter_one(answer),
        _ => return None,
    }
    if removed == 0 {
        return None;
    }
    serde_json::to_vec(&value)
        .ok()
        .map(|bytes| (bytes, removed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_model_and_single_calls() {
        let a = read_body(br#"{"model":"gpt-4o","messages":[]}"#).unwrap();
        assert_eq!(a.model.as_deref(), Some("gpt-4o"));
        assert!(a.mcp.is_empty());
        let a = read_body(
            br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search"}}"#,
        )
        .unwrap();
        assert_eq!(
            a.mcp,
            vec![McpCall {
                method: "tools/call".into(),
                target: Some("search".into()),
                id: Some(json!(7))
            }]
        );
        let a = read_body(
            br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#,
        )
        .unwrap();
        assert_eq!(a.mcp[0].target.as_deref(), Some("file:///a"));
    }

    #[test]
    fn reads_batches_and_rejects_bad_ones() {
        let a = read_body(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}]"#).unwrap();
        assert!(a.batch);
        assert_eq!(a.mcp.len(), 2);
        assert_eq!(read_body(b"[]"), Err(BodyError::BadBatch));
        assert_eq!(read_body(b"[1]"), Err(BodyError::BadBatch));
        assert_eq!(read_body(b"{nope"), Err(BodyError::NotJson));
    }

    #[test]
    fn tool_calls_without_a_name_have_no_target() {
        let a = read_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":5}}"#)
            .unwrap();
        assert_eq!(a.mcp[0].target, None);
    }

    #[test]
    fn list_answers_keep_only_allowed_entries() {
        let calls = vec![McpCall {
            id: Some(json!(1)),
            ..McpCall::new("tools/list")
        }];
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"},{"nameless":1}]}}"#;
        let (out, removed) =
            filter_list_answer(body, &calls, |k, n| k == TargetKind::Tool && n == "a").unwrap();
        assert_eq!(removed, 2);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["result"]["tools"], json!([{"name": "a"}]));
        let (_, removed) = filter_list_answer(body, &calls, |_, _| true).unwrap();
        assert_eq!(removed, 1, "an entry without a name cannot be allowed");
        let other = vec![
            McpCall {
                id: Some(json!(9)),
                ..McpCall::new("tools/list")
            },
            McpCall::new("x"),
        ];
        assert!(
            filter_list_answer(body, &other, |_, _| false).is_none(),
            "ids must match"
        );
    }
}
