//! Limits compiled once at activation: which allowed requests a limit
//! counts, the caller key it counts them under, and the window.

use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{KeyBy, RateLimit, Store};
use crate::bundle::{Rule, RuleEffect};
use crate::claims::Claims;
use crate::policy::CompiledRule;
use crate::request::RequestAttrs;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    /// Requests per window.
    Requests(u64),
    /// LLM tokens per window.
    Tokens(u64),
}

impl LimitKind {
    /// The count or budget per window.
    pub fn amount(self) -> u64 {
        match self {
            LimitKind::Requests(n) | LimitKind::Tokens(n) => n,
        }
    }
}

/// A fixed window aligned to UTC (to the Unix epoch, which days, hours
/// and minutes are aligned to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First second of the window (Unix time).
    pub start: u64,
    /// Length in seconds.
    pub secs: u64,
}

impl Window {
    /// The window `now` (Unix seconds) falls in.
    pub fn at(now: u64, secs: u64) -> Self {
        let secs = secs.max(1);
        Self {
            start: now - now % secs,
            secs,
        }
    }

    /// Whole seconds until the next window starts (at least 1: a client
    /// told to retry in 0 seconds would retry at once).
    pub fn reset_in(&self, now: u64) -> u64 {
        self.start
            .saturating_add(self.secs)
            .saturating_sub(now)
            .max(1)
    }
}

/// A caller key: the values a limit is keyed by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerKey {
    /// Descriptor entries for the rate-limit service, in `by` order:
    /// (`claim.<path>` | `model` | `tool`, value). A value longer than
    /// [`MAX_PLAIN_VALUE`] bytes, or one that could be mistaken for
    /// another (not printable ASCII, the absent marker, a digest), is
    /// sent as `sha256:<hex>`.
    pub entries: Vec<(String, String)>,
    /// SHA-256 over the limit id, its kind and every part, each part
    /// length-prefixed and tagged (absent, string, other JSON): two
    /// distinct callers never share a digest by concatenation.
    pub digest: [u8; 32],
}

/// Value of a key part the caller lacks: every such caller shares one
/// budget (keyed, never unlimited).
pub const ABSENT: &str = "(absent)";

/// Longest key value sent as is to the rate-limit service.
pub const MAX_PLAIN_VALUE: usize = 64;

impl CallerKey {
    /// The shared-data key of this caller's counter under limit `id`:
    /// bounded (the id is at most 64 characters, the digest 32 hex).
    pub fn shared_key(&self, id: &str) -> String {
        let mut key = String::with_capacity(14 + id.len() + 33);
        key.push_str("mcp_guard.rl.");
        key.push_str(id);
        key.push('.');
        for b in self.digest.iter().take(16) {
            let _ = write!(key, "{b:02x}");
        }
        key
    }
}

/// One limit that applies to one request, with the caller's key.
#[derive(Debug, Clone)]
pub struct LimitHit {
    /// Position in the policy's compiled limits.
    pub index: usize,
    /// The caller key.
    pub key: CallerKey,
}

/// One limit, compiled.
#[derive(Debug, Clone)]
pub struct CompiledLimit {
    /// Limit id.
    pub id: Arc<str>,
    /// What it counts and how many per window.
    pub kind: LimitKind,
    /// Window length, seconds.
    pub window_secs: u64,
    /// What the key is built from.
    pub by: KeyBy,
    /// Where the counters live.
    pub store: Store,
    /// Recorded, never refused.
    pub dry_run: bool,
    /// The `when` conditions as a rule (evaluated like access rules).
    rule: Rule,
    compiled: CompiledRule,
}

impl CompiledLimit {
    /// Compiles a validated limit.
    pub fn new(limit: &RateLimit) -> Self {
        let kind = match (limit.requests, limit.tokens) {
            (Some(n), _) => LimitKind::Requests(n),
            (None, Some(n)) => LimitKind::Tokens(n),
            // Validation refuses this; a limit of 0 refuses everything.
            (None, None) => LimitKind::Requests(0),
        };
        // A deny-effect rule: the workload-only guard of allow rules does
        // not apply to which requests a limit counts.
        let rule = Rule {
            id: limit.id.clone(),
            effect: RuleEffect::Deny,
            dry_run: false,
            description: String::new(),
            when: limit.when.clone(),
        };
        let compiled = CompiledRule::new(&rule);
        Self {
            id: limit.id.as_str().into(),
            kind,
            window_secs: limit.per.seconds(),
            by: limit.by.clone(),
            store: limit.store,
            dry_run: limit.dry_run,
            rule,
            compiled,
        }
    }

    /// The `when` conditions as a rule (what the body needs is derived
    /// from them like from access rules).
    pub fn rule(&self) -> &Rule {
        &self.rule
    }

    /// Whether the limit counts this request.
    pub fn applies(&self, claims: &Claims, request: &RequestAttrs<'_>) -> bool {
        self.compiled
            .matches(&self.rule, claims, request, &mut crate::policy::no_trace())
    }

