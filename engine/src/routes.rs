//! Routing by policy: which upstream cluster (and which model) an allowed
//! request goes to, as versioned bundle configuration.
//!
//! The filter only *chooses*: it names the cluster in a request header
//! (the bundle's `routes.header`) that an Envoy route reads with
//! `cluster_header`, and may rewrite the body's `model`. Envoy does the
//! rest (load balancing, health, outlier detection, retries within the
//! cluster). Rules are ordered, the first whose conditions hold wins; no
//! match sets no header and Envoy's default route applies.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::bundle::{Rule, RuleEffect};
use crate::claims::Claims;
use crate::conditions::Conditions;
use crate::policy::CompiledRule;
use crate::request::RequestAttrs;
use crate::strict_json::{self, Options};

/// The header named when a bundle sets none.
pub const DEFAULT_ROUTE_HEADER: &str = "x-mcp-guard-cluster";

/// The `models` key that matches any model without its own entry.
pub const ANY_MODEL: &str = "*";

/// Longest cluster name accepted.
pub const MAX_CLUSTER_LEN: usize = 128;

/// The bundle's `routes` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    /// Request header carrying the chosen cluster (the Envoy route's
    /// `cluster_header`). A client-sent copy is always removed.
    #[serde(default = "default_header")]
    pub header: String,
    /// Ordered rules; the first match wins.
    #[serde(default)]
    pub rules: Vec<RouteRule>,
}

fn default_header() -> String {
    DEFAULT_ROUTE_HEADER.into()
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// Unique id, recorded with every request it routes.
    pub id: String,
    /// Free text for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The same conditions as access rules; empty matches every request.
    #[serde(default)]
    pub when: Conditions,
    /// Envoy cluster the request goes to.
    pub cluster: String,
    /// Model rewrites: the body's `model` alias → the model this cluster
    /// serves; `*` for any other model.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, String>,
    /// Cluster the request is replayed to when `cluster` answers 5xx or
    /// cannot be reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

impl Routes {
    /// Every problem of the section that is not a condition's, as
    /// (path under `$.routes`, message).
    pub fn issues(&self) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("$.routes.rules[{i}]");
            if rule.id.is_empty() {
                issues.push((format!("{at}.id"), "must not be empty".into()));
            } else if !seen.insert(rule.id.as_str()) {
                issues.push((format!("{at}.id"), "duplicate route id".into()));
            }
            if let Some(message) = cluster_problem(&rule.cluster) {
                issues.push((format!("{at}.cluster"), message));
            }
            if let Some(fallback) = &rule.fallback {
                if let Some(message) = cluster_problem(fallback) {
                    issues.push((format!("{at}.fallback"), message));
                } else if *fallback == rule.cluster {
                    issues.push((
                        format!("{at}.fallback"),
                        "must differ from `cluster`".into(),
                    ));
                }
            }
            for (alias, model) in &rule.models {
                let mat = format!("{at}.models[{alias:?}]");
                if alias.is_empty() {
                    issues.push((mat.clone(), "model alias must not be empty".into()));
                }
                if model.is_empty() || model.chars().any(char::is_control) {
                    issues.push((
                        mat,
                        "must be a non-empty model name without control characters".into(),
                    ));
                }
            }
        }
        issues
    }
}

/// Why a cluster name is refused; `None` when it is fine. Envoy accepts
/// almost any name, but the name travels in a header: only a safe
/// charset is allowed.
fn cluster_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_CLUSTER_LEN {
        return Some(format!("is longer than {MAX_CLUSTER_LEN} bytes"));
    }
    let safe = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'|'));
    (!safe).then(|| "must use only ASCII letters, digits, `-`, `_`, `.`, `:` and `|`".into())
}

/// The route chosen for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteChoice {
    /// The rule that matched.
    pub rule: Arc<str>,
    /// Where the request goes.
    pub cluster: Arc<str>,
    /// The model the body's `model` is rewritten to, when it changes.
    pub model: Option<Arc<str>>,
    /// Where a failed answer is replayed.
    pub fallback: Option<Arc<str>>,
}

