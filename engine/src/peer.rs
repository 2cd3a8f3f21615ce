//! Workload identity: the SPIFFE ID of the peer on the downstream mTLS
//! connection (Istio puts it in the client certificate's URI SAN), the
//! `when.peers` patterns matched against it, and the bundle's
//! `identity.workloads` settings for callers without a token.
//!
//! Everything here works on validated text: a [`SpiffeId`] can only be
//! made by [`SpiffeId::parse`], and a pattern that does not parse never
//! matches, so a malformed pattern cannot widen a rule.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::conditions::Conditions;

/// Longest SPIFFE ID accepted (the SPIFFE ID specification's limit).
pub const MAX_SPIFFE_ID_BYTES: usize = 2048;
/// Longest trust domain accepted.
pub const MAX_TRUST_DOMAIN_BYTES: usize = 255;

const SCHEME: &str = "spiffe://";

/// Why a text is not a SPIFFE ID (or a peer pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SpiffeError {
    /// It does not start with `spiffe://` (lower case).
    #[error("must start with `spiffe://`")]
    Scheme,
    /// Longer than the SPIFFE limits.
    #[error("is longer than {MAX_SPIFFE_ID_BYTES} bytes (or its trust domain than {MAX_TRUST_DOMAIN_BYTES})")]
    TooLong,
    /// No trust domain after the scheme.
    #[error("has an empty trust domain")]
    EmptyTrustDomain,
    /// The trust domain has a character outside `a-z 0-9 . - _` (this
    /// rules out upper case, ports and userinfo).
    #[error("trust domain may hold only lower-case letters, digits, `.`, `-` and `_` (no port, no userinfo)")]
    TrustDomainChar,
    /// A `?` or `#`.
    #[error("must not have a query or fragment")]
    QueryOrFragment,
    /// An empty, `.` or `..` path segment, or a trailing `/`.
    #[error("has an empty, `.` or `..` path segment")]
    Segment,
    /// A path character outside `A-Z a-z 0-9 . - _` (percent-encoding
    /// included).
    #[error("path may hold only letters, digits, `.`, `-` and `_` between slashes")]
    PathChar,
    /// A `*` that is not a whole final segment.
    #[error("`*` is allowed only as a whole final path segment (`.../*`)")]
    Wildcard,
}

/// A validated SPIFFE ID, e.g. `spiffe://cluster.local/ns/agents/sa/agent`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpiffeId(String);

fn trust_domain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Checks a trust domain name (as in `identity.workloads.trust_domains`).
pub fn check_trust_domain(domain: &str) -> Result<(), SpiffeError> {
    if domain.is_empty() {
        return Err(SpiffeError::EmptyTrustDomain);
    }
    if domain.len() > MAX_TRUST_DOMAIN_BYTES {
        return Err(SpiffeError::TooLong);
    }
    if !domain.bytes().all(trust_domain_byte) {
        return Err(SpiffeError::TrustDomainChar);
    }
    Ok(())
}

