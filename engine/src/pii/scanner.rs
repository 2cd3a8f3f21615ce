//! The compiled scanner: settings turned into lookup tables (and an
//! automaton for custom terms) once, then shared (read-only) by every
//! scrub of every response.

// Per-type tables are `[_; PiiType::ALL.len()]` indexed by `PiiType::index()`, which is below that length by construction.
#![allow(clippy::indexing_slicing)]

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use super::config::{Action, PiiConfig, PiiConfigError, PiiType, MAX_TERM_LEN, MIN_HASH_KEY_LEN};
use super::core::Core;
use super::hash::Hasher;
use super::keywords::Keywords;
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

/// The keywords, their detector, and their bucket in the keyword finder
/// (keywords sharing a bucket should share their first bytes, so the
/// nibble tables stay selective).
pub(crate) const KEYWORDS: &[(&str, Kw, u8)] = &[
    ("AKIA", Kw::AwsKeyId, 0),
    ("ASIA", Kw::AwsKeyId, 0),
    ("AGPA", Kw::AwsKeyId, 0),
    ("AIDA", Kw::AwsKeyId, 0),
    ("AROA", Kw::AwsKeyId, 0),
    ("ANPA", Kw::AwsKeyId, 0),
    ("ANVA", Kw::AwsKeyId, 0),
    ("AIPA", Kw::AwsKeyId, 0),
    ("secret", Kw::Secret, 1),
    ("Secret", Kw::Secret, 1),
    ("SECRET", Kw::Secret, 1),
    ("ghp_", Kw::Github, 2),
    ("gho_", Kw::Github, 2),
    ("ghu_", Kw::Github, 2),
    ("ghs_", Kw::Github, 2),
    ("ghr_", Kw::Github, 2),
    ("github_pat_", Kw::GithubPat, 2),
    ("xoxb-", Kw::Slack, 3),
    ("xoxa-", Kw::Slack, 3),
    ("xoxp-", Kw::Slack, 3),
    ("xoxr-", Kw::Slack, 3),
    ("xoxs-", Kw::Slack, 3),
    ("sk_live_", Kw::Stripe, 4),
    ("sk_test_", Kw::Stripe, 4),
    ("rk_live_", Kw::Stripe, 4),
    ("rk_test_", Kw::Stripe, 4),
    ("AIza", Kw::Google, 0),
    ("eyJ", Kw::Jwt, 5),
    ("Bearer", Kw::Bearer, 6),
    ("bearer", Kw::Bearer, 6),
    ("BEARER", Kw::Bearer, 6),
    ("-----BEGIN ", Kw::Pem, 7),
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
    pub(crate) keywords: Option<Keywords>,
    pub(crate) terms: Option<AhoCorasick>,
    /// Longest keyword or term: candidates closer than this to the end of
    /// the received data wait for more bytes.
    pub(crate) max_keyword: usize,
    /// Every enabled keyword and term, lower case: what the end of
    /// received text may be the start of (see [`Scanner::keyword_tail`]).
    starts: Vec<Box<[u8]>>,
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
            // so it does not fail; should that change, scan nothing
            // rather than panic.
            Err(_) => Scanner {
                enabled: [false; PiiType::ALL.len()],
                actions: [Action::Mask; PiiType::ALL.len()],
                keywords: None,
                terms: None,
                max_keyword: 1,
                starts: Vec::new(),
                hasher: None,
                triggers: false,
            },
        }
    }
}

impl Scanner {
    /// How many of the last bytes of `text` could be the start of a
    /// keyword or term still to come: only those wait for more bytes.
    /// (Holding back a fixed `max_keyword - 1` bytes instead delayed
    /// every streamed token by that many bytes.) Compared without case,
    /// which can only hold back more.
    pub(crate) fn keyword_tail(&self, text: &[u8]) -> usize {
        let longest = self.max_keyword.saturating_sub(1).min(text.len());
        (1..=longest)
            .rev()
            .find(|&k| {
                let tail = text.get(text.len() - k..).unwrap_or(&[]);
                self.starts.iter().any(|w| {
                    w.len() > k && w.get(..k).is_some_and(|h| h.eq_ignore_ascii_case(tail))
                })
            })
            .unwrap_or(0)
    }

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
        let chosen: Vec<(&str, Kw, u8)> = KEYWORDS
            .iter()
            .copied()
            .filter(|(_, k, _)| k.enabled_by(on))
            .collect();
        let keywords = Keywords::new(&chosen);
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
        let max_keyword = keywords
            .as_ref()
            .map(Keywords::longest)
            .into_iter()
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
            terms: terms_ac,
            max_keyword,
            starts: chosen
                .iter()
                .map(|(w, _, _)| *w)
                .chain(terms.iter().map(String::as_str))
                .map(|w| w.to_ascii_lowercase().into_bytes().into_boxed_slice())
                .collect(),
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
        let mut found: Vec<Finding> = Vec::new();
        for e in &core.edits {
            match found.last_mut() {
                Some(last) if e.cont => last.end = e.end as usize,
                _ => found.push(Finding {
                    ty: e.ty,
                    start: e.start as usize,
                    end: e.end as usize,
                }),
            }
        }
        found
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