/// One rule compiled: its conditions as an access rule, plus its target.
#[derive(Debug, Clone)]
struct CompiledRoute {
    /// The conditions as a rule, so the access rules' evaluator matches
    /// them. `deny` effect: conditions are matched as written, without
    /// the allow-only restrictions on workload callers.
    rule: Rule,
    compiled: CompiledRule,
    cluster: Arc<str>,
    models: BTreeMap<String, Arc<str>>,
    fallback: Option<Arc<str>>,
}

/// The `routes` section compiled once at bundle activation.
#[derive(Debug, Clone)]
pub struct CompiledRoutes {
    header: String,
    rules: Vec<CompiledRoute>,
}

impl CompiledRoutes {
    /// Compiles a validated section.
    pub fn new(routes: &Routes) -> Self {
        let rules = routes
            .rules
            .iter()
            .map(|r| {
                let rule = as_rule(r);
                CompiledRoute {
                    compiled: CompiledRule::new(&rule),
                    rule,
                    cluster: r.cluster.as_str().into(),
                    models: r
                        .models
                        .iter()
                        .map(|(k, v)| (k.clone(), Arc::from(v.as_str())))
                        .collect(),
                    fallback: r.fallback.as_deref().map(Arc::from),
                }
            })
            .collect();
        Self {
            header: routes.header.clone(),
            rules,
        }
    }

    /// The header carrying the chosen cluster.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// The first rule whose conditions hold, with the model rewrite it
    /// asks for this request's model.
    pub fn choose(&self, claims: &Claims, request: &RequestAttrs<'_>) -> Option<RouteChoice> {
        let route = self.rules.iter().find(|r| {
            r.compiled
                .matches(&r.rule, claims, request, &mut crate::policy::no_trace())
        })?;
        let model = request.model.and_then(|m| {
            route
                .models
                .get(m)
                .or_else(|| route.models.get(ANY_MODEL))
                .filter(|to| &***to != m)
                .cloned()
        });
        Some(RouteChoice {
            rule: route.compiled.id.clone(),
            cluster: route.cluster.clone(),
            model,
            fallback: route.fallback.clone(),
        })
    }
}

/// A route rule as an access rule with the same conditions.
pub fn as_rule(route: &RouteRule) -> Rule {
    Rule {
        id: route.id.clone(),
        effect: RuleEffect::Deny,
        dry_run: false,
        description: String::new(),
        when: route.when.clone(),
    }
}

/// Why a body's `model` could not be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// Not strict JSON, or not an object.
    #[error("body is not a strict JSON object")]
    NotAnObject,
    /// The top-level `model` is not a string.
    #[error("model is not a string")]
    NotAString,
}

impl RewriteError {
    /// Stable code for replies and logs.
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAnObject => "model_rewrite_not_object",
            Self::NotAString => "model_rewrite_bad_model",
        }
    }
}