impl SpiffeId {
    /// Parses the strict SPIFFE ID syntax: scheme `spiffe`, a lower-case
    /// trust domain without port or userinfo, then zero or more path
    /// segments of `[A-Za-z0-9._-]`, none empty, `.` or `..`; no query,
    /// fragment or percent-encoding.
    pub fn parse(text: &str) -> Result<Self, SpiffeError> {
        if text.len() > MAX_SPIFFE_ID_BYTES {
            return Err(SpiffeError::TooLong);
        }
        let rest = text.strip_prefix(SCHEME).ok_or(SpiffeError::Scheme)?;
        if rest.contains(['?', '#']) {
            return Err(SpiffeError::QueryOrFragment);
        }
        let (domain, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        check_trust_domain(domain)?;
        if !path.is_empty() {
            for segment in path.split('/').skip(1) {
                if segment.is_empty() || segment == "." || segment == ".." {
                    return Err(SpiffeError::Segment);
                }
                if segment.contains('*') {
                    return Err(SpiffeError::Wildcard);
                }
                if !segment.bytes().all(path_byte) {
                    return Err(SpiffeError::PathChar);
                }
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The ID as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain (between `spiffe://` and the path).
    pub fn trust_domain(&self) -> &str {
        let rest = self.0.get(SCHEME.len()..).unwrap_or_default();
        rest.split('/').next().unwrap_or_default()
    }
}

impl std::fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `when.peers` entry, compiled: an exact ID, or `ID/*` matching the
/// IDs below it at a path-segment boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerPattern {
    /// Exactly this ID.
    Exact(String),
    /// Any ID that starts with this text, which ends in `/` (so only
    /// whole segments below it match).
    Below(String),
    /// A pattern that did not parse: matches nothing (fail closed).
    Never,
}

impl PeerPattern {
    /// Checks a pattern as written in a bundle.
    pub fn check(text: &str) -> Result<(), SpiffeError> {
        match text.strip_suffix("/*") {
            Some(base) => SpiffeId::parse(base).map(drop),
            None => SpiffeId::parse(text).map(drop),
        }
    }

    /// Compiles a pattern; one that does not check becomes [`Self::Never`].
    pub fn compile(text: &str) -> Self {
        if Self::check(text).is_err() {
            return Self::Never;
        }
        match text.strip_suffix('*') {
            Some(base) => Self::Below(base.to_owned()),
            None => Self::Exact(text.to_owned()),
        }
    }

    /// Whether a peer's ID matches.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        let id = id.as_str();
        match self {
            Self::Exact(exact) => id == exact,
            Self::Below(base) => id.len() > base.len() && id.starts_with(base.as_str()),
            Self::Never => false,
        }
    }
}

/// Whether any pattern matches the peer; no peer matches nothing.
pub fn any_matches(patterns: &[PeerPattern], peer: Option<&SpiffeId>) -> bool {
    peer.is_some_and(|id| patterns.iter().any(|p| p.matches(id)))
}

/// Whether an allow rule may admit a workload-only caller (one identified
/// by its SPIFFE ID alone, without a token): it must name the peers it
/// admits, and test nothing about claims. Otherwise a rule written for
/// token holders (say `claims: [{"claim": "suspended", "exists": false}]`,
/// or no condition on the caller at all) would let every workload in.
pub fn admits_workload_only(when: &Conditions) -> bool {
    !when.peers.is_empty() && when.claims.is_empty() && when.relations.is_empty()
}

/// `identity.workloads`: callers identified by their peer SPIFFE ID.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadIdentity {
    /// A request without a token but with a peer SPIFFE ID from one of
    /// `trust_domains` is identified by that ID instead of being refused
    /// as `missing_token`.
    #[serde(default)]
    pub allow_without_token: bool,
    /// Trust domains whose workloads may call without a token.
    #[serde(default)]
    pub trust_domains: Vec<String>,
}

impl WorkloadIdentity {
    /// Whether this peer may be identified without a token.
    pub fn admits(&self, peer: &SpiffeId) -> bool {
        self.allow_without_token && self.trust_domains.iter().any(|d| d == peer.trust_domain())
    }

