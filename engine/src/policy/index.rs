//! An index from request attributes to the rules that could match, so the
//! cost of a decision grows with the rules that share the request's keys
//! rather than with the whole bundle.
//!
//! A rule's *exact keys* are values a request must carry for the rule to
//! match: an exact MCP tool, resource or prompt, an exact model, an exact
//! path, the literal first path segment of a prefix or template, an exact
//! MCP method, an exact HTTP method. Each rule is filed under the one kind
//! of key whose buckets are smallest across the bundle (so 10,000 model
//! rules under one chat path are filed by model, and 10,000 path rules
//! sharing one model by path), or in `always` when it has none. Claims
//! compared for string equality (`equals: "x"`, `one_of: ["x", "y"]`)
//! count as exact keys too, for the [`CLAIM_SLOTS`] claim names the
//! bundle tests that way most often ([`ClaimSlots`]), so 1,000 deny rules
//! on one tenant each cost nothing to other tenants. A request
//! looks up one bucket per kind and walks the union in rule order; every
//! condition is still checked, so the index only prunes.
//!
//! Buckets are keyed by a 64-bit hash of (kind, key) and hold no strings:
//! a collision only adds candidates that evaluation then rejects, so an
//! attacker choosing keys gains at most the cost of one existing bucket.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use crate::bundle::{PathCondition, Rule};
use crate::claims::Claims;
use crate::conditions::{ClaimCondition, ClaimTest};
use crate::mcp::TargetKind;
use crate::request::RequestAttrs;

use super::eval::CompiledRule;

/// The kinds of exact key, in the order that breaks ties (most selective
/// in typical bundles first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tool,
    Resource,
    Prompt,
    Model,
    Path,
    Segment,
    McpMethod,
    Method,
    /// A string-equality claim, by slot in [`ClaimSlots`].
    Claim0,
    Claim1,
    Claim2,
    Claim3,
}

/// How many kinds there are: the size of a request's key set.
const KINDS: usize = 12;

/// How many claim names can be indexed.
pub const CLAIM_SLOTS: usize = 4;

impl Kind {
    const ALL: [Kind; KINDS] = [
        Kind::Tool,
        Kind::Resource,
        Kind::Prompt,
        Kind::Model,
        Kind::Path,
        Kind::Segment,
        Kind::McpMethod,
        Kind::Method,
        Kind::Claim0,
        Kind::Claim1,
        Kind::Claim2,
        Kind::Claim3,
    ];

