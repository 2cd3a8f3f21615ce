//! The policy bundle format (v1): what security teams push and the filter
//! enforces. Parsing is strict (unknown fields are errors) so a typo cannot
//! silently disable a rule.

use serde::{Deserialize, Serialize};
use thiserror::Error;

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
    /// Where the caller's claims come from.
    #[serde(default)]
    pub identity: Identity,
    /// Ordered rules; deny rules are evaluated before allow rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// What to scrub from responses.
    #[serde(default)]
    pub pii: PiiSettings,
}

/// Identity sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// `payload_in_metadata` key of Envoy's `jwt_authn` filter.
    #[serde(default = "default_metadata_key")]
    pub jwt_authn_metadata: String,
    /// Claim naming the caller in decisions and logs.
    #[serde(default = "default_subject_claim")]
    pub subject_claim: String,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            jwt_authn_metadata: default_metadata_key(),
            subject_claim: default_subject_claim(),
        }
    }
}

fn default_metadata_key() -> String {
    "jwt_payload".into()
}

fn default_subject_claim() -> String {
    "sub".into()
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
    /// Conditions; an empty set matches every request.
    #[serde(default)]
    pub when: Conditions,
}

/// The conditions of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// HTTP methods (any of); empty means any method.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Path condition.
    #[serde(default)]
    pub path: Option<PathCondition>,
    /// Claim conditions, all of which must hold.
    #[serde(default)]
    pub claims: Vec<ClaimCondition>,
}

/// Path matching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathCondition {
    /// The path equals this string.
    Exact(String),
    /// The path starts with this string.
    Prefix(String),
}

/// A test on one claim, written as `{"claim": PATH, OPERATOR: OPERAND}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct ClaimCondition {
    /// Claim path, e.g. `roles` or `realm_access.roles`.
    pub claim: String,
    /// The test applied to it.
    #[serde(flatten)]
    pub test: ClaimTest,
}

/// Claim operators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimTest {
    /// The claim equals this JSON value.
    Equals(serde_json::Value),
    /// The claim equals one of these values.
    OneOf(Vec<serde_json::Value>),
    /// The claim (an array, or a space-separated string like `scope`)
    /// contains at least one of these strings.
    ContainsAny(Vec<String>),
    /// The claim is present (`true`) or absent (`false`).
    Exists(bool),
}

/// Operator names accepted in a claim condition, for error messages.
pub const CLAIM_OPERATORS: &[&str] = &["equals", "one_of", "contains_any", "exists"];

impl TryFrom<serde_json::Map<String, serde_json::Value>> for ClaimCondition {
    type Error = String;

    /// Requires `claim` plus exactly one known operator, naming the
    /// offender otherwise, so a typo is reported rather than ignored.
    fn try_from(mut map: serde_json::Map<String, serde_json::Value>) -> Result<Self, String> {
        let claim = match map.remove("claim") {
            Some(serde_json::Value::String(s)) => s,
            Some(_) => return Err("`claim` must be a string".into()),
            None => return Err("missing field `claim`".into()),
        };
        let mut entries = map.into_iter();
        let (op, operand) = entries.next().ok_or_else(|| {
            format!(
                "missing operator; expected one of {}",
                CLAIM_OPERATORS.join(", ")
            )
        })?;
        if let Some((extra, _)) = entries.next() {
            return Err(format!(
                "one operator per condition, found `{op}` and `{extra}`"
            ));
        }
        if !CLAIM_OPERATORS.contains(&op.as_str()) {
            return Err(format!(
                "unknown operator `{op}`; expected one of {}",
                CLAIM_OPERATORS.join(", ")
            ));
        }
        let test = serde_json::from_value(serde_json::Value::Object(
            std::iter::once((op.clone(), operand)).collect(),
        ))
        .map_err(|e| format!("`{op}`: {e}"))?;
        Ok(Self { claim, test })
    }
}

/// Response scrubbing settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiSettings {
    /// Mask e-mail addresses as `[EMAIL]`.
    #[serde(default = "enabled")]
    pub email: bool,
    /// Largest response body buffered for scrubbing, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
}

impl Default for PiiSettings {
    fn default() -> Self {
        Self {
            email: true,
            max_body_bytes: default_max_body(),
        }
    }
}

fn enabled() -> bool {
    true
}

fn default_max_body() -> usize {
    4 * 1024 * 1024
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
        let mut issues = Vec::new();
        let mut issue = |path: String, message: &str| {
            issues.push(BundleIssue {
                path,
                message: message.into(),
            })
        };
        if self.name.is_empty() {
            issue("$.name".into(), "must not be empty");
        }
        if self.identity.jwt_authn_metadata.is_empty() {
            issue("$.identity.jwt_authn_metadata".into(), "must not be empty");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.id.is_empty() {
                issue(format!("$.rules[{i}].id"), "must not be empty");
            } else if !seen.insert(rule.id.as_str()) {
                issue(format!("$.rules[{i}].id"), "duplicate rule id");
            }
            for (j, c) in rule.when.claims.iter().enumerate() {
                if c.claim.is_empty() {
                    issue(
                        format!("$.rules[{i}].when.claims[{j}].claim"),
                        "must not be empty",
                    );
                }
            }
            for (j, m) in rule.when.methods.iter().enumerate() {
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase()) {
                    issue(
                        format!("$.rules[{i}].when.methods[{j}]"),
                        "must be an upper-case HTTP method",
                    );
                }
            }
        }
        if self.pii.max_body_bytes == 0 {
            issue("$.pii.max_body_bytes".into(), "must be greater than 0");
        }
        if issues.is_empty() {
            Ok(())
        } else {
            Err(BundleError::Invalid(issues))
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
        assert!(b.pii.email);
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
    fn trailing_garbage_and_wrong_types_fail() {
        assert!(Bundle::parse(b"{\"name\":\"x\",\"version\":1} x").is_err());
        let err = Bundle::parse(b"{\"name\":\"x\",\"version\":\"1\"}").unwrap_err();
        assert_eq!(err.issues()[0].path, "$.version");
    }
}
