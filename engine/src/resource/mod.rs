//! Resource-server duties (MCP authorization, OAuth 2.1): the bundle's
//! `resource` section, RFC 9728 Protected Resource Metadata, RFC 6750
//! challenges and RFC 8707 audience binding.
//!
//! Everything a request needs is built once when the policy compiles: the
//! metadata document, its well-known paths and every `WWW-Authenticate`
//! value, so the request path only compares and copies.

mod settings;
mod uri;

pub use settings::{is_scope_token, ResourceSettings};

use crate::bundle::{ClaimTest, Rule, RuleEffect};
use crate::claims::Claims;
use crate::decision::push_json_string;
use crate::policy::CompiledRule;
use uri::parse_uri;

/// RFC 9728 §3: the well-known path the metadata is served under.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Claims that carry OAuth scopes: `scope` (RFC 8693 §4.2, a
/// space-separated string) and `scp` (an array, common in practice).
pub const SCOPE_CLAIMS: &[&str] = &["scope", "scp"];

/// A rule that would allow the request but for its scope conditions:
/// the same rule without them, and the challenge naming what it needs.
#[derive(Debug, Clone)]
struct ScopeRule {
    /// The allow rule with its scope conditions removed.
    relaxed: Rule,
    compiled: CompiledRule,
    /// `WWW-Authenticate` value for a 403 `insufficient_scope`.
    challenge: String,
}

/// The `resource` section compiled: what the filter serves and sends.
#[derive(Debug, Clone)]
pub struct ProtectedResource {
    /// The canonical resource URI.
    resource: String,
    /// Audiences a token must name (one of).
    audiences: Vec<String>,
    /// `/.well-known/oauth-protected-resource` and, when the resource
    /// URI has a path, the path-suffixed form.
    well_known_paths: Vec<String>,
    /// The metadata document (JSON), built once.
    document: Vec<u8>,
    /// `Bearer resource_metadata="…"` (no token sent).
    challenge_missing: String,
    /// `Bearer error="invalid_token", resource_metadata="…"`.
    challenge_invalid: String,
    /// Allow rules with scope requirements, in bundle order.
    scope_rules: Vec<ScopeRule>,
}

/// Whether a condition is a scope requirement the challenge can name.
fn scope_values(claim: &str, test: &ClaimTest) -> Option<Vec<String>> {
    if !SCOPE_CLAIMS.contains(&claim) {
        return None;
    }
    match test {
        ClaimTest::ContainsAny(v) | ClaimTest::ContainsAll(v) => {
            v.iter().all(|s| is_scope_token(s)).then(|| v.clone())
        }
        _ => None,
    }
}

fn quoted_param(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    out.push_str(value);
    out.push('"');
}

impl ProtectedResource {
    /// Compiles a validated section against the bundle's rules.
    pub fn new(settings: &ResourceSettings, rules: &[Rule]) -> Result<Self, String> {
        let uri = parse_uri(&settings.resource).map_err(|e| format!("resource {e}"))?;
        let suffix = if uri.path == "/" { "" } else { uri.path };
        let mut well_known_paths = vec![WELL_KNOWN.to_owned()];
        if !suffix.is_empty() {
            well_known_paths.push(format!("{WELL_KNOWN}{suffix}"));
        }
        let metadata_url = format!("{}://{}{WELL_KNOWN}{suffix}", uri.scheme, uri.authority);
        let mut tail = String::new();
        quoted_param(&mut tail, "resource_metadata", &metadata_url);
        let challenge_missing = format!("Bearer {tail}");
        let challenge_invalid = format!("Bearer error=\"invalid_token\", {tail}");
        let scope_rules = rules
            .iter()
            .filter(|r| r.effect == RuleEffect::Allow && !r.dry_run)
            .filter_map(|rule| {
                let mut scopes: Vec<String> = Vec::new();
                for c in &rule.when.claims {
                    for s in scope_values(&c.claim, &c.test).unwrap_or_default() {
                        if !scopes.contains(&s) {
                            scopes.push(s);
                        }
                    }
                }
                if scopes.is_empty() {
                    return None;
                }
                let mut relaxed = rule.clone();
                relaxed
                    .when
                    .claims
                    .retain(|c| scope_values(&c.claim, &c.test).is_none());
                let mut challenge = String::from("Bearer error=\"insufficient_scope\", ");
                quoted_param(&mut challenge, "scope", &scopes.join(" "));
                challenge.push_str(", ");
                challenge.push_str(&tail);
                Some(ScopeRule {
                    compiled: CompiledRule::new(&relaxed),
                    relaxed,
                    challenge,
                })
            })
            .collect();
        Ok(Self {
            resource: settings.resource.clone(),
            audiences: settings
                .audiences
                .clone()
                .unwrap_or_else(|| vec![settings.resource.clone()]),
            well_known_paths,
            document: document(settings).into_bytes(),
            challenge_missing,
            challenge_invalid,
            scope_rules,
        })
    }

