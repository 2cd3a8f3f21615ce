//! The compiled scanner: settings turned into lookup tables and automata
//! once, then shared (read-only) by every scrub of every response.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::config::{Action, PiiConfig, PiiConfigError, PiiType, MAX_TERM_LEN, MIN_HASH_KEY_LEN};
use super::core::Core;
use super::hash::Hasher;
use super::report::PiiReport;

/// Which detector a keyword starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kw {
    AwsKeyId,
    Secret,
    Github,
    GithubPat,
    Slack,
    Stripe,
    Google,
    Jwt,
    Bearer,
    Pem,
}

const KEYWORDS: &[(&str, Kw)] = &[
    ("AKIA", Kw::AwsKeyId),
    ("ASIA", Kw::AwsKeyId),
    ("AGPA", Kw::AwsKeyId),
    ("AIDA", Kw::AwsKeyId),
    ("AROA", Kw::AwsKeyId),
    ("ANPA", Kw::AwsKeyId),
    ("ANVA", Kw::AwsKeyId),
    ("AIPA", Kw::AwsKeyId),
    ("secret", Kw::Secret),
    ("Secret", Kw::Secret),
    ("SECRET", Kw::Secret),
    ("ghp_", Kw::Github),
    ("gho_", Kw::Github),
    ("ghu_", Kw::Github),
    ("ghs_", Kw::Github),
    ("ghr_", Kw::Github),
    ("github_pat_", Kw::GithubPat),
    ("xoxb-", Kw::Slack),
    ("xoxa-", Kw::Slack),
    ("xoxp-", Kw::Slack),
    ("xoxr-", Kw::Slack),
    ("xoxs-", Kw::Slack),
    ("sk_live_", Kw::Stripe),
    ("sk_test_", Kw::Stripe),
    ("rk_live_", Kw::Stripe),
    ("rk_test_", Kw::Stripe),
    ("AIza", Kw::Google),
    ("eyJ", Kw::Jwt),
    ("Bearer", Kw::Bearer),
    ("bearer", Kw::Bearer),
    ("BEARER", Kw::Bearer),
    ("-----BEGIN ", Kw::Pem),
];

impl Kw {
    fn enabled_by(self, on: impl Fn(PiiType) -> bool) -> bool {
        match self {
            Kw::AwsKeyId => on(PiiType::AwsKey) || on(PiiType::AwsSecret),
            Kw::Secret => on(PiiType::AwsSecret),
            Kw::Pem => on(PiiType::PrivateKey),
            _ => on(PiiType::Token),
        }
    }
}

/// A compiled [`PiiConfig`]: build once per configuration, share freely
/// (`Send + Sync`, no interior mutability), scrub any number of bodies.
#[derive(Debug, Clone)]
pub struct Scanner {
    enabled: [bool; PiiType::ALL.len()],
    actions: [Action; PiiType::ALL.len()],
    pub(crate) keywords: Option<AhoCorasick>,
    pub(crate) keyword_kinds: Vec<Kw>,
    pub(crate) terms: Option<AhoCorasick>,
    /// Longest keyword or term: candidates closer than this to the end of
    /// the received data wait for more bytes.
    pub(crate) max_keyword: usize,
    pub(crate) hasher: Option<Hasher>,
    /// Any detector triggered by digits, `:` or `@` is on.
    pub(crate) triggers: bool,
}

/// One value found by [`Scanner::find`]: where, and of what type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// Its type.
    pub ty: PiiType,
    /// Byte offset of its first byte.
    pub start: usize,
    /// Byte offset just past its last byte.
    pub end: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        match Scanner::new(&PiiConfig::default()) {
            Ok(s) => s,
            // The default configuration has no terms and no hash action,
            // so the only failure left is the keyword automaton itself.
            Err(_) => Scanner {
                enabled: [false; PiiType::ALL.len()],
                actions: [Action::Mask; PiiType::ALL.len()],
                keywords: None,
                keyword_kinds: Vec::new(),
                terms: None,
                max_keyword: 1,
                hasher: None,
                triggers: false,
            },
        }
    }
}