/// `body` with its top-level `model` replaced by `model`; every other
/// byte kept. `Ok(None)` when the body names no model. The body is read
/// strictly first ([`strict_json`], request options): no duplicate or
/// case-variant keys, so the member replaced is the one every parser
/// reads, also when its key is written with escapes (`"mod\u0065l"`).
pub fn rewrite_model(body: &[u8], model: &str) -> Result<Option<Vec<u8>>, RewriteError> {
    let value =
        strict_json::parse(body, Options::REQUEST).map_err(|_| RewriteError::NotAnObject)?;
    let object = value.as_object().ok_or(RewriteError::NotAnObject)?;
    match object.get("model") {
        None => return Ok(None),
        Some(serde_json::Value::String(_)) => {}
        Some(_) => return Err(RewriteError::NotAString),
    }
    // Spans of the top-level members' values, as written.
    let members: BTreeMap<String, &RawValue> =
        serde_json::from_slice(body).map_err(|_| RewriteError::NotAnObject)?;
    let raw = members.get("model").ok_or(RewriteError::NotAnObject)?;
    let text = raw.get();
    let start = (text.as_ptr() as usize)
        .checked_sub(body.as_ptr() as usize)
        .ok_or(RewriteError::NotAnObject)?;
    let end = start + text.len();
    let (Some(head), Some(tail)) = (body.get(..start), body.get(end..)) else {
        return Err(RewriteError::NotAnObject);
    };
    let encoded = serde_json::to_string(model).map_err(|_| RewriteError::NotAString)?;
    let mut out = Vec::with_capacity(body.len() + encoded.len());
    out.extend_from_slice(head);
    out.extend_from_slice(encoded.as_bytes());
    out.extend_from_slice(tail);
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_the_top_level_model() {
        let body = br#"{ "model" : "gpt-4o", "messages":[{"model":"gpt-4o","n":1.50}] }"#;
        let out = rewrite_model(body, "llama3-70b").unwrap().unwrap();
        assert_eq!(
            out,
            br#"{ "model" : "llama3-70b", "messages":[{"model":"gpt-4o","n":1.50}] }"#
        );
    }

    #[test]
    fn escaped_keys_and_values_are_found() {
        let body = br#"{"mod\u0065l":"gpt\u002d4o","x":1}"#;
        let out = rewrite_model(body, "m\"x").unwrap().unwrap();
        assert_eq!(out, br#"{"mod\u0065l":"m\"x","x":1}"#);
    }

    #[test]
    fn ambiguous_or_odd_bodies_are_refused() {
        // Duplicate keys, also spelled differently.
        assert_eq!(
            rewrite_model(br#"{"model":"a","mod\u0065l":"b"}"#, "c"),
            Err(RewriteError::NotAnObject)
        );
        assert_eq!(
            rewrite_model(br#"{"model":"a","Model":"b"}"#, "c"),
            Err(RewriteError::NotAnObject)
        );
        assert_eq!(
            rewrite_model(br#"{"model":7}"#, "c"),
            Err(RewriteError::NotAString)
        );
        assert_eq!(
            rewrite_model(br#"[{"model":"a"}]"#, "c"),
            Err(RewriteError::NotAnObject)
        );
        assert_eq!(rewrite_model(br#"{"x":1}"#, "c"), Ok(None));
        assert_eq!(
            rewrite_model(br#"{"model":"a"} x"#, "c"),
            Err(RewriteError::NotAnObject)
        );
    }

    fn policy() -> crate::Policy {
        crate::Policy::compile(
            br#"{"name":"r","version":1,"rules":[{"id":"all","effect":"allow"}],
              "routes":{"rules":[
                {"id":"eu","when":{"headers":[{"name":"x-region","equals":"eu"}]},
                 "cluster":"llm-eu","models":{"gpt-4o":"mistral-eu"}},
                {"id":"cards","when":{"prompt_pii":["card"]},"cluster":"llm-private",
                 "models":{"*":"llama-private"},"fallback":"llm-default"}]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn first_match_wins_with_its_model_rewrite() {
        let policy = policy();
        assert!(policy.header_names().contains(&"x-region".to_string()));
        assert!(policy.needs_body(), "prompt_pii and rewrites read the body");
        let claims = Claims::default();
        let headers = [("x-region", "eu")];
        let eu = RequestAttrs::new("POST", "/", "h")
            .with_headers(&headers)
            .with_model(Some("gpt-4o"));
        let choice = policy.route(&claims, &eu).unwrap();
        assert_eq!((&*choice.rule, &*choice.cluster), ("eu", "llm-eu"));
        assert_eq!(choice.model.as_deref(), Some("mistral-eu"));
        assert_eq!(choice.fallback, None);
        // No alias, no `*`: no rewrite.
        let other = eu.with_model(Some("o1"));
        assert_eq!(policy.route(&claims, &other).unwrap().model, None);
        // A card in the prompt, no region header.
        let pii = policy.prompt_pii(br#"{"model":"llama-private","q":"4111 1111 1111 1111"}"#);
        let carded = RequestAttrs::new("POST", "/", "h")
            .with_model(Some("llama-private"))
            .with_prompt_pii(pii);
        let choice = policy.route(&claims, &carded).unwrap();
        assert_eq!(&*choice.cluster, "llm-private");
        assert_eq!(choice.model, None, "already the target model");
        assert_eq!(choice.fallback.as_deref(), Some("llm-default"));
        // Nothing matches: no route.
        assert!(policy
            .route(&claims, &RequestAttrs::new("POST", "/", "h"))
            .is_none());
    }

    #[test]
    fn cluster_names_are_checked() {
        assert!(cluster_problem("llm-private").is_none());
        assert!(cluster_problem("outbound|443||api.example").is_none());
        assert!(cluster_problem("a b").is_some());
        assert!(cluster_problem("").is_some());
        assert!(cluster_problem("a\r\nx: y").is_some());
    }
}