    /// The canonical resource URI.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Whether `path` (query removed, already in normal form) is one of
    /// the metadata's well-known paths.
    pub fn is_well_known(&self, path: &str) -> bool {
        self.well_known_paths.iter().any(|p| p == path)
    }

    /// The well-known paths served.
    pub fn well_known_paths(&self) -> &[String] {
        &self.well_known_paths
    }

    /// The RFC 9728 metadata document.
    pub fn document(&self) -> &[u8] {
        &self.document
    }

    /// The challenge for a 401 without a token (RFC 6750 §3.1: no error
    /// code when no credentials were sent).
    pub fn challenge_missing(&self) -> &str {
        &self.challenge_missing
    }

    /// The challenge for a 401 with an unusable token.
    pub fn challenge_invalid(&self) -> &str {
        &self.challenge_invalid
    }

    /// RFC 8707: the token's `aud` (a string, or an array of strings)
    /// names one of the audiences, compared exactly.
    pub fn audience_holds(&self, claims: &Claims) -> bool {
        let wanted = |a: &str| self.audiences.iter().any(|w| w == a);
        match claims.0.get("aud") {
            Some(serde_json::Value::String(a)) => wanted(a),
            Some(serde_json::Value::Array(items)) => {
                items.iter().any(|i| i.as_str().is_some_and(wanted))
            }
            _ => false,
        }
    }

    /// Whether any allow rule has scope requirements.
    pub fn has_scope_rules(&self) -> bool {
        !self.scope_rules.is_empty()
    }

    /// The `insufficient_scope` challenge of the first allow rule that
    /// matches the request once its scope conditions are set aside.
    /// Call only for a request denied by default.
    pub fn scope_challenge(
        &self,
        claims: &Claims,
        request: &crate::request::RequestAttrs<'_>,
    ) -> Option<&str> {
        self.scope_rules
            .iter()
            .find(|r| {
                r.compiled
                    .matches(&r.relaxed, claims, request, &mut crate::policy::no_trace())
            })
            .map(|r| r.challenge.as_str())
    }
}

/// The RFC 9728 §2 metadata document.
fn document(s: &ResourceSettings) -> String {
    let mut out = String::from("{\"resource\":");
    push_json_string(&mut out, &s.resource);
    push_list(&mut out, "authorization_servers", &s.authorization_servers);
    if !s.scopes_supported.is_empty() {
        push_list(&mut out, "scopes_supported", &s.scopes_supported);
    }
    push_list(
        &mut out,
        "bearer_methods_supported",
        &s.bearer_methods_supported,
    );
    if let Some(name) = &s.resource_name {
        out.push_str(",\"resource_name\":");
        push_json_string(&mut out, name);
    }
    if let Some(doc) = &s.resource_documentation {
        out.push_str(",\"resource_documentation\":");
        push_json_string(&mut out, doc);
    }
    out.push('}');
    out
}

