//! The `resource` section as written in a bundle, and its checks.

use serde::{Deserialize, Serialize};

use super::uri::parse_uri;

/// The `resource` section of a bundle: this MCP server as an OAuth 2.1
/// protected resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSettings {
    /// Canonical URI of this MCP server (`https://mcp.example.com/mcp`):
    /// absolute, no fragment, no query; `http` only for loopback hosts.
    pub resource: String,
    /// Issuer URLs of the authorization servers clients get tokens from.
    pub authorization_servers: Vec<String>,
    /// Scopes clients may request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// Human-readable name of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// URL of documentation for developers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// How tokens are presented; only `header` (the filter reads no other).
    #[serde(default = "default_bearer_methods")]
    pub bearer_methods_supported: Vec<String>,
    /// Audiences a token must name (one of); defaults to `[resource]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiences: Option<Vec<String>>,
}

pub(super) fn default_bearer_methods() -> Vec<String> {
    vec!["header".into()]
}

/// RFC 6749 §3.3 scope-token: `%x21 / %x23-5B / %x5D-7E`, non-empty.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

impl ResourceSettings {
    /// Every problem in the section, as (JSON path under `$.resource`,
    /// message).
    pub fn issues(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |path: String, message: &str| out.push((path, message.to_owned()));
        if let Err(e) = parse_uri(&self.resource) {
            add("$.resource.resource".into(), e);
        }
        if self.authorization_servers.is_empty() {
            add(
                "$.resource.authorization_servers".into(),
                "must name at least one authorization server",
            );
        }
        for (i, url) in self.authorization_servers.iter().enumerate() {
            if let Err(e) = parse_uri(url) {
                add(format!("$.resource.authorization_servers[{i}]"), e);
            }
        }
        for (i, scope) in self.scopes_supported.iter().enumerate() {
            if !is_scope_token(scope) {
                add(
                    format!("$.resource.scopes_supported[{i}]"),
                    "must be an OAuth scope token (printable ASCII, no space, `\"` or `\\`)",
                );
            } else if self
                .scopes_supported
                .get(..i)
                .is_some_and(|s| s.contains(scope))
            {
                add(
                    format!("$.resource.scopes_supported[{i}]"),
                    "duplicate scope",
                );
            }
        }
        if let Some(name) = &self.resource_name {
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                add(
                    "$.resource.resource_name".into(),
                    "must be non-empty text without control characters",
                );
            }
        }
        if let Some(url) = &self.resource_documentation {
            if let Err(e) = parse_uri(url) {
                add("$.resource.resource_documentation".into(), e);
            }
        }
        if self.bearer_methods_supported.is_empty() {
            add(
                "$.resource.bearer_methods_supported".into(),
                "must not be empty (the filter reads tokens from headers: `header`)",
            );
        }
        for (i, m) in self.bearer_methods_supported.iter().enumerate() {
            if m != "header" {
                add(
                    format!("$.resource.bearer_methods_supported[{i}]"),
                    "only `header` is supported: the filter reads tokens from request headers only",
                );
            }
        }
        if let Some(audiences) = &self.audiences {
            if audiences.is_empty() {
                add(
                    "$.resource.audiences".into(),
                    "must not be empty (leave it out to require the resource URI)",
                );
            }
            for (i, a) in audiences.iter().enumerate() {
                if a.is_empty() {
                    add(format!("$.resource.audiences[{i}]"), "must not be empty");
                }
            }
        }
        out
    }
}
