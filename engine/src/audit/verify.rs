//! The trail verifier: re-walks every chain found in a set of access logs
//! and says where the log was edited, records dropped, inserted or
//! reordered, or cut short before a countersigned checkpoint.
//!
//! Several files are one stream, in the order given (rotated logs oldest
//! first). Records are grouped by chain id; within a chain, file order must
//! be sequence order, sequence numbers must run from 1 (or from a trusted
//! checkpoint) without gap or repeat, and every hash must recompute from
//! the previous one. Everything is held in memory: about the size of the
//! records in the logs.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use ed25519_dalek::VerifyingKey;
use serde::Serialize;

use super::chain::{genesis, link, to_hex};
use super::checkpoint::Countersigned;
use super::record::{extract, parse, LineRecord};

/// One log file: a name for findings and its bytes.
#[derive(Debug, Clone)]
pub struct LogFile {
    /// Shown in findings (`name:line`).
    pub name: String,
    /// The file's contents.
    pub bytes: Vec<u8>,
}

/// What kind of tampering a finding shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A record's hash does not recompute, or the record cannot be read.
    Edited,
    /// Sequence numbers are missing.
    Dropped,
    /// A record repeats a sequence number already seen.
    Inserted,
    /// A record comes after one with a higher sequence number.
    Reordered,
    /// A countersigned checkpoint lies beyond the chain's last record.
    Truncated,
    /// The record at a checkpoint's sequence number has another hash.
    CheckpointMismatch,
    /// A checkpoint whose countersignature does not verify (ignored).
    BadCheckpoint,
    /// The service refused a checkpoint post for this chain (another hash
    /// at or beyond a countersigned seq): two parties claim the chain.
    CheckpointConflict,
}

impl FindingKind {
    /// The word printed.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Edited => "edited",
            FindingKind::Dropped => "dropped",
            FindingKind::Inserted => "inserted",
            FindingKind::Reordered => "reordered",
            FindingKind::Truncated => "truncated",
            FindingKind::CheckpointMismatch => "checkpoint mismatch",
            FindingKind::BadCheckpoint => "bad checkpoint",
            FindingKind::CheckpointConflict => "checkpoint conflict",
        }
    }
}

/// One problem, with where it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What it is.
    pub kind: FindingKind,
    /// File name (none for a checkpoint-only finding).
    pub file: Option<String>,
    /// 1-based line number in that file.
    pub line: Option<usize>,
    /// The chain, when known.
    pub chain: Option<String>,
    /// The sequence number concerned, when known.
    pub seq: Option<u64>,
    /// Human explanation.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            _ => f.write_str("checkpoints: ")?,
        }
        write!(f, "{}", self.kind.as_str())?;
        if let Some(chain) = &self.chain {
            write!(f, ": chain {chain}")?;
        }
        if let Some(seq) = self.seq {
            write!(f, " seq {seq}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// Counts for one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FileSummary {
    /// The file.
    pub name: String,
    /// Lines read.
    pub lines: usize,
    /// Records found (readable or not).
    pub records: usize,
    /// `-`, empty and record-less JSON lines.
    pub skipped: usize,
    /// Lines of another format, without a sign of a record.
    pub unrecognised: usize,
}

/// Where one chain stands after the walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// Chain id.
    pub chain: String,
    /// Lowest sequence number present.
    pub first_seq: u64,
    /// Highest sequence number present.
    pub last_seq: u64,
    /// Records read (repeats included).
    pub records: usize,
    /// Highest trusted checkpoint that matches a record of the log.
    pub checkpoint_seq: Option<u64>,
    /// When the service received that checkpoint (ms since the epoch).
    pub checkpoint_received_at: Option<u64>,
    /// Records after that checkpoint (all records when none): their
    /// integrity rests on the chain alone, so a cut tail goes unnoticed.
    pub unprovable_tail: u64,
    /// Findings about this chain.
    pub findings: usize,
    /// The chain starts after seq 1 with no checkpoint right before: the
    /// first record present cannot be recomputed (only with
    /// [`Options::rotated`] is that not a finding).
    pub head_missing: bool,
}

