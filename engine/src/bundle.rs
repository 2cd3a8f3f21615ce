//! The policy bundle format (v1): what security teams push and the filter
//! enforces. Parsing is strict (unknown fields are errors) so a typo cannot
//! silently disable a rule.

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use crate::conditions::{
    ClaimCondition, ClaimTest, Conditions, HeaderCondition, McpCondition, PathCondition, Relation,
    TimeWindow, Weekday, CLAIM_OPERATORS,
};
use crate::resource_template::ResourceTemplate;
use crate::template::PathTemplate;

/// A versioned policy document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Bundle name; filters subscribe to a name.
    pub name: String,
    /// Monotonic version; a filter never activates an older one.
    pub version: u64,
    /// Free text for humans.
    #[serde(default)]
    pub description: String,
    /// Bundle-wide dry run: every decision is computed and logged as it
    /// would be, but traffic passes.
    #[serde(default)]
    pub dry_run: bool,
    /// Where the caller's claims come from.
    #[serde(default)]
    pub identity: Identity,
    /// Where AI attributes come from.
    #[serde(default)]
    pub attributes: Attributes,
    /// Bounds on what the filter buffers.
    #[serde(default)]
    pub limits: Limits,
    /// Claims passed to the upstream as headers on allowed requests.
    #[serde(default)]
    pub inject: Vec<Injection>,
    /// Rules; deny rules are evaluated before allow rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What to scrub from responses.
    #[serde(default)]
    pub pii: PiiSettings,
    /// RFC 8693 token exchange: allowed requests reach the upstream with a
    /// token issued for it, never the caller's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<crate::token_exchange::TokenExchange>,
    /// Reviewed tool definitions: changed tools are hidden from lists and
    /// their calls denied (see [`crate::pins`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_pins: Option<crate::pins::SharedPins>,
    /// This server as an OAuth 2.1 protected resource (MCP authorization):
    /// metadata, challenges, audience binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<crate::resource::ResourceSettings>,
    /// Routing by policy: which cluster (and model) allowed requests go
    /// to (see [`crate::routes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<crate::routes::Routes>,
}

/// Identity sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// `payload_in_metadata` key of Envoy's `jwt_authn` filter (Istio:
    /// `payload`).
    #[serde(default = "default_metadata_key")]
    pub jwt_authn_metadata: String,
    /// Verify tokens in the filter itself against issuers shipped here,
    /// for requests that carry no `jwt_authn` payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<crate::jwt::VerifyConfig>,
    /// Claim naming the caller in decisions and logs.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
    /// Workloads identified by their peer SPIFFE ID (mTLS) when they
    /// carry no token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workloads: Option<crate::peer::WorkloadIdentity>,
    /// Pass the client's `Authorization` (and `verify.header`) on to the
    /// upstream. Off by default: MCP servers must not pass tokens through.
    #[serde(default)]
    pub forward_authorization: bool,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            jwt_authn_metadata: default_metadata_key(),
            verify: None,
            subject_claim: default_subject_claim(),
            workloads: None,
            forward_authorization: false,
        }
    }
}

fn default_metadata_key() -> String {
    "jwt_payload".into()
}

fn default_subject_claim() -> String {
    "sub".into()
}

/// Where AI attributes are read from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attributes {
    /// Header naming the model when the body has no `model` field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_header: Option<String>,
}

/// Buffering limits, rate limits and token budgets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body read for model / MCP attributes; larger
    /// requests get 413.
    #[serde(default = "default_max_request_body")]
    pub max_request_body_bytes: usize,
    /// Request rate limits and LLM token budgets per caller
    /// ([`crate::rate_limit`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate: Vec<crate::rate_limit::RateLimit>,
    /// The rate-limit service of `store: global` limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global: Option<crate::rate_limit::GlobalLimits>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_request_body_bytes: default_max_request_body(),
            rate: Vec::new(),
            global: None,
        }
    }
}

fn default_max_request_body() -> usize {
    1024 * 1024
}

/// One claim passed upstream as a header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Injection {
    /// Claim path.
    pub claim: String,
    /// Header name (lower case). Any client-sent copy is always removed.
    pub header: String,
}

/// Allow or deny, as written in a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleEffect {
    /// Let the request through when the rule matches.
    Allow,
    /// Refuse the request when the rule matches.
    Deny,
}