fn push_list(out: &mut String, key: &str, items: &[String]) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(out, item);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::settings::default_bearer_methods;
    use super::*;

    fn settings(resource: &str) -> ResourceSettings {
        ResourceSettings {
            resource: resource.into(),
            authorization_servers: vec!["https://auth.example.com".into()],
            scopes_supported: vec!["tools:read".into()],
            resource_name: None,
            resource_documentation: None,
            bearer_methods_supported: default_bearer_methods(),
            audiences: None,
        }
    }

    #[test]
    fn resource_uris_are_checked() {
        for good in [
            "https://mcp.example.com/mcp",
            "https://mcp.example.com",
            "https://mcp.example.com:8443/a/b/",
            "http://localhost:8080/mcp",
            "http://127.0.0.1/mcp",
            "http://[::1]:9/mcp",
        ] {
            assert!(settings(good).issues().is_empty(), "{good}");
        }
        for bad in [
            "mcp.example.com/mcp",
            "https://mcp.example.com/mcp#frag",
            "https://mcp.example.com/mcp?x=1",
            "http://mcp.example.com/mcp",
            "http://127.0.0.1.evil.com/mcp",
            "http://localhost.evil.com/",
            "ftp://mcp.example.com/",
            "https://user@mcp.example.com/",
            "https:///mcp",
            "https://mcp.example.com:/mcp",
            "https://mcp.example.com:80a/mcp",
            "https://mcp.example.com/a/../mcp",
            "https://mcp.example.com/a//mcp",
            "https://mcp.example.com/%6dcp",
            "https://mcp.example.com/m\"cp",
            "https://mcp.example.com/m cp",
            "HTTPS://mcp.example.com/mcp",
            "http://LOCALHOST/mcp",
            "http://127.0.0.256/mcp",
            "http://[::1/mcp",
            "https://[::1]x/mcp",
        ] {
            let issues = settings(bad).issues();
            assert_eq!(issues.len(), 1, "{bad}: {issues:?}");
            assert_eq!(issues[0].0, "$.resource.resource");
        }
    }

    #[test]
    fn other_fields_are_checked() {
        let mut s = settings("https://mcp.example.com/mcp");
        s.authorization_servers = vec![];
        s.scopes_supported = vec!["a b".into(), "x".into(), "x".into()];
        s.bearer_methods_supported = vec!["query".into()];
        s.audiences = Some(vec![String::new()]);
        s.resource_documentation = Some("http://docs.example.com".into());
        let paths: Vec<String> = s.issues().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "$.resource.authorization_servers",
                "$.resource.scopes_supported[0]",
                "$.resource.scopes_supported[2]",
                "$.resource.resource_documentation",
                "$.resource.bearer_methods_supported[0]",
                "$.resource.audiences[0]",
            ]
        );
    }

    #[test]
    fn metadata_and_challenges_come_from_the_resource_uri() {
        let pr = ProtectedResource::new(&settings("https://mcp.example.com/mcp"), &[]).unwrap();
        assert!(pr.is_well_known("/.well-known/oauth-protected-resource"));
        assert!(pr.is_well_known("/.well-known/oauth-protected-resource/mcp"));
        assert!(!pr.is_well_known("/.well-known/oauth-protected-resource/mcp/"));
        assert!(!pr.is_well_known("/.well-known/oauth-protected-resource/other"));
        assert_eq!(
            pr.challenge_missing(),
            "Bearer resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        );
        assert_eq!(
            pr.challenge_invalid(),
            "Bearer error=\"invalid_token\", resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
        );
        let doc: serde_json::Value = serde_json::from_slice(pr.document()).unwrap();
        assert_eq!(
            doc,
            serde_json::json!({
                "resource": "https://mcp.example.com/mcp",
                "authorization_servers": ["https://auth.example.com"],
                "scopes_supported": ["tools:read"],
                "bearer_methods_supported": ["header"],
            })
        );
        let root = ProtectedResource::new(&settings("https://mcp.example.com/"), &[]).unwrap();
        assert_eq!(
            root.well_known_paths(),
            ["/.well-known/oauth-protected-resource"]
        );
        assert!(root
            .challenge_missing()
            .ends_with("example.com/.well-known/oauth-protected-resource\""));
    }

    #[test]
    fn audience_is_compared_exactly() {
        let pr = ProtectedResource::new(&settings("https://mcp.example.com/mcp"), &[]).unwrap();
        let holds = |aud: serde_json::Value| {
            let mut map = serde_json::Map::new();
            if !aud.is_null() {
                map.insert("aud".into(), aud);
            }
            pr.audience_holds(&Claims::new(map))
        };
        assert!(holds(serde_json::json!("https://mcp.example.com/mcp")));
        assert!(holds(serde_json::json!([
            "x",
            "https://mcp.example.com/mcp"
        ])));
        assert!(!holds(serde_json::json!("https://mcp.example.com/mcp/")));
        assert!(!holds(serde_json::json!("https://MCP.example.com/mcp")));
        assert!(!holds(serde_json::json!("https://other.example.com/mcp")));
        assert!(!holds(serde_json::json!(["https://other.example.com/mcp"])));
        assert!(!holds(serde_json::json!([["https://mcp.example.com/mcp"]])));
        assert!(!holds(serde_json::Value::Null));
    }

    #[test]
    fn only_enforced_allow_rules_with_scope_lists_give_a_scope_challenge() {
        let rules: Vec<Rule> = serde_json::from_value(serde_json::json!([
            {"id": "dry", "effect": "allow", "dry_run": true,
             "when": {"path": {"exact": "/a"}, "claims": [{"claim": "scope", "contains_any": ["dry"]}]}},
            {"id": "deny", "effect": "deny",
             "when": {"path": {"exact": "/a"}, "claims": [{"claim": "scope", "contains_any": ["deny"]}]}},
            {"id": "equals", "effect": "allow",
             "when": {"path": {"exact": "/a"}, "claims": [{"claim": "scope", "equals": "eq"}]}},
            {"id": "quote", "effect": "allow",
             "when": {"path": {"exact": "/a"}, "claims": [{"claim": "scope", "contains_any": ["a\"b"]}]}},
            {"id": "roles", "effect": "allow",
             "when": {"path": {"exact": "/b"}, "claims": [
                 {"claim": "roles", "contains_any": ["admin"]},
                 {"claim": "scp", "contains_all": ["x", "y", "x"]}]}}
        ]))
        .unwrap();
        let pr = ProtectedResource::new(&settings("https://mcp.example.com/mcp"), &rules).unwrap();
        let claims = |c: serde_json::Value| Claims::new(c.as_object().unwrap().clone());
        let on = |path| crate::request::RequestAttrs::new("GET", path, "h");
        assert_eq!(
            pr.scope_challenge(&claims(serde_json::json!({})), &on("/a")),
            None
        );
        // The other conditions of the rule still have to hold.
        assert_eq!(
            pr.scope_challenge(&claims(serde_json::json!({"roles": ["user"]})), &on("/b")),
            None
        );
        let challenge = pr
            .scope_challenge(&claims(serde_json::json!({"roles": ["admin"]})), &on("/b"))
            .unwrap();
        assert!(
            challenge.starts_with(
                "Bearer error=\"insufficient_scope\", scope=\"x y\", resource_metadata="
            ),
            "{challenge}"
        );
    }
}