/// The verifier's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Per file counts.
    pub files: Vec<FileSummary>,
    /// Per chain summaries, in order of first appearance.
    pub chains: Vec<ChainSummary>,
    /// Every problem found, chains in order, then checkpoints.
    pub findings: Vec<Finding>,
    /// Checkpoints whose countersignature verified.
    pub trusted_checkpoints: usize,
    /// Chains that have checkpoints but no record in the logs (other
    /// proxies, older logs, or a whole chain removed). One whose node's
    /// log runs on past its countersignature is also a `dropped` finding
    /// (unless [`Options::rotated`]).
    pub checkpointed_chains_absent: Vec<String>,
}

impl Report {
    /// No finding at all.
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    /// Adds a conflict the service recorded (`GET /v1/checkpoints`), if
    /// its chain is one of the logs' chains: someone posted another head
    /// for it, so either the proxy's log was rewritten and re-checkpointed,
    /// or a forger raced the proxy (the proxy's later posts were refused).
    pub fn add_conflict(&mut self, chain: &str, seq: u64, detail: String) {
        let Some(summary) = self.chains.iter_mut().find(|c| c.chain == chain) else {
            return;
        };
        summary.findings += 1;
        self.findings.push(Finding {
            kind: FindingKind::CheckpointConflict,
            file: None,
            line: None,
            chain: Some(chain.to_owned()),
            seq: Some(seq),
            detail,
        });
    }
}

/// A trusted checkpoint, hash decoded.
#[derive(Debug, Clone)]
struct Anchor {
    hash: [u8; 32],
    received_at: u64,
}

/// One record as found; the hashed bytes borrowed from the file when the
/// line is the record.
#[derive(Debug)]
struct Entry<'a> {
    file: usize,
    line: usize,
    seq: u64,
    hash: [u8; 32],
    prefix: Cow<'a, str>,
    text_len: usize,
}

/// Verifies `files` as one stream without checkpoints: only the chains.
pub fn verify(files: &[LogFile]) -> Report {
    verify_with(files, &[], &[])
}

/// How strict the walk is beyond tampering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// The oldest logs were rotated away: a chain that starts after seq 1
    /// (with no checkpoint right before it) is not a finding. Its first
    /// record's own hash cannot be recomputed then (its predecessor is
    /// gone), which the summary says (`head_missing`). Nor is a
    /// checkpointed chain of a logged node that has no record left.
    pub rotated: bool,
}

/// Verifies `files` as one stream against countersigned `checkpoints`,
/// whose signatures must verify with one of `keys` (others are reported as
/// [`FindingKind::BadCheckpoint`] and ignored).
pub fn verify_with(
    files: &[LogFile],
    checkpoints: &[Countersigned],
    keys: &[VerifyingKey],
) -> Report {
    verify_with_options(files, checkpoints, keys, Options::default())
}

