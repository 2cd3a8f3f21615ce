//! Why a compiled policy must read request bodies.
//!
//! Reading a body costs holding the request until it ends. When the only
//! reason is the MCP call and the request announces it in the
//! `Mcp-Method` / `Mcp-Name` headers (MCP 2026-07-28), the filter can
//! decide at the headers and only hold the body to verify it; any other
//! reason (a model rule, a future body condition) keeps the decision at
//! the end of the body.

use crate::bundle::Rule;

/// The reasons a policy reads request bodies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyNeeds {
    /// Some rule matches the MCP call (method, tool, resource, prompt).
    pub mcp: bool,
    /// Some rule matches the model, which the body's `model` may name.
    pub model: bool,
    /// Some rule reads another part of the body (e.g. tool arguments);
    /// set by the conditions that do.
    pub other: bool,
}

impl BodyNeeds {
    /// What the rules of a bundle read.
    pub fn of(rules: &[Rule]) -> Self {
        Self {
            mcp: rules.iter().any(|r| r.when.mcp.is_some()),
            model: rules.iter().any(|r| !r.when.models.is_empty()),
            // Argument tests read `params.arguments`, templates need the
            // URI in canonical form: both only the body can show, so a
            // request announcing its call in headers still waits for it.
            // `prompt_pii` classifies the whole body.
            other: rules.iter().any(|r| !r.when.prompt_pii.is_empty())
                || rules
                    .iter()
                    .filter_map(|r| r.when.mcp.as_ref())
                    .any(|m| !m.arguments.is_empty() || !m.resource_templates.is_empty()),
        }
    }

    /// Also reads the MCP call when `mcp` holds (tool pins check every
    /// call, whatever the rules say).
    pub fn with_mcp(mut self, mcp: bool) -> Self {
        self.mcp |= mcp;
        self
    }

    /// Also reads the model when `model` holds (a limit keyed by it).
    pub fn with_model(mut self, model: bool) -> Self {
        self.model |= model;
        self
    }

    /// What either reads.
    pub fn union(self, other: Self) -> Self {
        Self {
            mcp: self.mcp || other.mcp,
            model: self.model || other.model,
            other: self.other || other.other,
        }
    }

    /// Whether the body must be read at all.
    pub fn any(self) -> bool {
        self.mcp || self.model || self.other
    }

    /// Whether the MCP call is the only thing the rules read from the
    /// body, so announcing headers can stand in for it at decision time.
    pub fn only_mcp(self) -> bool {
        self.mcp && !self.model && !self.other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mcp_needs_mcp_and_nothing_else() {
        let mcp = BodyNeeds {
            mcp: true,
            ..BodyNeeds::default()
        };
        assert!(mcp.any() && mcp.only_mcp());
        let both = BodyNeeds { model: true, ..mcp };
        assert!(both.any() && !both.only_mcp());
        let other = BodyNeeds { other: true, ..mcp };
        assert!(!other.only_mcp());
        assert!(!BodyNeeds::default().any() && !BodyNeeds::default().only_mcp());
    }

    #[test]
    fn prompt_pii_reads_the_body() {
        let rule: Rule = serde_json::from_str(
            r#"{"id":"a","effect":"deny","when":{"mcp":{"methods":["tools/call"]},"prompt_pii":["card"]}}"#,
        )
        .unwrap();
        let needs = BodyNeeds::of(&[rule]);
        assert!(needs.other && needs.any() && !needs.only_mcp());
    }
}