impl Scanner {
    /// Compiles `cfg`. Fails on empty or overlong custom terms and on a
    /// `hash` action without a usable key.
    pub fn new(cfg: &PiiConfig) -> Result<Self, PiiConfigError> {
        let mut enabled = [false; PiiType::ALL.len()];
        for t in &cfg.enabled {
            enabled[t.index()] = true;
        }
        let mut terms = Vec::new();
        for (i, t) in cfg.custom_terms.iter().enumerate() {
            let t = t.trim();
            if t.is_empty() {
                return Err(PiiConfigError::EmptyTerm(i));
            }
            if t.len() > MAX_TERM_LEN {
                return Err(PiiConfigError::TermTooLong(i));
            }
            terms.push(t.to_string());
        }
        enabled[PiiType::Custom.index()] = !terms.is_empty();
        let mut actions = [Action::Mask; PiiType::ALL.len()];
        for t in PiiType::ALL {
            actions[t.index()] = cfg.action(t);
        }
        let needs_key = PiiType::ALL
            .iter()
            .any(|t| enabled[t.index()] && actions[t.index()] == Action::Hash);
        let hasher = match cfg.hash_key.as_deref() {
            Some(k) if k.len() >= MIN_HASH_KEY_LEN => Hasher::new(k.as_bytes()),
            _ => None,
        };
        if needs_key && hasher.is_none() {
            return Err(PiiConfigError::MissingHashKey);
        }
        let on = |t: PiiType| enabled[t.index()];
        let chosen: Vec<(&str, Kw)> = KEYWORDS
            .iter()
            .copied()
            .filter(|(_, k)| k.enabled_by(on))
            .collect();
        let keywords = if chosen.is_empty() {
            None
        } else {
            // A full DFA: a few KiB for these short patterns, and several
            // times faster than the NFA on prose full of `s`, `A`, `B`.
            let built = AhoCorasickBuilder::new()
                .kind(Some(AhoCorasickKind::DFA))
                .match_kind(MatchKind::LeftmostFirst)
                .build(chosen.iter().map(|(p, _)| p))
                .map_err(|e| PiiConfigError::Matcher(e.to_string()))?;
            Some(built)
        };
        let terms_ac = if terms.is_empty() {
            None
        } else {
            let built = AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(true)
                .build(&terms)
                .map_err(|e| PiiConfigError::Matcher(e.to_string()))?;
            Some(built)
        };
        let max_keyword = chosen
            .iter()
            .map(|(p, _)| p.len())
            .chain(terms.iter().map(String::len))
            .max()
            .unwrap_or(1);
        let triggers = [
            PiiType::Email,
            PiiType::Phone,
            PiiType::Card,
            PiiType::Ssn,
            PiiType::Iban,
            PiiType::Ip,
        ]
        .iter()
        .any(|&t| on(t));
        Ok(Self {
            enabled,
            actions,
            keywords,
            keyword_kinds: chosen.iter().map(|&(_, k)| k).collect(),
            terms: terms_ac,
            max_keyword,
            hasher,
            triggers,
        })
    }

    /// Is `ty` detected?
    pub fn enabled(&self, ty: PiiType) -> bool {
        self.enabled.get(ty.index()).copied().unwrap_or(false)
    }

    /// The action configured for `ty`.
    pub fn action(&self, ty: PiiType) -> Action {
        self.actions.get(ty.index()).copied().unwrap_or_default()
    }

    /// Lists the values in `text` (plain text rules), without replacing
    /// anything. Useful for tests and dry runs.
    pub fn find(&self, text: &[u8]) -> Vec<Finding> {
        let mut core = Core::new(false);
        core.text.extend_from_slice(text);
        core.run(self, true);
        core.edits
            .iter()
            .map(|e| Finding {
                ty: e.ty,
                start: e.start as usize,
                end: e.end as usize,
            })
            .collect()
    }

    /// Scrubs plain text (`text/*`) into `out` (cleared first). In this
    /// mode a backslash escape right before a value counts as a boundary,
    /// so JSON served as text stays valid too.
    pub fn scrub_text(&self, input: &[u8], out: &mut Vec<u8>) -> PiiReport {
        out.clear();
        let mut s = super::stream::TextStream::new(true);
        s.push(self, input, out);
        s.finish(self, out);
        s.report()
    }

    /// Scrubs a JSON (or NDJSON) document into `out` (cleared first):
    /// only string values are scanned (escapes decoded), keys, numbers
    /// and every untouched byte are kept as they were.
    pub fn scrub_json(&self, input: &[u8], out: &mut Vec<u8>) -> PiiReport {
        out.clear();
        let mut s = super::json::JsonStream::new();
        s.push(self, input, out);
        s.finish(self, out);
        s.report()
    }

    /// Scrubs already-decoded text into `out` (cleared first), with no
    /// backslash-escape handling: the reference the SSE mode's rewritten
    /// deltas are checked against.
    pub fn scrub_plain(&self, input: &[u8], out: &mut Vec<u8>) -> PiiReport {
        out.clear();
        let mut s = super::stream::TextStream::new(false);
        s.push(self, input, out);
        s.finish(self, out);
        s.report()
    }
}