/// One rule: all of its conditions must hold for it to match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique id, reported in every decision the rule makes.
    pub id: String,
    /// What a match does.
    pub effect: RuleEffect,
    /// A dry-run rule is evaluated and logged but never enforced.
    #[serde(default)]
    pub dry_run: bool,
    /// Free text for humans.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Conditions; an empty set matches every request.
    #[serde(default)]
    pub when: Conditions,
}

/// What to do when a response cannot be scrubbed as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Refuse the response (buffered: 502 with a JSON body; streamed: an
    /// explicit SSE error event ends the stream).
    #[default]
    Block,
    /// Buffered bodies over the limit: scrub the rest as a stream (bounded
    /// hold-back) instead of refusing.
    Stream,
    /// Let it through unscanned (recorded in the decision). Only for
    /// compressed bodies, and never the default.
    Pass,
}

/// Response (and optionally request) scrubbing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiSettings {
    /// Master switch.
    #[serde(default = "enabled")]
    pub enabled: bool,
    /// Types to detect (default: every structured type; `custom` is on
    /// whenever `custom_terms` is set).
    #[serde(default = "default_pii_types")]
    pub types: Vec<crate::pii::PiiType>,
    /// Action for types without their own.
    #[serde(default)]
    pub default_action: crate::pii::Action,
    /// Per-type actions: `mask`, `partial`, `hash`, `block`.
    #[serde(default)]
    pub actions: std::collections::BTreeMap<crate::pii::PiiType, crate::pii::Action>,
    /// Terms masked as `[REDACTED]` (case-insensitive, whole word).
    #[serde(default)]
    pub custom_terms: Vec<String>,
    /// Key of the `hash` action (>= 16 bytes); the same value maps to the
    /// same token under one key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_key: Option<String>,
    /// Callers matching any of these claim conditions see raw data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exempt: Vec<ClaimCondition>,
    /// Largest response body buffered for scrubbing, in bytes (default 1 MiB,
    /// Envoy's default per-connection buffer limit).
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// A buffered body over `max_body_bytes`: `block` or `stream`.
    #[serde(default)]
    pub on_overflow: Fallback,
    /// A compressed body that cannot be scanned: `block` or `pass`.
    #[serde(default)]
    pub on_compressed: Fallback,
    /// Also scrub request bodies (prompts) before they reach the model.
    #[serde(default)]
    pub scrub_requests: bool,
    /// Content types known to carry no text worth scanning (`image/png`,
    /// `image/*`): passed unscanned. Every other type the scanner cannot
    /// read is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safe_content_types: Vec<String>,
}

impl Default for PiiSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            types: default_pii_types(),
            default_action: crate::pii::Action::Mask,
            actions: Default::default(),
            custom_terms: Vec::new(),
            hash_key: None,
            exempt: Vec::new(),
            max_body_bytes: default_max_body(),
            on_overflow: Fallback::Block,
            on_compressed: Fallback::Block,
            scrub_requests: false,
            safe_content_types: Vec::new(),
        }
    }
}

impl PiiSettings {
    /// The scanner configuration these settings describe.
    pub fn scanner_config(&self) -> crate::pii::PiiConfig {
        let mut enabled = self.types.clone();
        if !self.custom_terms.is_empty() && !enabled.contains(&crate::pii::PiiType::Custom) {
            enabled.push(crate::pii::PiiType::Custom);
        }
        crate::pii::PiiConfig {
            enabled,
            default_action: self.default_action,
            actions: self.actions.clone(),
            custom_terms: self.custom_terms.clone(),
            hash_key: self.hash_key.clone(),
        }
    }
}

fn default_pii_types() -> Vec<crate::pii::PiiType> {
    crate::pii::PiiConfig::default().enabled
}

fn enabled() -> bool {
    true
}

fn default_max_body() -> usize {
    1024 * 1024
}

/// One problem found in a bundle, located by JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BundleIssue {
    /// JSON path of the offending value, e.g. `rules[2].id`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

impl std::fmt::Display for BundleIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a bundle was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BundleError {
    /// The text is not JSON of the bundle's shape.
    #[error("bundle does not parse: {0}")]
    Parse(BundleIssue),
    /// The bundle parsed but breaks rules of the format.
    #[error("bundle is invalid: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<BundleIssue>),
}

