//! A bundle compiled for evaluation, and the decision procedure.
//!
//! Semantics: deny rules are checked first, then allow rules; when no allow
//! rule matches the request is denied (`default_deny`).

use serde_json::Value;

use crate::bundle::{Bundle, ClaimCondition, ClaimTest, PathCondition, Rule, RuleEffect};
use crate::claims::Claims;
use crate::decision::{Decision, Effect, Reason};
use crate::request::RequestAttrs;

/// An active policy: the bundle plus its rules split by effect.
#[derive(Debug, Clone)]
pub struct Policy {
    bundle: Bundle,
    deny: Vec<usize>,
    allow: Vec<usize>,
}

impl Policy {
    /// Compiles a validated bundle.
    pub fn new(bundle: Bundle) -> Self {
        let (mut deny, mut allow) = (Vec::new(), Vec::new());
        for (i, rule) in bundle.rules.iter().enumerate() {
            match rule.effect {
                RuleEffect::Deny => deny.push(i),
                RuleEffect::Allow => allow.push(i),
            }
        }
        Self {
            bundle,
            deny,
            allow,
        }
    }

    /// The bundle this policy enforces.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// Decides a request from its verified claims.
    pub fn decide(&self, claims: &Claims, request: &RequestAttrs<'_>) -> Decision {
        let rules = &self.bundle.rules;
        if let Some(rule) = self
            .deny
            .iter()
            .map(|&i| &rules[i])
            .find(|r| matches(r, claims, request))
        {
            return decided(rule, Effect::Deny, Reason::RuleDeny);
        }
        if let Some(rule) = self
            .allow
            .iter()
            .map(|&i| &rules[i])
            .find(|r| matches(r, claims, request))
        {
            return decided(rule, Effect::Allow, Reason::RuleAllow);
        }
        Decision::deny(Reason::DefaultDeny)
    }
}

fn decided(rule: &Rule, effect: Effect, reason: Reason) -> Decision {
    Decision {
        effect,
        rule_id: Some(rule.id.clone()),
        reason,
    }
}

fn matches(rule: &Rule, claims: &Claims, request: &RequestAttrs<'_>) -> bool {
    let when = &rule.when;
    if !when.methods.is_empty() && !when.methods.iter().any(|m| m == request.method) {
        return false;
    }
    if let Some(path) = &when.path {
        let ok = match path {
            PathCondition::Exact(p) => request.path == p,
            PathCondition::Prefix(p) => request.path.starts_with(p.as_str()),
        };
        if !ok {
            return false;
        }
    }
    when.claims.iter().all(|c| claim_holds(c, claims))
}

fn claim_holds(condition: &ClaimCondition, claims: &Claims) -> bool {
    let value = claims.get(&condition.claim);
    match (&condition.test, value) {
        (ClaimTest::Exists(expected), v) => v.is_some() == *expected,
        (_, None) => false,
        (ClaimTest::Equals(expected), Some(v)) => json_eq(v, expected),
        (ClaimTest::OneOf(options), Some(v)) => options.iter().any(|o| json_eq(v, o)),
        (ClaimTest::ContainsAny(wanted), Some(v)) => {
            wanted.iter().any(|w| claim_members(v).any(|m| m == w))
        }
    }
}