    /// Problems as (JSON path suffix, message), for bundle validation.
    pub fn issues(&self) -> Vec<(String, String)> {
        let mut issues = Vec::new();
        if self.allow_without_token && self.trust_domains.is_empty() {
            issues.push((
                "trust_domains".to_owned(),
                "must list at least one trust domain when `allow_without_token` is true".to_owned(),
            ));
        }
        for (i, domain) in self.trust_domains.iter().enumerate() {
            if let Err(e) = check_trust_domain(domain) {
                issues.push((format!("trust_domains[{i}]"), e.to_string()));
            }
        }
        issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(text: &str) -> SpiffeId {
        SpiffeId::parse(text).unwrap()
    }

    #[test]
    fn valid_ids_parse_with_their_trust_domain() {
        let a = id("spiffe://cluster.local/ns/agents/sa/agent");
        assert_eq!(a.trust_domain(), "cluster.local");
        assert_eq!(id("spiffe://example.org").trust_domain(), "example.org");
        assert_eq!(
            id("spiffe://td_1-x/A.b-c_9").as_str(),
            "spiffe://td_1-x/A.b-c_9"
        );
    }

    #[test]
    fn malformed_ids_are_refused_with_a_reason() {
        use SpiffeError::*;
        for (text, want) in [
            ("SPIFFE://cluster.local/ns/a", Scheme),
            ("https://cluster.local/ns/a", Scheme),
            ("spiffe:/cluster.local/ns/a", Scheme),
            ("spiffe://", EmptyTrustDomain),
            ("spiffe:///ns/a", EmptyTrustDomain),
            ("spiffe://Cluster.local/ns/a", TrustDomainChar),
            ("spiffe://cluster.local:443/ns/a", TrustDomainChar),
            ("spiffe://user@cluster.local/ns/a", TrustDomainChar),
            ("spiffe://cluster.local/ns/a?x=1", QueryOrFragment),
            ("spiffe://cluster.local/ns/a#f", QueryOrFragment),
            ("spiffe://cluster.local/", Segment),
            ("spiffe://cluster.local/ns//a", Segment),
            ("spiffe://cluster.local/ns/./a", Segment),
            ("spiffe://cluster.local/ns/../a", Segment),
            ("spiffe://cluster.local/ns/a/", Segment),
            ("spiffe://cluster.local/ns/%61", PathChar),
            ("spiffe://cluster.local/ns/a b", PathChar),
            ("spiffe://cluster.local/ns/*", Wildcard),
        ] {
            assert_eq!(SpiffeId::parse(text), Err(want), "{text}");
        }
        let long = format!("spiffe://td/{}", "a".repeat(MAX_SPIFFE_ID_BYTES));
        assert_eq!(SpiffeId::parse(&long), Err(TooLong));
        let long_domain = format!("spiffe://{}/a", "d".repeat(256));
        assert_eq!(SpiffeId::parse(&long_domain), Err(TooLong));
    }

    #[test]
    fn wildcards_match_only_below_a_segment_boundary() {
        let p = PeerPattern::compile("spiffe://cluster.local/ns/agents/*");
        assert!(p.matches(&id("spiffe://cluster.local/ns/agents/sa/agent")));
        assert!(p.matches(&id("spiffe://cluster.local/ns/agents/x")));
        assert!(!p.matches(&id("spiffe://cluster.local/ns/agents")));
        assert!(!p.matches(&id("spiffe://cluster.local/ns/agents-evil/sa/x")));
        assert!(!p.matches(&id("spiffe://cluster.local/ns/agentsx")));
        assert!(!p.matches(&id("spiffe://cluster.local.evil/ns/agents/sa/x")));
        let domain = PeerPattern::compile("spiffe://cluster.local/*");
        assert!(domain.matches(&id("spiffe://cluster.local/a")));
        assert!(!domain.matches(&id("spiffe://cluster.local")));
        assert!(!domain.matches(&id("spiffe://cluster.localhost/a")));
    }

    #[test]
    fn exact_patterns_match_only_the_same_id() {
        let p = PeerPattern::compile("spiffe://cluster.local/ns/agents/sa/agent");
        assert!(p.matches(&id("spiffe://cluster.local/ns/agents/sa/agent")));
        assert!(!p.matches(&id("spiffe://cluster.local/ns/agents/sa/agent2")));
        assert!(!p.matches(&id("spiffe://cluster.local/ns/agents/sa/Agent")));
        assert!(!p.matches(&id("spiffe://cluster.local/ns/agents/sa/agent/x")));
    }

    #[test]
    fn bad_patterns_match_nothing() {
        for text in [
            "*",
            "spiffe:/*",
            "spiffe://*",
            "spiffe://cluster.local/ns/*/sa/x",
            "spiffe://cluster.local/ns/agents*",
            "spiffe://cluster.local/ns/agents/**",
            "spiffe://Cluster.local/*",
            "",
        ] {
            assert!(PeerPattern::check(text).is_err(), "{text}");
            let p = PeerPattern::compile(text);
            assert_eq!(p, PeerPattern::Never, "{text}");
            assert!(!p.matches(&id("spiffe://cluster.local/ns/agents/sa/x")));
        }
        assert!(!any_matches(&[PeerPattern::compile("*")], None));
    }

    #[test]
    fn workloads_admit_listed_trust_domains_only_when_enabled() {
        let mut w = WorkloadIdentity {
            allow_without_token: true,
            trust_domains: vec!["cluster.local".into()],
        };
        assert!(w.admits(&id("spiffe://cluster.local/ns/a/sa/b")));
        assert!(!w.admits(&id("spiffe://cluster.local.evil/ns/a/sa/b")));
        assert!(!w.admits(&id("spiffe://other.td/ns/a/sa/b")));
        w.allow_without_token = false;
        assert!(!w.admits(&id("spiffe://cluster.local/ns/a/sa/b")));
        let bad = WorkloadIdentity {
            allow_without_token: true,
            trust_domains: vec![],
        };
        assert_eq!(bad.issues().len(), 1);
        let bad = WorkloadIdentity {
            allow_without_token: false,
            trust_domains: vec!["Cluster.Local".into(), "td:80".into()],
        };
        assert_eq!(bad.issues().len(), 2);
    }

    mod decisions {
        use super::id;
        use crate::{Claims, Effect, Policy, Reason, RequestAttrs};

        const BUNDLE: &str = r#"{"name": "w", "version": 1,
            "identity": {"workloads": {"allow_without_token": true, "trust_domains": ["cluster.local"]}},
            "rules": [
              {"id": "deny-suspended", "effect": "deny",
               "when": {"claims": [{"claim": "suspended", "equals": true}]}},
              {"id": "open-health", "effect": "allow", "when": {"path": {"exact": "/health"}}},
              {"id": "no-tenant", "effect": "allow",
               "when": {"path": {"prefix": "/t/"}, "claims": [{"claim": "tenant", "exists": false}]}},
              {"id": "agent", "effect": "allow",
               "when": {"path": {"prefix": "/mcp"}, "peers": ["spiffe://cluster.local/ns/agents/sa/agent"]}},
              {"id": "user-from-agents", "effect": "allow",
               "when": {"path": {"prefix": "/both"}, "peers": ["spiffe://cluster.local/ns/agents/*"],
                        "claims": [{"claim": "sub", "equals": "alice"}]}}
            ]}"#;

        fn policy() -> Policy {
            Policy::compile(BUNDLE.as_bytes()).unwrap()
        }

        fn decide(
            path: &str,
            peer: Option<&str>,
            claims: Option<&str>,
        ) -> (Effect, Option<String>) {
            let policy = policy();
            let peer = peer.map(id);
            let workload_only = claims.is_none();
            let claims = claims.map_or_else(Claims::default, |c| {
                Claims::from_json(c.as_bytes()).unwrap()
            });
            let request =
                RequestAttrs::new("POST", path, "h").with_peer(peer.as_ref(), workload_only);
            let d = policy.decide(&claims, &request);
            (d.effect, d.rule_id.map(|r| r.to_string()))
        }

        #[test]
        fn a_workload_only_caller_is_admitted_only_by_rules_naming_it() {
            let agent = Some("spiffe://cluster.local/ns/agents/sa/agent");
            let other = Some("spiffe://cluster.local/ns/agents/sa/other");
            assert_eq!(
                decide("/mcp", agent, None),
                (Effect::Allow, Some("agent".into()))
            );
            assert_eq!(decide("/mcp", other, None), (Effect::Deny, None));
            // Rules without `peers`, or testing claims (even `exists:
            // false`), never admit a workload-only caller.
            assert_eq!(decide("/health", agent, None), (Effect::Deny, None));
            assert_eq!(decide("/t/x", agent, None), (Effect::Deny, None));
            assert_eq!(decide("/both", agent, None), (Effect::Deny, None));
            // Token callers are unchanged by the workload rules.
            assert_eq!(
                decide("/health", None, Some(r#"{"sub":"bob"}"#)),
                (Effect::Allow, Some("open-health".into()))
            );
        }

        #[test]
        fn with_a_token_the_peer_is_checked_as_well() {
            let alice = Some(r#"{"sub":"alice"}"#);
            let agent = Some("spiffe://cluster.local/ns/agents/sa/agent");
            assert_eq!(
                decide("/both", agent, alice),
                (Effect::Allow, Some("user-from-agents".into()))
            );
            assert_eq!(decide("/both", None, alice), (Effect::Deny, None));
            assert_eq!(
                decide("/both", Some("spiffe://cluster.local/ns/web/sa/x"), alice),
                (Effect::Deny, None)
            );
            assert_eq!(
                decide("/both", agent, Some(r#"{"sub":"bob"}"#)),
                (Effect::Deny, None)
            );
            // A token caller from the agent workload also matches `agent`.
            assert_eq!(
                decide("/mcp", agent, alice),
                (Effect::Allow, Some("agent".into()))
            );
            // Deny rules still apply to token callers from any peer.
            let suspended = Some(r#"{"sub":"alice","suspended":true}"#);
            assert_eq!(
                decide("/both", agent, suspended),
                (Effect::Deny, Some("deny-suspended".into()))
            );
        }

        #[test]
        fn explain_names_the_workload_condition() {
            let policy = policy();
            let peer = id("spiffe://cluster.local/ns/agents/sa/agent");
            let request = RequestAttrs::new("GET", "/health", "h").with_peer(Some(&peer), true);
            let e = policy.explain(&Claims::default(), &request);
            assert_eq!(e.decision.reason, Reason::DefaultDeny);
            let health = e.rules.iter().find(|r| r.id == "open-health").unwrap();
            assert!(!health.matched);
            assert!(
                health.conditions[0].condition.contains("workload-only"),
                "{health:?}"
            );
        }

        #[test]
        fn bundles_with_bad_peers_or_trust_domains_are_refused() {
            let text = BUNDLE
                .replace(
                    "spiffe://cluster.local/ns/agents/*",
                    "spiffe://cluster.local/ns/agents*",
                )
                .replace(r#"["cluster.local"]"#, r#"["cluster.local:80"]"#);
            let issues = crate::Bundle::parse(text.as_bytes()).unwrap_err().issues();
            let paths: Vec<_> = issues.iter().map(|i| i.path.as_str()).collect();
            assert_eq!(
                paths,
                [
                    "$.identity.workloads.trust_domains[0]",
                    "$.rules[4].when.peers[0]"
                ]
            );
        }
    }
}
