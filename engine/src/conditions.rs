//! The conditions a rule can put on a request, as written in a bundle.
//!
//! Every condition present must hold for the rule to match; an absent
//! condition places no constraint.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `when` block of a rule.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// HTTP methods (any of), upper case.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Hosts (`:authority` without port, any of, case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Path condition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathCondition>,
    /// Header conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderCondition>,
    /// Claim conditions, all of which must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claims: Vec<ClaimCondition>,
    /// Model names (any of; a trailing `*` matches a prefix). The model is
    /// the JSON body's `model` field, or the bundle's model header.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// MCP JSON-RPC conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpCondition>,
    /// Relations between a claim and the request (tenant isolation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relations: Vec<Relation>,
    /// UTC time window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeWindow>,
    /// Peer SPIFFE IDs (any of): the downstream mTLS certificate's URI
    /// SAN. A final `/*` matches every ID below it at a segment boundary.
    /// See [`crate::peer`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
    /// Data classification of the request body (the prompt): holds when
    /// it contains personal data of one of these types, found with the
    /// PII scanner's detectors ([`crate::prompt_pii`]). Reads the body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_pii: Vec<crate::pii::PiiType>,
}

/// Path matching.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum PathCondition {
    /// The path equals this string.
    Exact(String),
    /// The path starts with this string.
    Prefix(String),
    /// Segment template: `{name}` captures one segment, a final `{name*}`
    /// captures the rest (one or more segments), other segments are literal.
    Template(String),
}

/// A test on one request header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderCondition {
    /// Header name (matched case-insensitively).
    pub name: String,
    /// The header equals this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    /// The header is present (`true`) or absent (`false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
}

/// MCP JSON-RPC conditions. Lists are "any of"; a trailing `*` matches a
/// prefix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpCondition {
    /// JSON-RPC methods, e.g. `tools/call`, `tools/list`, `resources/read`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Tool names (`tools/call` `params.name`); the call must be a tool call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<String>,
    /// Resource URIs (`resources/read` `params.uri`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Prompt names (`prompts/get` `params.name`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompts: Vec<String>,
    /// Tests on `params.arguments` of a `tools/call` or `prompts/get`, all
    /// of which must hold (see [`crate::arguments`]); the call must be one
    /// of those two.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<crate::arguments::ArgumentTest>,
    /// Resource URI templates (any of) matched against `params.uri` of a
    /// resource call, e.g. `file:///tenants/{tenant}/{path*}`; their
    /// captures serve `relations[].equals_capture`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_templates: Vec<String>,
}

/// A claim compared with part of the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Relation {
    /// Claim path.
    pub claim: String,
    /// Name of a path template capture the claim must equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals_path: Option<String>,
    /// Name of a header the claim must equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals_header: Option<String>,
    /// Name of a capture of the rule's `mcp.resource_templates` the claim
    /// must equal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals_capture: Option<String>,
}

/// A UTC time window; both parts optional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeWindow {
    /// Days of the week (`mon` … `sun`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Weekday>,
    /// Hours `[from, to)` in UTC, 0–24; `from > to` wraps past midnight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<[u8; 2]>,
}

/// Day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Weekday {
    /// The weekday of a Unix timestamp (1970-01-01 was a Thursday).
    pub fn of_unix(secs: u64) -> Self {
        const DAYS: [Weekday; 7] = [
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
        ];
        // `% 7` keeps the index in range; the fallback is never taken.
        DAYS.get(((secs / 86_400) % 7) as usize)
            .copied()
            .unwrap_or(Weekday::Thu)
    }
}

/// A test on one claim, written as `{"claim": PATH, OPERATOR: OPERAND}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "serde_json::Map<String, Value>")]
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
    /// The claim equals this JSON value (numbers compare by value).
    Equals(Value),
    /// The claim equals one of these values.
    OneOf(Vec<Value>),
    /// The claim (an array, or a space-separated string like `scope`)
    /// contains at least one of these strings.
    ContainsAny(Vec<String>),
    /// The claim contains every one of these strings.
    ContainsAll(Vec<String>),
    /// The claim is a string starting with this prefix.
    Prefix(String),
    /// The claim is present (`true`) or absent (`false`).
    Exists(bool),
    /// The claim is a number greater than this.
    Gt(f64),
    /// The claim is a number greater than or equal to this.
    Ge(f64),
    /// The claim is a number less than this.
    Lt(f64),
    /// The claim is a number less than or equal to this.
    Le(f64),
}

/// Operator names accepted in a claim condition, for error messages.
pub const CLAIM_OPERATORS: &[&str] = &[
    "equals",
    "one_of",
    "contains_any",
    "contains_all",
    "prefix",
    "exists",
    "gt",
    "ge",
    "lt",
    "le",
];

impl TryFrom<serde_json::Map<String, Value>> for ClaimCondition {
    type Error = String;

    /// Requires `claim` plus exactly one known operator, naming the
    /// offender otherwise, so a typo is reported rather than ignored.
    fn try_from(mut map: serde_json::Map<String, Value>) -> Result<Self, String> {
        let claim = match map.remove("claim") {
            Some(Value::String(s)) => s,
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
        let test = serde_json::from_value(Value::Object(
            std::iter::once((op.clone(), operand)).collect(),
        ))
        .map_err(|e| format!("`{op}`: {e}"))?;
        Ok(Self { claim, test })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekdays_from_unix_time() {
        assert_eq!(Weekday::of_unix(0), Weekday::Thu);
        // 2026-11-21 is a Saturday.
        assert_eq!(Weekday::of_unix(1_795_262_400), Weekday::Sat);
    }

    #[test]
    fn claim_operators_parse_and_typos_are_named() {
        let c: ClaimCondition = serde_json::from_str(r#"{"claim":"level","ge":3}"#).unwrap();
        assert_eq!(c.test, ClaimTest::Ge(3.0));
        let e = serde_json::from_str::<ClaimCondition>(r#"{"claim":"x","greater":3}"#).unwrap_err();
        assert!(e.to_string().contains("unknown operator `greater`"), "{e}");
        let e = serde_json::from_str::<ClaimCondition>(r#"{"claim":"x","gt":"3"}"#).unwrap_err();
        assert!(e.to_string().contains("`gt`"), "{e}");
    }
}