impl BundleError {
    /// Every issue, for reports that list them one per line.
    pub fn issues(&self) -> Vec<BundleIssue> {
        match self {
            BundleError::Parse(issue) => vec![issue.clone()],
            BundleError::Invalid(issues) => issues.clone(),
        }
    }

    /// One issue at one path.
    pub fn single(path: impl Into<String>, message: impl Into<String>) -> Self {
        BundleError::Invalid(vec![BundleIssue {
            path: path.into(),
            message: message.into(),
        }])
    }
}

/// Largest bundle text accepted; bounds parse time and memory.
pub const MAX_BUNDLE_BYTES: usize = 8 * 1024 * 1024;

impl Bundle {
    /// Parses and validates a bundle; on failure reports every issue found.
    pub fn parse(text: &[u8]) -> Result<Self, BundleError> {
        if text.len() > MAX_BUNDLE_BYTES {
            return Err(BundleError::Parse(BundleIssue {
                path: "$".into(),
                message: format!(
                    "bundle is {} bytes, limit is {MAX_BUNDLE_BYTES}",
                    text.len()
                ),
            }));
        }
        let mut de = serde_json::Deserializer::from_slice(text);
        let bundle: Bundle = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            BundleError::Parse(BundleIssue {
                path: json_path(&e.path().to_string()),
                message: e.inner().to_string(),
            })
        })?;
        de.end().map_err(|e| {
            BundleError::Parse(BundleIssue {
                path: "$".into(),
                message: e.to_string(),
            })
        })?;
        bundle.validate()?;
        Ok(bundle)
    }

    /// Checks the rules of the format that types alone cannot express.
    pub fn validate(&self) -> Result<(), BundleError> {
        let mut issues = Issues::default();
        if self.name.is_empty() {
            issues.add("$.name", "must not be empty");
        }
        if self.identity.jwt_authn_metadata.is_empty() {
            issues.add("$.identity.jwt_authn_metadata", "must not be empty");
        }
        if let Some(verify) = &self.identity.verify {
            if let Err(e) = crate::jwt::Verifier::new(verify) {
                issues.add(format!("$.identity.verify.{}", e.path()), e.reason());
            }
        }
        if let Some(workloads) = &self.identity.workloads {
            for (at, message) in workloads.issues() {
                issues.add(format!("$.identity.workloads.{at}"), message);
            }
        }
        if let Some(h) = &self.attributes.model_header {
            check_header_name(&mut issues, "$.attributes.model_header", h);
        }
        if self.limits.max_request_body_bytes == 0 {
            issues.add("$.limits.max_request_body_bytes", "must be greater than 0");
        }
        for (at, message) in
            crate::rate_limit::issues(&self.limits.rate, self.limits.global.as_ref())
        {
            issues.add(at, message);
        }
        for (i, limit) in self.limits.rate.iter().enumerate() {
            validate_conditions(
                &mut issues,
                &format!("$.limits.rate[{i}].when"),
                &limit.when,
            );
        }
        for (i, inj) in self.inject.iter().enumerate() {
            if inj.claim.is_empty() {
                issues.add(format!("$.inject[{i}].claim"), "must not be empty");
            }
            check_header_name(&mut issues, &format!("$.inject[{i}].header"), &inj.header);
        }
        let mut seen = std::collections::HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("$.rules[{i}]");
            if rule.id.is_empty() {
                issues.add(format!("{at}.id"), "must not be empty");
            } else if !seen.insert(rule.id.as_str()) {
                issues.add(format!("{at}.id"), "duplicate rule id");
            }
            validate_conditions(&mut issues, &format!("{at}.when"), &rule.when);
            self.check_prompt_pii(&mut issues, &format!("{at}.when"), &rule.when);
        }
        if let Some(routes) = &self.routes {
            self.validate_routes(&mut issues, routes);
        }
        if self.pii.max_body_bytes == 0 {
            issues.add("$.pii.max_body_bytes", "must be greater than 0");
        }
        if self.pii.on_overflow == Fallback::Pass {
            issues.add(
                "$.pii.on_overflow",
                "must be `block` or `stream`: an oversize body is never passed unscanned",
            );
        }
        if self.pii.on_compressed == Fallback::Stream {
            issues.add("$.pii.on_compressed", "must be `block` or `pass`");
        }
        if let Err(e) = crate::pii::Scanner::new(&self.pii.scanner_config()) {
            issues.add("$.pii", e.to_string());
        }
        for (j, t) in self.pii.safe_content_types.iter().enumerate() {
            let valid = t.split_once('/').is_some_and(|(major, minor)| {
                !major.is_empty() && major != "*" && !minor.is_empty() && !t.contains(';')
            });
            let scannable = t.eq_ignore_ascii_case("text/event-stream")
                || t.to_ascii_lowercase().contains("json")
                || t.to_ascii_lowercase().starts_with("text/");
            if !valid {
                issues.add(
                    format!("$.pii.safe_content_types[{j}]"),
                    "must be a media type `type/subtype` or `type/*`, without parameters",
                );
            } else if scannable {
                issues.add(
                    format!("$.pii.safe_content_types[{j}]"),
                    "text, JSON and event streams are always scanned; they cannot be listed as safe",
                );
            }
        }
        if let Some(pins) = &self.tool_pins {
            for (path, message) in pins.issues() {
                issues.add(path, message);
            }
        }
        for (j, c) in self.pii.exempt.iter().enumerate() {
            if c.claim.is_empty() {
                issues.add(format!("$.pii.exempt[{j}].claim"), "must not be empty");
            }
        }
        if let Some(tx) = &self.token_exchange {
            for (at, message) in tx.problems() {
                issues.add(format!("$.token_exchange.{at}"), message);
            }
        }
        for (path, message) in self.resource.iter().flat_map(|r| r.issues()) {
            issues.add(path, message);
        }
        issues.finish()
    }
}

