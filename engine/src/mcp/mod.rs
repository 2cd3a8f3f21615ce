//! AI attributes read from request bodies: the model of an LLM call and
//! the MCP JSON-RPC calls of a request ([`body`]), plus filtering of MCP
//! list answers down to what the caller may use ([`list`]). Both read JSON
//! with [`crate::strict_json`], so the filter never authorises a body the
//! upstream could read differently.

mod body;
pub mod headers;
mod list;

pub use body::{read_body, read_body_with, BodyAttrs, BodyError, BodyOptions};
pub use headers::{read_headers, verify_body, HeaderMismatch};
pub use list::{
    filter_list_answers, filter_list_answers_pinned, for_each_tool, ListAnswerError, ListOutcome,
};

use serde_json::Value;

use crate::arguments::CallArguments;

/// One MCP JSON-RPC call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCall {
    /// JSON-RPC method, e.g. `tools/call`.
    pub method: String,
    /// The tool name, resource URI or prompt name the call targets.
    pub target: Option<String>,
    /// JSON-RPC id (absent for notifications), kept to match answers.
    pub id: Option<Value>,
    /// `params.arguments`, read only when a rule tests them.
    pub arguments: CallArguments,
}

impl McpCall {
    /// A call with no target, e.g. `tools/list`.
    pub fn new(method: &str) -> Self {
        Self {
            method: method.to_string(),
            target: None,
            id: None,
            arguments: CallArguments::Absent,
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

    /// The `params` member naming the target.
    pub(crate) fn param(self) -> &'static str {
        match self {
            Self::Resource => "uri",
            Self::Tool | Self::Prompt => "name",
        }
    }
}
