//! An index from request attributes to the rules that could match, so the
//! cost of a decision grows with the rules that share the request's path,
//! tool or model rather than with the whole bundle.
//!
//! Each rule is filed under one key that is *necessary* for it to match
//! (an exact tool name, an exact path, a literal first path segment, an
//! exact model), or in `always` when it has none; lookup unions the buckets
//! the request's keys select. Evaluation still checks every condition, so
//! the index only prunes.

use std::collections::HashMap;

use crate::bundle::PathCondition;
use crate::mcp::TargetKind;
use crate::request::RequestAttrs;

use super::eval::CompiledRule;

/// Rule positions (into the policy's rule list) by key.
#[derive(Debug, Clone, Default)]
pub struct RuleIndex {
    by_tool: HashMap<String, Vec<u32>>,
    by_path: HashMap<String, Vec<u32>>,
    by_segment: HashMap<String, Vec<u32>>,
    by_model: HashMap<String, Vec<u32>>,
    always: Vec<u32>,
}

fn exact(names: &[String]) -> bool {
    !names.is_empty() && names.iter().all(|n| !n.ends_with('*'))
}

/// The first path segment (`/v1/chat` → `v1`).
fn first_segment(path: &str) -> &str {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .next()
        .unwrap_or_default()
}

/// A prefix's first segment when the prefix contains it whole (`/v1/` or
/// `/v1` exactly, not `/v`).
fn prefix_segment(prefix: &str) -> Option<&str> {
    let rest = prefix.strip_prefix('/')?;
    let (segment, _) = rest.split_once('/')?;
    (!segment.is_empty()).then_some(segment)
}

impl RuleIndex {
    /// Files rule `position` under its most selective key.
    pub fn insert(&mut self, position: u32, rule: &CompiledRule) {
        let when = &rule.rule.when;
        if let Some(mcp) = when.mcp.as_ref().filter(|m| exact(&m.tools)) {
            for tool in &mcp.tools {
                self.by_tool.entry(tool.clone()).or_default().push(position);
            }
            return;
        }
        let segment = match &when.path {
            Some(PathCondition::Exact(p)) => {
                self.by_path.entry(p.clone()).or_default().push(position);
                return;
            }
            Some(PathCondition::Prefix(p)) => prefix_segment(p),
            Some(PathCondition::Template(_)) => rule
                .template
                .as_ref()
                .and_then(|t| t.literal_first_segment()),
            None => None,
        };
        if let Some(segment) = segment {
            self.by_segment
                .entry(segment.to_string())
                .or_default()
                .push(position);
        } else if exact(&when.models) {
            for model in &when.models {
                self.by_model
                    .entry(model.clone())
                    .or_default()
                    .push(position);
            }
        } else {
            self.always.push(position);
        }
    }

    /// Positions of the rules that could match `request`, ascending.
    pub fn candidates(&self, request: &RequestAttrs<'_>, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(&self.always);
        let tool = request
            .mcp
            .filter(|c| c.target_kind() == Some(TargetKind::Tool))
            .and_then(|c| c.target.as_deref());
        let buckets = [
            tool.and_then(|t| self.by_tool.get(t)),
            self.by_path.get(request.path),
            self.by_segment.get(first_segment(request.path)),
            request.model.and_then(|m| self.by_model.get(m)),
        ];
        for bucket in buckets.into_iter().flatten() {
            out.extend_from_slice(bucket);
        }
        out.sort_unstable();
        out.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_segments_need_a_whole_segment() {
        assert_eq!(prefix_segment("/v1/"), Some("v1"));
        assert_eq!(prefix_segment("/v1/chat"), Some("v1"));
        assert_eq!(prefix_segment("/v1"), None);
        assert_eq!(prefix_segment("/"), None);
        assert_eq!(first_segment("/v1/chat"), "v1");
        assert_eq!(first_segment("/"), "");
    }
}