impl Bundle {
    /// `prompt_pii: ["custom"]` needs terms to look for.
    fn check_prompt_pii(&self, issues: &mut Issues, at: &str, when: &Conditions) {
        let custom = when.prompt_pii.contains(&crate::pii::PiiType::Custom);
        if custom && self.pii.custom_terms.is_empty() {
            issues.add(
                format!("{at}.prompt_pii"),
                "`custom` needs terms in `pii.custom_terms`",
            );
        }
    }

    fn validate_routes(&self, issues: &mut Issues, routes: &crate::routes::Routes) {
        let header = routes.header.as_str();
        check_header_name(issues, "$.routes.header", header);
        let taken = self.inject.iter().any(|i| i.header == header)
            || self.attributes.model_header.as_deref() == Some(header)
            || matches!(header, "authorization" | "cookie" | "x-request-id")
            || header.starts_with("x-envoy-");
        if taken {
            issues.add(
                "$.routes.header",
                "is a header the filter or Envoy already uses for something else",
            );
        }
        for (path, message) in routes.issues() {
            issues.add(path, message);
        }
        for (i, rule) in routes.rules.iter().enumerate() {
            let at = format!("$.routes.rules[{i}].when");
            validate_conditions(issues, &at, &rule.when);
            self.check_prompt_pii(issues, &at, &rule.when);
        }
    }
}

/// Collects issues while validating.
#[derive(Default)]
struct Issues(Vec<BundleIssue>);

impl Issues {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(BundleIssue {
            path: path.into(),
            message: message.into(),
        });
    }

    fn finish(self) -> Result<(), BundleError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(BundleError::Invalid(self.0))
        }
    }
}

/// Headers a bundle may not read or inject: pseudo-headers and hop-by-hop.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "connection",
    "transfer-encoding",
    "content-length",
    "te",
    "upgrade",
];

fn check_header_name(issues: &mut Issues, at: &str, name: &str) {
    let token = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        });
    if !token {
        issues.add(at, "must be a lower-case header name");
    } else if RESERVED_HEADERS.contains(&name) {
        issues.add(at, "is a reserved header");
    }
}