/// [`verify_with`], with [`Options`].
pub fn verify_with_options(
    files: &[LogFile],
    checkpoints: &[Countersigned],
    keys: &[VerifyingKey],
    options: Options,
) -> Report {
    let mut report = Report::default();
    let mut damaged = Vec::new();
    let mut chains: Vec<(String, Vec<Entry<'_>>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (f, file) in files.iter().enumerate() {
        let mut summary = FileSummary {
            name: file.name.clone(),
            ..FileSummary::default()
        };
        let mut lines: Vec<&[u8]> = file.bytes.split(|b| *b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop(); // after the final newline
        }
        for (n, raw) in lines.into_iter().enumerate() {
            summary.lines += 1;
            let line = match std::str::from_utf8(raw) {
                Ok(line) => line,
                Err(_) => {
                    let lossy = String::from_utf8_lossy(raw);
                    match extract(&lossy) {
                        LineRecord::Skipped | LineRecord::Unrecognised => summary.unrecognised += 1,
                        _ => {
                            summary.records += 1;
                            damaged.push(finding(files, f, n, None, None, "not UTF-8".into()));
                        }
                    }
                    continue;
                }
            };
            let text = match extract(line) {
                LineRecord::Skipped => {
                    summary.skipped += 1;
                    continue;
                }
                LineRecord::Unrecognised => {
                    summary.unrecognised += 1;
                    continue;
                }
                LineRecord::Damaged(why) => {
                    summary.records += 1;
                    damaged.push(finding(files, f, n, None, None, why));
                    continue;
                }
                LineRecord::Record(text) => text,
            };
            summary.records += 1;
            let parsed = match &text {
                Cow::Borrowed(t) => parse(t).map(|s| {
                    (
                        s.chain,
                        s.seq,
                        s.hash,
                        Cow::Borrowed(s.prefix),
                        s.text.len(),
                    )
                }),
                Cow::Owned(t) => parse(t).map(|s| {
                    (
                        s.chain,
                        s.seq,
                        s.hash,
                        Cow::Owned(s.prefix.to_owned()),
                        s.text.len(),
                    )
                }),
            };
            let (chain, seq, hash, prefix, text_len) = match parsed {
                Ok(p) => p,
                Err(why) => {
                    damaged.push(finding(files, f, n, None, None, why));
                    continue;
                }
            };
            let slot = *index.entry(chain.clone()).or_insert_with(|| {
                chains.push((chain, Vec::new()));
                chains.len() - 1
            });
            if let Some((_, entries)) = chains.get_mut(slot) {
                entries.push(Entry {
                    file: f,
                    line: n,
                    seq,
                    hash,
                    prefix,
                    text_len,
                });
            }
        }
        report.files.push(summary);
    }
    for d in &mut damaged {
        d.kind = FindingKind::Edited;
    }
    report.findings.extend(damaged);

    // Trusted checkpoints per chain, by seq.
    let mut anchors: HashMap<String, BTreeMap<u64, Vec<Anchor>>> = HashMap::new();
    let mut bad = Vec::new();
    for cp in checkpoints {
        match cp.verify(keys) {
            Ok(hash) => {
                report.trusted_checkpoints += 1;
                anchors
                    .entry(cp.chain.clone())
                    .or_default()
                    .entry(cp.seq)
                    .or_default()
                    .push(Anchor {
                        hash,
                        received_at: cp.received_at,
                    });
            }
            Err(e) => bad.push(Finding {
                kind: FindingKind::BadCheckpoint,
                file: None,
                line: None,
                chain: Some(shown(&cp.chain)),
                seq: Some(cp.seq),
                detail: shown(&format!("{e}; ignored")),
            }),
        }
    }
    let empty = BTreeMap::new();
    for (chain, entries) in &chains {
        let cps = anchors.get(chain).unwrap_or(&empty);
        let (summary, findings) = walk(files, chain, entries, cps, options);
        report.chains.push(summary);
        report.findings.extend(findings);
    }
    let mut absent: Vec<String> = anchors
        .keys()
        .filter(|c| !index.contains_key(*c))
        .cloned()
        .collect();
    absent.sort();
    if !options.rotated {
        report
            .findings
            .extend(vanished_chains(files, &chains, &anchors, &absent));
    }
    report.checkpointed_chains_absent = absent;
    report.findings.extend(bad);
    report
}

/// `text` safe to print: control and bidi characters as `\u{..}`. An
/// untrusted checkpoint list (a file, a hostile service) reaches the
/// auditor's terminal through its refused entries' chain ids and key ids.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The node part of a chain id (`node/nonce`).
fn node_of(chain: &str) -> &str {
    chain.rsplit_once('/').map_or(chain, |(node, _)| node)
}

/// A record's `ts` (sealed records start with it).
fn record_ts(prefix: &str) -> Option<u64> {
    let rest = prefix.strip_prefix("{\"ts\":")?;
    let end = rest.find(|c: char| !c.is_ascii_digit())?;
    rest.get(..end)?.parse().ok()
}