/// Numbers compare by value so `1` and `1.0` are equal (Envoy metadata
/// turns every JSON number into a double).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The string members of a claim: array elements, or the words of a
/// space-separated string such as OAuth's `scope`.
fn claim_members(value: &Value) -> Box<dyn Iterator<Item = &str> + '_> {
    match value {
        Value::Array(items) => Box::new(items.iter().filter_map(Value::as_str)),
        Value::String(s) => Box::new(s.split(' ').filter(|w| !w.is_empty())),
        _ => Box::new(std::iter::empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(rules: &str) -> Policy {
        let text = format!(r#"{{"name":"t","version":1,"rules":{rules}}}"#);
        Policy::new(Bundle::parse(text.as_bytes()).unwrap())
    }

    fn claims(text: &str) -> Claims {
        Claims::from_json(text.as_bytes()).unwrap()
    }

    fn post(path: &str) -> RequestAttrs<'_> {
        RequestAttrs::new("POST", path, "model.local")
    }

    const USERS: &str = r#"[
        {"id":"no-suspended","effect":"deny","when":{"claims":[{"claim":"suspended","equals":true}]}},
        {"id":"users","effect":"allow","when":{"methods":["POST"],"path":{"prefix":"/v1/"},
            "claims":[{"claim":"roles","contains_any":["model-user"]}]}},
        {"id":"scoped","effect":"allow","when":{"path":{"exact":"/mcp"},
            "claims":[{"claim":"scope","contains_any":["mcp:call"]}]}}
    ]"#;

    #[test]
    fn allow_rule_matches() {
        let d = policy(USERS).decide(&claims(r#"{"roles":["model-user"]}"#), &post("/v1/chat"));
        assert_eq!(
            (d.effect, d.reason, d.rule_label()),
            (Effect::Allow, Reason::RuleAllow, "users")
        );
    }

    #[test]
    fn deny_rules_win_over_allow() {
        let c = claims(r#"{"roles":["model-user"],"suspended":true}"#);
        let d = policy(USERS).decide(&c, &post("/v1/chat"));
        assert_eq!((d.effect, d.rule_label()), (Effect::Deny, "no-suspended"));
    }

    #[test]
    fn nothing_matching_is_default_deny() {
        let p = policy(USERS);
        for (c, path) in [
            (r#"{"roles":["viewer"]}"#, "/v1/chat"),
            (r#"{"roles":["model-user"]}"#, "/admin"),
            (r#"{}"#, "/v1/chat"),
            (r#"{"roles":"model-user-x"}"#, "/v1/chat"),
        ] {
            let d = p.decide(&claims(c), &post(path));
            assert_eq!(
                (d.effect, d.reason, d.rule_label()),
                (Effect::Deny, Reason::DefaultDeny, "default_deny"),
                "{c} {path}"
            );
        }
    }

    #[test]
    fn method_and_query_strings_are_respected() {
        let p = policy(USERS);
        let c = claims(r#"{"roles":["model-user"]}"#);
        assert_eq!(
            p.decide(&c, &RequestAttrs::new("GET", "/v1/x", "h")).effect,
            Effect::Deny
        );
        // A query string cannot turn an exact path into a non-match or vice versa.
        let s = claims(r#"{"scope":"openid mcp:call"}"#);
        assert_eq!(p.decide(&s, &post("/mcp?x=1")).effect, Effect::Allow);
        assert_eq!(p.decide(&s, &post("/mcpx")).effect, Effect::Deny);
    }

    #[test]
    fn equals_one_of_and_exists() {
        let p = policy(
            r#"[
            {"id":"n","effect":"allow","when":{"claims":[{"claim":"level","equals":3}]}},
            {"id":"t","effect":"allow","when":{"claims":[{"claim":"org.tenant","one_of":["a","b"]}]}},
            {"id":"e","effect":"deny","when":{"claims":[{"claim":"banned","exists":true}]}}
        ]"#,
        );
        let r = post("/");
        assert_eq!(p.decide(&claims(r#"{"level":3.0}"#), &r).rule_label(), "n");
        assert_eq!(
            p.decide(&claims(r#"{"org":{"tenant":"b"}}"#), &r)
                .rule_label(),
            "t"
        );
        assert_eq!(
            p.decide(&claims(r#"{"org":{"tenant":"c"}}"#), &r).reason,
            Reason::DefaultDeny
        );
        assert_eq!(
            p.decide(&claims(r#"{"level":3,"banned":false}"#), &r)
                .rule_label(),
            "e"
        );
    }
}