fn validate_conditions(issues: &mut Issues, at: &str, when: &Conditions) {
    for (j, m) in when.methods.iter().enumerate() {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
            issues.add(
                format!("{at}.methods[{j}]"),
                "must be an upper-case HTTP method",
            );
        }
    }
    for (j, h) in when.hosts.iter().enumerate() {
        if h.is_empty() {
            issues.add(format!("{at}.hosts[{j}]"), "must not be empty");
        }
    }
    let template = match &when.path {
        Some(PathCondition::Template(t)) => match PathTemplate::parse(t) {
            Ok(t) => Some(t),
            Err(e) => {
                issues.add(format!("{at}.path.template"), e.to_string());
                None
            }
        },
        Some(PathCondition::Exact(p) | PathCondition::Prefix(p)) if !p.starts_with('/') => {
            issues.add(format!("{at}.path"), "must start with `/`");
            None
        }
        _ => None,
    };
    for (j, h) in when.headers.iter().enumerate() {
        let hat = format!("{at}.headers[{j}]");
        check_header_name(issues, &format!("{hat}.name"), &h.name);
        if h.equals.is_some() == h.exists.is_some() {
            issues.add(hat, "needs exactly one of `equals` or `exists`");
        }
    }
    for (j, c) in when.claims.iter().enumerate() {
        if c.claim.is_empty() {
            issues.add(format!("{at}.claims[{j}].claim"), "must not be empty");
        }
    }
    for (j, m) in when.models.iter().enumerate() {
        if m.is_empty() {
            issues.add(format!("{at}.models[{j}]"), "must not be empty");
        }
    }
    let mut resource_templates = Vec::new();
    if let Some(mcp) = &when.mcp {
        let on_resources = !mcp.resources.is_empty() || !mcp.resource_templates.is_empty();
        if !mcp.arguments.is_empty() && on_resources {
            issues.add(
                format!("{at}.mcp.arguments"),
                "argument tests apply to `tools/call` and `prompts/get`; with `resources` or `resource_templates` the rule could never match",
            );
        }
        for (j, t) in mcp.resource_templates.iter().enumerate() {
            match ResourceTemplate::parse(t) {
                Ok(t) => resource_templates.push(t),
                Err(e) => issues.add(format!("{at}.mcp.resource_templates[{j}]"), e.to_string()),
            }
        }
    }
    for (j, r) in when.relations.iter().enumerate() {
        let rat = format!("{at}.relations[{j}]");
        if r.claim.is_empty() {
            issues.add(format!("{rat}.claim"), "must not be empty");
        }
        match (&r.equals_path, &r.equals_header, &r.equals_capture) {
            (None, None, Some(capture)) => {
                let everywhere = !resource_templates.is_empty()
                    && resource_templates.iter().all(|t| t.has_capture(capture));
                if !everywhere {
                    issues.add(
                        format!("{rat}.equals_capture"),
                        format!(
                            "`{capture}` is not a capture of every one of this rule's `mcp.resource_templates`"
                        ),
                    );
                }
            }
            (Some(capture), None, None) => {
                if !template.as_ref().is_some_and(|t| t.has_capture(capture)) {
                    issues.add(
                        format!("{rat}.equals_path"),
                        format!("`{capture}` is not a capture of this rule's path template"),
                    );
                }
            }
            (None, Some(header), None) => {
                check_header_name(issues, &format!("{rat}.equals_header"), header)
            }
            _ => issues.add(
                rat,
                "needs exactly one of `equals_path`, `equals_header` or `equals_capture`",
            ),
        }
    }
    for (j, p) in when.peers.iter().enumerate() {
        if let Err(e) = crate::peer::PeerPattern::check(p) {
            issues.add(format!("{at}.peers[{j}]"), e.to_string());
        }
    }
    if let Some(time) = &when.time {
        if let Some([from, to]) = time.hours {
            if from > 24 || to > 24 || from == to {
                issues.add(
                    format!("{at}.time.hours"),
                    "must be two different hours from 0 to 24",
                );
            }
        }
        if time.days.is_empty() && time.hours.is_none() {
            issues.add(format!("{at}.time"), "needs `days` or `hours`");
        }
    }
}