    /// The caller's key under this limit. `tool` is the MCP tool the
    /// request calls, if any.
    pub fn caller_key(
        &self,
        claims: &Claims,
        model: Option<&str>,
        tool: Option<&str>,
    ) -> CallerKey {
        let mut hasher = Sha256::new();
        hasher.update(b"mcp-guard rate limit v1\0");
        part(&mut hasher, self.id.as_bytes());
        part(
            &mut hasher,
            match self.kind {
                LimitKind::Requests(_) => b"r",
                LimitKind::Tokens(_) => b"t",
            },
        );
        let mut entries = Vec::with_capacity(self.by.claims.len() + 2);
        for path in &self.by.claims {
            let value = claims.get(path);
            let (tag, text) = match value {
                None | Some(Value::Null) => (b'a', String::new()),
                Some(Value::String(s)) => (b's', s.clone()),
                Some(other) => (b'j', other.to_string()),
            };
            entries.push((format!("claim.{path}"), tagged(&mut hasher, tag, &text)));
        }
        if self.by.model {
            let (tag, text) = model.map_or((b'a', ""), |m| (b's', m));
            entries.push(("model".into(), tagged(&mut hasher, tag, text)));
        }
        if self.by.tool {
            let (tag, text) = tool.map_or((b'a', ""), |t| (b's', t));
            entries.push(("tool".into(), tagged(&mut hasher, tag, text)));
        }
        CallerKey {
            entries,
            digest: hasher.finalize().into(),
        }
    }
}

/// Hashes one length-prefixed part.
fn part(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// Hashes one tagged key part and returns its descriptor value.
fn tagged(hasher: &mut Sha256, tag: u8, text: &str) -> String {
    hasher.update([tag]);
    part(hasher, text.as_bytes());
    if tag == b'a' {
        return ABSENT.to_owned();
    }
    let plain = tag == b's'
        && !text.is_empty()
        && text.len() <= MAX_PLAIN_VALUE
        && text.bytes().all(|b| b.is_ascii_graphic())
        && text != ABSENT
        && !text.starts_with("sha256:");
    if plain {
        return text.to_owned();
    }
    let mut h = Sha256::new();
    h.update([tag]);
    h.update(text.as_bytes());
    let digest: [u8; 32] = h.finalize().into();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use crate::rate_limit::Per;

    fn limit(json: &str) -> CompiledLimit {
        let l: RateLimit = serde_json::from_str(json).unwrap();
        CompiledLimit::new(&l)
    }

    fn claims(json: &str) -> Claims {
        Claims::new(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn windows_are_aligned_to_utc() {
        let w = Window::at(86_400 * 3 + 5, Per::Day.seconds());
        assert_eq!(w.start, 86_400 * 3);
        assert_eq!(w.reset_in(86_400 * 4 - 1), 1);
        // At the very edge the next window starts: never 0 seconds.
        assert_eq!(Window::at(120, 60).start, 120);
        assert_eq!(Window::at(119, 60).reset_in(119), 1);
        assert_eq!(Window::at(0, 0).secs, 1);
    }

    #[test]
    fn keys_separate_callers_and_share_absent() {
        let l = limit(r#"{"id":"a","requests":1,"per":"second","by":{"claims":["sub","tenant"]}}"#);
        let k1 = l.caller_key(&claims(r#"{"sub":"ab","tenant":"c"}"#), None, None);
        let k2 = l.caller_key(&claims(r#"{"sub":"a","tenant":"bc"}"#), None, None);
        assert_ne!(k1.digest, k2.digest);
        let none1 = l.caller_key(&claims(r#"{"tenant":"c"}"#), None, None);
        let none2 = l.caller_key(&claims(r#"{"tenant":"c","sub":null}"#), None, None);
        assert_eq!(none1.digest, none2.digest);
        assert_eq!(none1.entries[0].1, ABSENT);
        // A caller whose claim is literally the marker is not the absent one.
        let marker = l.caller_key(&claims(r#"{"tenant":"c","sub":"(absent)"}"#), None, None);
        assert_ne!(marker.digest, none1.digest);
        assert!(marker.entries[0].1.starts_with("sha256:"));
        // A number and the string of its digits differ.
        let n = l.caller_key(&claims(r#"{"sub":1,"tenant":"c"}"#), None, None);
        let s = l.caller_key(&claims(r#"{"sub":"1","tenant":"c"}"#), None, None);
        assert_ne!(n.digest, s.digest);
        assert_ne!(n.entries[0].1, s.entries[0].1);
    }

    #[test]
    fn long_values_are_hashed_and_keys_bounded() {
        let l = limit(r#"{"id":"a","tokens":1,"per":"hour","by":{"claims":["sub"],"model":true}}"#);
        let long = "x".repeat(100_000);
        let k = l.caller_key(
            &claims(&format!(r#"{{"sub":"{long}"}}"#)),
            Some("gpt"),
            None,
        );
        assert!(k.entries[0].1.starts_with("sha256:") && k.entries[0].1.len() == 71);
        assert_eq!(k.entries[1], ("model".into(), "gpt".into()));
        assert!(k.shared_key("a").len() < 64);
    }
}