/// Checkpointed chains with no record in the logs although the logs of
/// their node go on past the countersignature: a worker's whole chain
/// removed from a log that is otherwise there. (Chains of other nodes
/// are only listed; `--rotated` logs may lack any chain's early part.)
fn vanished_chains(
    files: &[LogFile],
    chains: &[(String, Vec<Entry<'_>>)],
    anchors: &HashMap<String, BTreeMap<u64, Vec<Anchor>>>,
    absent: &[String],
) -> Vec<Finding> {
    let mut last_ts: HashMap<&str, (u64, &Entry<'_>)> = HashMap::new();
    for (chain, entries) in chains {
        for e in entries {
            let Some(ts) = record_ts(&e.prefix) else {
                continue;
            };
            let slot = last_ts.entry(node_of(chain)).or_insert((ts, e));
            if ts > slot.0 {
                *slot = (ts, e);
            }
        }
    }
    let mut out = Vec::new();
    for chain in absent {
        let Some(&(ts, e)) = last_ts.get(node_of(chain)) else {
            continue;
        };
        let Some((seq, at)) = anchors.get(chain).and_then(|cps| {
            cps.iter()
                .flat_map(|(seq, list)| list.iter().map(move |a| (*seq, a.received_at)))
                .filter(|(_, at)| *at <= ts)
                .max_by_key(|(seq, _)| *seq)
        }) else {
            continue;
        };
        out.push(Finding {
            kind: FindingKind::Dropped,
            file: files.get(e.file).map(|f| f.name.clone()),
            line: None,
            chain: Some(chain.clone()),
            seq: Some(seq),
            detail: format!(
                "records 1..={seq} of this chain were countersigned at {at} ms, while its node's log ran on (to {ts} ms), but none is in the logs"
            ),
        });
    }
    out
}

fn finding(
    files: &[LogFile],
    file: usize,
    line0: usize,
    chain: Option<&str>,
    seq: Option<u64>,
    detail: String,
) -> Finding {
    Finding {
        kind: FindingKind::Edited,
        file: files.get(file).map(|f| f.name.clone()),
        line: Some(line0 + 1),
        chain: chain.map(str::to_owned),
        seq,
        detail,
    }
}

/// Walks one chain's records in file order.
fn walk(
    files: &[LogFile],
    chain: &str,
    entries: &[Entry],
    cps: &BTreeMap<u64, Vec<Anchor>>,
    options: Options,
) -> (ChainSummary, Vec<Finding>) {
    let mut out = Vec::new();
    let at = |e: &Entry, kind: FindingKind, detail: String| Finding {
        kind,
        ..finding(files, e.file, e.line, Some(chain), Some(e.seq), detail)
    };
    let place = |e: &Entry| {
        format!(
            "{}:{}",
            files.get(e.file).map(|f| f.name.as_str()).unwrap_or("?"),
            e.line + 1
        )
    };
    // 1. Repeats: of several records with one seq, the one the next
    //    record links to is the chain's (else the first); others inserted.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    // Stable: within one seq, file order.
    order.sort_by_key(|&i| entries.get(i).map_or(0, |e| e.seq));
    let groups: Vec<&[usize]> = order
        .chunk_by(|&a, &b| entries.get(a).map(|e| e.seq) == entries.get(b).map(|e| e.seq))
        .collect();
    let mut first: BTreeMap<u64, usize> = BTreeMap::new();
    for (g, list) in groups.iter().enumerate() {
        let Some(seq) = list.first().and_then(|&i| entries.get(i)).map(|e| e.seq) else {
            continue;
        };
        let chosen = if list.len() == 1 {
            list.first().copied()
        } else {
            let next: Vec<&Entry> = groups
                .get(g + 1)
                .filter(|l| l.first().and_then(|&j| entries.get(j)).map(|e| e.seq) == Some(seq + 1))
                .map(|l| l.iter().filter_map(|&j| entries.get(j)).collect())
                .unwrap_or_default();
            list.iter()
                .copied()
                .find(|&i| {
                    entries.get(i).is_some_and(|e| {
                        next.iter()
                            .any(|n| link(&e.hash, n.prefix.as_bytes()) == n.hash)
                    })
                })
                .or_else(|| list.first().copied())
        };
        if let Some(chosen) = chosen {
            first.insert(seq, chosen);
        }
    }
    // 2. Order, in file order.
    let mut max_seen = 0u64;
    for (i, e) in entries.iter().enumerate() {
        let Some(&g) = first.get(&e.seq) else {
            continue;
        };
        if g != i {
            let Some(orig) = entries.get(g) else { continue };
            let same =
                orig.hash == e.hash && orig.prefix == e.prefix && orig.text_len == e.text_len;
            let what = if same {
                "a copy of"
            } else {
                "a second record for"
            };
            out.push(at(
                e,
                FindingKind::Inserted,
                format!("{what} seq {} (the chain's is at {})", e.seq, place(orig)),
            ));
            continue;
        }
        if e.seq < max_seen {
            out.push(at(
                e,
                FindingKind::Reordered,
                format!("comes after seq {max_seen}"),
            ));
        }
        max_seen = max_seen.max(e.seq);
    }
    let anchor = |seq: u64| cps.get(&seq).and_then(|v| v.first()).map(|a| a.hash);
    // 3. Gaps, including a missing beginning.
    let mut prev_seq: Option<u64> = None;
    let mut head_missing = false;
    for (&seq, &i) in &first {
        let Some(e) = entries.get(i) else { continue };
        let from = prev_seq.map_or(1, |p| p + 1);
        let anchored = prev_seq.is_none() && anchor(seq - 1).is_some();
        if prev_seq.is_none() && seq > 1 && !anchored {
            head_missing = true;
        }
        if seq > from && !anchored && !(prev_seq.is_none() && options.rotated) {
            let detail = if prev_seq.is_none() {
                format!("records 1..={} are not in the logs (rotated away? give the older files, or a checkpoint)", seq - 1)
            } else if seq - 1 == from {
                format!("record {from} is missing")
            } else {
                format!("records {from}..={} are missing", seq - 1)
            };
            out.push(at(e, FindingKind::Dropped, detail));
        }
        prev_seq = Some(seq);
    }
    // 4. Every hash, from the previous record's claimed hash (or genesis,
    //    or a checkpoint when the previous record is not in the logs).
    let start = genesis(chain);
    for (&seq, &i) in &first {
        let Some(e) = entries.get(i) else { continue };
        let prev = if seq == 1 {
            Some(start)
        } else {
            first
                .get(&(seq - 1))
                .and_then(|&j| entries.get(j))
                .map(|p| p.hash)
                .or_else(|| anchor(seq - 1))
        };
        if let Some(prev) = prev {
            if link(&prev, e.prefix.as_bytes()) != e.hash {
                out.push(at(
                    e,
                    FindingKind::Edited,
                    "the hash does not recompute from the record and its predecessor".into(),
                ));
            }
        }
    }
    // 5. Checkpoints.
    let first_seq = first.keys().next().copied().unwrap_or(0);
    let last_seq = first.keys().next_back().copied().unwrap_or(0);
    let mut covered: Option<(u64, u64)> = None;
    for (&seq, list) in cps {
        for a in list {
            match first.get(&seq).and_then(|&i| entries.get(i)) {
                Some(e) if e.hash == a.hash => {
                    covered = Some((seq, a.received_at));
                }
                Some(e) => out.push(at(
                    e,
                    FindingKind::CheckpointMismatch,
                    format!(
                        "the service countersigned hash {} for this seq; the log has {}",
                        to_hex(&a.hash),
                        to_hex(&e.hash)
                    ),
                )),
                None if seq > last_seq => out.push(Finding {
                    kind: FindingKind::Truncated,
                    file: entries
                        .last()
                        .and_then(|e| files.get(e.file))
                        .map(|f| f.name.clone()),
                    line: None,
                    chain: Some(chain.to_owned()),
                    seq: Some(seq),
                    detail: format!(
                        "a checkpoint countersigned at {} ms vouches for seq {seq}, but the log ends at seq {last_seq}",
                        a.received_at
                    ),
                }),
                None => {} // before the logs, or inside a gap already reported
            }
        }
    }
    let summary = ChainSummary {
        chain: chain.to_owned(),
        first_seq,
        last_seq,
        records: entries.len(),
        checkpoint_seq: covered.map(|c| c.0),
        checkpoint_received_at: covered.map(|c| c.1),
        unprovable_tail: match covered {
            Some((seq, _)) => last_seq.saturating_sub(seq),
            None => first.len() as u64,
        },
        findings: out.len(),
        head_missing,
    };
    (summary, out)
}