fn json_path(serde_path: &str) -> String {
    if serde_path == "." || serde_path.is_empty() {
        "$".into()
    } else if serde_path.starts_with('[') {
        format!("${serde_path}")
    } else {
        format!("$.{serde_path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{
        "name": "demo", "version": 3,
        "rules": [
            {"id": "deny-suspended", "effect": "deny",
             "when": {"claims": [{"claim": "suspended", "equals": true}]}},
            {"id": "users", "effect": "allow",
             "when": {"methods": ["POST"], "path": {"prefix": "/v1/"},
                      "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}
        ]
    }"#;

    #[test]
    fn parses_a_good_bundle_with_defaults() {
        let b = Bundle::parse(GOOD.as_bytes()).unwrap();
        assert_eq!(b.version, 3);
        assert_eq!(b.identity.jwt_authn_metadata, "jwt_payload");
        assert!(b.pii.enabled);
        assert!(b.pii.types.contains(&crate::pii::PiiType::Card));
        assert_eq!(
            b.rules[1].when.claims[0].test,
            ClaimTest::ContainsAny(vec!["model-user".into()])
        );
    }

    #[test]
    fn unknown_fields_report_their_path() {
        let text = GOOD.replace("\"contains_any\"", "\"contains_anyy\"");
        let err = Bundle::parse(text.as_bytes()).unwrap_err();
        let issues = err.issues();
        assert_eq!(issues[0].path, "$.rules[1].when.claims[0]", "{issues:?}");
        assert!(issues[0].message.contains("contains_anyy"), "{issues:?}");
    }

    #[test]
    fn semantic_errors_are_all_reported() {
        let text = r#"{"name":"", "version":1, "rules":[
            {"id":"a","effect":"allow","when":{"methods":["get"]}},
            {"id":"a","effect":"deny"}]}"#;
        let issues = Bundle::parse(text.as_bytes()).unwrap_err().issues();
        let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            ["$.name", "$.rules[0].when.methods[0]", "$.rules[1].id"]
        );
    }

    #[test]
    fn routes_parse_and_every_problem_is_named() {
        let text = r#"{"name":"r","version":1,
            "inject":[{"claim":"tenant","header":"x-mcp-tenant"}],
            "routes":{"rules":[
              {"id":"private","when":{"prompt_pii":["card"]},"cluster":"llm-private",
               "models":{"gpt-4o":"llama3-70b","*":"llama3-8b"},"fallback":"llm-default"},
              {"id":"general","cluster":"llm-default"}]}}"#;
        let b = Bundle::parse(text.as_bytes()).unwrap();
        let routes = b.routes.unwrap();
        assert_eq!(routes.header, "x-mcp-guard-cluster");
        assert_eq!(routes.rules[0].when.prompt_pii, [crate::pii::PiiType::Card]);

        let bad = r#"{"name":"r","version":1,
            "inject":[{"claim":"tenant","header":"x-mcp-tenant"}],
            "rules":[{"id":"a","effect":"deny","when":{"prompt_pii":["custom"]}}],
            "routes":{"header":"x-mcp-tenant","rules":[
              {"id":"","cluster":""},
              {"id":"x","cluster":"a b","fallback":"a b"},
              {"id":"x","cluster":"ok","fallback":"ok","models":{"":"m","n":""},
               "when":{"methods":["get"]}}]}}"#;
        let issues = Bundle::parse(bad.as_bytes()).unwrap_err().issues();
        let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();
        for expected in [
            "$.rules[0].when.prompt_pii",
            "$.routes.header",
            "$.routes.rules[0].id",
            "$.routes.rules[0].cluster",
            "$.routes.rules[1].cluster",
            "$.routes.rules[1].fallback",
            "$.routes.rules[2].id",
            "$.routes.rules[2].fallback",
            "$.routes.rules[2].models[\"\"]",
            "$.routes.rules[2].models[\"n\"]",
            "$.routes.rules[2].when.methods[0]",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing in {issues:?}"
            );
        }
        // Unknown PII types and fields are parse errors with their path.
        let e = Bundle::parse(
            br#"{"name":"r","version":1,"routes":{"rules":[{"id":"a","cluster":"c","when":{"prompt_pii":["cards"]}}]}}"#,
        )
        .unwrap_err();
        assert!(
            e.issues()[0].path.starts_with("$.routes.rules[0].when"),
            "{e}"
        );
        let e = Bundle::parse(
            br#"{"name":"r","version":1,"routes":{"rules":[{"id":"a","cluster":"c","clutser":"d"}]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("clutser"), "{e}");
    }

    #[test]
    fn trailing_garbage_and_wrong_types_fail() {
        assert!(Bundle::parse(b"{\"name\":\"x\",\"version\":1} x").is_err());
        let err = Bundle::parse(b"{\"name\":\"x\",\"version\":\"1\"}").unwrap_err();
        assert_eq!(err.issues()[0].path, "$.version");
    }
}