    /// The claim slot of a claim kind.
    fn claim_slot(self) -> Option<usize> {
        match self {
            Kind::Claim0 => Some(0),
            Kind::Claim1 => Some(1),
            Kind::Claim2 => Some(2),
            Kind::Claim3 => Some(3),
            _ => None,
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// A bucket: a run of the shared position table.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u32,
    len: u32,
}

/// Bucket keys are already well-mixed hashes: use them as they are.
#[derive(Debug, Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in regardless.
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(MUL);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// A 64-bit hash of one key of one kind (FxHash-style rounds over 8-byte
/// words, then a murmur3 finaliser so every bit of the result is mixed).
fn key_hash(kind: Kind, key: &str) -> u64 {
    let bytes = key.as_bytes();
    let mut h = (kind as u64 + 1).wrapping_mul(MUL) ^ bytes.len() as u64;
    let mut words = bytes.chunks_exact(8);
    for word in words.by_ref() {
        let mut buf = [0u8; 8];
        buf.iter_mut().zip(word).for_each(|(d, s)| *d = *s);
        h = (h.rotate_left(23) ^ u64::from_le_bytes(buf)).wrapping_mul(MUL);
    }
    let mut buf = [0u8; 8];
    buf.iter_mut()
        .zip(words.remainder())
        .for_each(|(d, s)| *d = *s);
    h = (h.rotate_left(23) ^ u64::from_le_bytes(buf)).wrapping_mul(MUL);
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The kinds of key an index files rules under.
#[derive(Debug, Clone, Copy, Default)]
pub struct KindSet(u16);

impl KindSet {
    /// Both sets.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// The claim names indexed as exact keys: those the bundle's rules test
/// for string equality most often (at most [`CLAIM_SLOTS`]), chosen once
/// per policy so the deny and allow indexes and every request agree.
#[derive(Debug, Clone, Default)]
pub struct ClaimSlots {
    names: Box<[Box<str>]>,
}

/// The strings a claim must equal for `condition` to hold, when it is a
/// string-equality test: `equals` a string, or `one_of` only strings
/// (numbers compare by value and never equal a string; see `json_eq`).
fn claim_strings(condition: &ClaimCondition) -> Option<Vec<&str>> {
    match &condition.test {
        ClaimTest::Equals(Value::String(s)) => Some(vec![s.as_str()]),
        ClaimTest::OneOf(options) if !options.is_empty() => {
            options.iter().map(Value::as_str).collect()
        }
        _ => None,
    }
}

impl ClaimSlots {
    /// Picks the names from `rules`: most string-equality tests first,
    /// ties by name, so the choice does not depend on rule order.
    pub fn choose(rules: &[Rule]) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for rule in rules {
            for c in &rule.when.claims {
                if claim_strings(c).is_some() {
                    *counts.entry(c.claim.as_str()).or_default() += 1;
                }
            }
        }
        let mut ranked: Vec<(&str, usize)> = counts.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        Self {
            names: ranked
                .into_iter()
                .take(CLAIM_SLOTS)
                .map(|(name, _)| Box::from(name))
                .collect(),
        }
    }

    fn name(&self, slot: usize) -> Option<&str> {
        self.names.get(slot).map(|n| &**n)
    }
}

/// Rule positions (into the policy's rule list) by key.
#[derive(Debug, Clone, Default)]
pub struct RuleIndex {
    buckets: HashMap<u64, Span, BuildHasherDefault<PassThrough>>,
    positions: Box<[u32]>,
    always: Box<[u32]>,
    /// The kinds some rule is filed under: lookups of others are skipped.
    kinds: u16,
}

fn all_exact(names: &[String]) -> Option<&[String]> {
    (!names.is_empty() && names.iter().all(|n| !n.ends_with('*'))).then_some(names)
}

/// The first path segment (`/v1/chat` → `v1`).
fn first_segment(path: &str) -> &str {
    path.strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .next()
        .unwrap_or_default()
}

/// A prefix's first segment when the prefix contains it whole (`/v1/` or
/// `/v1/chat`, not `/v1` which also matches `/v10`).
fn prefix_segment(prefix: &str) -> Option<&str> {
    let rest = prefix.strip_prefix('/')?;
    let (segment, _) = rest.split_once('/')?;
    (!segment.is_empty()).then_some(segment)
}

/// The values of one kind of key a request must carry for `rule` to
/// match, when the rule has that kind (an empty answer means it has not).
fn rule_keys<'r>(
    kind: Kind,
    rule: &'r Rule,
    compiled: &'r CompiledRule,
    slots: &ClaimSlots,
    out: &mut Vec<&'r str>,
) {
    out.clear();
    let when = &rule.when;
    if let Some(slot) = kind.claim_slot() {
        // Every claim condition must hold, so any one string-equality
        // test on the slot's claim names values the request must carry.
        let strings = slots.name(slot).and_then(|name| {
            when.claims
                .iter()
                .filter(|c| c.claim == name)
                .find_map(claim_strings)
        });
        out.extend(strings.into_iter().flatten());
        out.sort_unstable();
        out.dedup();
        return;
    }
    let mcp = when.mcp.as_ref();
    let list = match kind {
        Kind::Tool => mcp.and_then(|m| all_exact(&m.tools)),
        Kind::Resource => mcp.and_then(|m| all_exact(&m.resources)),
        Kind::Prompt => mcp.and_then(|m| all_exact(&m.prompts)),
        Kind::Model => all_exact(&when.models),
        Kind::McpMethod => mcp.and_then(|m| all_exact(&m.methods)),
        Kind::Method => (!when.methods.is_empty()).then_some(when.methods.as_slice()),
        Kind::Claim0 | Kind::Claim1 | Kind::Claim2 | Kind::Claim3 => None,
        Kind::Path => {
            if let Some(PathCondition::Exact(p)) = &when.path {
                out.push(p);
            }
            None
        }
        Kind::Segment => {
            let segment = match &when.path {
                Some(PathCondition::Prefix(p)) => prefix_segment(p),
                Some(PathCondition::Template(_)) => compiled
                    .template
                    .as_ref()
                    .and_then(|t| t.literal_first_segment()),
                _ => None,
            };
            out.extend(segment);
            None
        }
    };
    out.extend(list.into_iter().flatten().map(String::as_str));
    out.sort_unstable();
    out.dedup();
}

/// The request's key of each kind, hashed once and shared by the deny and
/// allow indexes (and the dry-run pass).
#[derive(Debug, Clone, Copy)]
pub struct RequestKeys {
    hashes: [Option<u64>; KINDS],
}

impl RequestKeys {
    /// Hashes the keys `request` (and the caller's `claims`) carry, of the
    /// kinds some index uses (see [`RuleIndex::kinds`]).
    pub fn of(
        request: &RequestAttrs<'_>,
        claims: &Claims,
        slots: &ClaimSlots,
        kinds: KindSet,
    ) -> Self {
        let call = request.mcp;
        let target_kind = call.and_then(|c| c.target_kind());
        let target = call.and_then(|c| c.target.as_deref());
        let key = |kind: Kind| -> Option<&str> {
            match kind {
                Kind::Tool => target.filter(|_| target_kind == Some(TargetKind::Tool)),
                Kind::Resource => target.filter(|_| target_kind == Some(TargetKind::Resource)),
                Kind::Prompt => target.filter(|_| target_kind == Some(TargetKind::Prompt)),
                Kind::Model => request.model,
                Kind::Path => Some(request.path),
                Kind::Segment => Some(first_segment(request.path)),
                Kind::McpMethod => call.map(|c| c.method.as_str()),
                Kind::Method => Some(request.method),
                // Only a string claim can equal a string.
                Kind::Claim0 | Kind::Claim1 | Kind::Claim2 | Kind::Claim3 => kind
                    .claim_slot()
                    .and_then(|slot| slots.name(slot))
                    .and_then(|name| claims.get(name))
                    .and_then(Value::as_str),
            }
        };
        Self {
            hashes: Kind::ALL.map(|kind| {
                key(kind)
                    .filter(|_| kinds.0 & kind.bit() != 0)
                    .map(|k| key_hash(kind, k))
            }),
        }
    }
}

impl RuleIndex {
    /// Indexes `rules` (parallel to `compiled`), keeping those `keep`
    /// selects; positions are indexes into `rules`.
    pub fn build(
        rules: &[Rule],
        compiled: &[CompiledRule],
        slots: &ClaimSlots,
        keep: impl Fn(&Rule) -> bool,
    ) -> Self {
        let selected = || {
            rules
                .iter()
                .zip(compiled)
                .enumerate()
                .filter(|(_, (rule, _))| keep(rule))
        };
        // How many rules each (kind, key) would hold if every rule were
        // filed under every key it has.
        let mut counts: HashMap<u64, u32, BuildHasherDefault<PassThrough>> = HashMap::default();
        let mut keys = Vec::new();
        for (_, (rule, c)) in selected() {
            for kind in Kind::ALL {
                rule_keys(kind, rule, c, slots, &mut keys);
                for key in &keys {
                    *counts.entry(key_hash(kind, key)).or_default() += 1;
                }
            }
        }
        let mut entries: Vec<(u64, u32)> = Vec::new();
        let mut always = Vec::new();
        let mut kinds = 0u16;
        for (position, (rule, c)) in selected() {
            let position = position as u32;
            // The kind whose buckets hold the fewest rules in total wins;
            // ties go to the earlier kind.
            let mut best: Option<(u64, Kind)> = None;
            for kind in Kind::ALL {
                rule_keys(kind, rule, c, slots, &mut keys);
                if keys.is_empty() {
                    continue;
                }
                let cost: u64 = keys
                    .iter()
                    .map(|k| u64::from(counts.get(&key_hash(kind, k)).copied().unwrap_or(0)))
                    .sum();
                if best.is_none_or(|(b, _)| cost < b) {
                    best = Some((cost, kind));
                }
            }
            match best {
                Some((_, kind)) => {
                    rule_keys(kind, rule, c, slots, &mut keys);
                    kinds |= kind.bit();
                    entries.extend(keys.iter().map(|k| (key_hash(kind, k), position)));
                }
                None => always.push(position),
            }
        }
        entries.sort_unstable();
        entries.dedup();
        let mut buckets: HashMap<u64, Span, BuildHasherDefault<PassThrough>> = HashMap::default();
        for (i, (hash, _)) in entries.iter().enumerate() {
            buckets
                .entry(*hash)
                .or_insert(Span {
                    start: i as u32,
                    len: 0,
                })
                .len += 1;
        }
        buckets.shrink_to_fit();
        Self {
            buckets,
            positions: entries.into_iter().map(|(_, p)| p).collect(),
            always: always.into_boxed_slice(),
            kinds,
        }
    }

    /// The kinds of key rules are filed under here.
    pub fn kinds(&self) -> KindSet {
        KindSet(self.kinds)
    }

    /// The rules that could match a request with these keys, ascending
    /// and without repeats.
    pub fn candidates(&self, keys: &RequestKeys) -> Candidates<'_> {
        let mut runs: [&[u32]; KINDS + 1] = [&[]; KINDS + 1];
        let mut slots = runs.iter_mut();
        if let Some(slot) = slots.next() {
            *slot = &self.always;
        }
        for (kind, hash) in Kind::ALL.iter().zip(keys.hashes) {
            if self.kinds & kind.bit() == 0 {
                continue;
            }
            let run = hash.and_then(|h| self.buckets.get(&h)).and_then(|s| {
                self.positions
                    .get(s.start as usize..(s.start as usize).saturating_add(s.len as usize))
            });
            if let (Some(run), Some(slot)) = (run, slots.next()) {
                *slot = run;
            }
        }
        Candidates { runs }
    }
}

/// A merge of ascending runs of rule positions, in rule order, each
/// position once. Borrows the index; allocates nothing.
pub struct Candidates<'i> {
    runs: [&'i [u32]; KINDS + 1],
}

impl Iterator for Candidates<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let next = self.runs.iter().filter_map(|r| r.first()).min().copied()?;
        for run in &mut self.runs {
            while run.first() == Some(&next) {
                *run = run.get(1..).unwrap_or_default();
            }
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_segments_need_a_whole_segment() {
        assert_eq!(prefix_segment("/v1/"), Some("v1"));
        assert_eq!(prefix_segment("/v1/chat"), Some("v1"));
        assert_eq!(prefix_segment("/v1"), None);
        assert_eq!(prefix_segment("/"), None);
        assert_eq!(prefix_segment("//x"), None);
        assert_eq!(first_segment("/v1/chat"), "v1");
        assert_eq!(first_segment("/"), "");
    }

    #[test]
    fn hashes_separate_kinds_lengths_and_cases() {
        let h = |k, s| key_hash(k, s);
        assert_ne!(h(Kind::Tool, "a"), h(Kind::Model, "a"));
        assert_ne!(h(Kind::Path, "/v1"), h(Kind::Path, "/v1/"));
        assert_ne!(h(Kind::Model, "gpt-4"), h(Kind::Model, "GPT-4"));
        assert_ne!(h(Kind::Model, "a"), h(Kind::Model, "a\0"));
        assert_ne!(h(Kind::Model, ""), h(Kind::Model, "\0"));
        assert_eq!(h(Kind::Tool, "same"), h(Kind::Tool, "same"));
    }

    #[test]
    fn candidates_merge_in_order_without_repeats() {
        let mut runs: [&[u32]; KINDS + 1] = [&[]; KINDS + 1];
        runs[0] = &[1, 5, 9];
        runs[1] = &[2, 5, 5];
        runs[3] = &[0, 9];
        runs[KINDS] = &[12];
        let merged: Vec<u32> = Candidates { runs }.collect();
        assert_eq!(merged, [0, 1, 2, 5, 9, 12]);
    }
}
