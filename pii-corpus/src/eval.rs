//! Scoring the scanner against the labels.
//!
//! Matching rule, per document: a finding is a true positive when it has
//! the same type as a label and their byte spans overlap; each label and
//! each finding is matched at most once (labels in order, each to the
//! first unmatched overlapping finding). Unmatched labels are false
//! negatives, unmatched findings false positives, so a value found with
//! the wrong type counts once as each. True positives whose span equals
//! the label's exactly are also counted (`exact`): a partial match masks
//! the value but may leave some of it in clear.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mcp_guard_engine::pii::{Finding, PiiType, Scanner};
use serde::Serialize;

use crate::doc::Document;

/// Minimum recall of every structured type.
pub const TARGET_RECALL: f64 = 0.995;
/// Minimum precision of every structured type.
pub const TARGET_PRECISION: f64 = 0.99;

/// The types the targets apply to (everything but custom terms).
pub fn structured(ty: PiiType) -> bool {
    ty != PiiType::Custom
}

/// Counts for one type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TypeStats {
    /// Labels found with the right type.
    pub tp: usize,
    /// Findings matching no label of their type.
    pub fp: usize,
    /// Labels not found with their type.
    pub fn_: usize,
    /// True positives with exactly the label's span.
    pub exact: usize,
}

impl TypeStats {
    /// `tp / (tp + fn)`, 1 when there was nothing to find.
    pub fn recall(&self) -> f64 {
        ratio(self.tp, self.tp + self.fn_)
    }

    /// `tp / (tp + fp)`, 1 when nothing was found.
    pub fn precision(&self) -> f64 {
        ratio(self.tp, self.tp + self.fp)
    }

    fn add(&mut self, o: &TypeStats) {
        self.tp += o.tp;
        self.fp += o.fp;
        self.fn_ += o.fn_;
        self.exact += o.exact;
    }
}

fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        1.0
    } else {
        n as f64 / d as f64
    }
}

/// Whether an example is a missed label or a spurious finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A label no finding matched.
    Miss,
    /// A finding no label matched.
    FalsePositive,
}

/// One error, with the text around it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Example {
    /// Miss or false positive.
    pub kind: ErrorKind,
    /// The label's or finding's type.
    pub ty: PiiType,
    /// Document id.
    pub doc: usize,
    /// The span's text.
    pub value: String,
    /// Up to 40 bytes either side, the value marked with `⟦ ⟧`.
    pub context: String,
}

/// The result of an evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evaluation {
    /// Counts per type (types with no label and no finding are absent).
    pub per_type: BTreeMap<PiiType, TypeStats>,
    /// The first few errors per type and kind.
    pub examples: Vec<Example>,
    /// Documents scanned.
    pub docs: usize,
    /// Bytes scanned.
    pub bytes: usize,
    /// Time spent in `Scanner::find`.
    #[serde(skip)]
    pub scan_time: Duration,
}

impl Evaluation {
    /// Sum over every type.
    pub fn overall(&self) -> TypeStats {
        let mut t = TypeStats::default();
        for s in self.per_type.values() {
            t.add(s);
        }
        t
    }

    /// Scan throughput, MB (10^6 bytes) per second.
    pub fn throughput_mb_s(&self) -> f64 {
        let secs = self.scan_time.as_secs_f64();
        if secs == 0.0 {
            0.0
        } else {
            self.bytes as f64 / 1e6 / secs
        }
    }

    /// Structured types below a target, with the reason.
    pub fn failures(&self) -> Vec<(PiiType, String)> {
        let mut out = Vec::new();
        for (&ty, s) in &self.per_type {
            if !structured(ty) {
                continue;
            }
            if s.recall() < TARGET_RECALL {
                out.push((ty, format!("recall {:.4} < {TARGET_RECALL}", s.recall())));
            }
            if s.precision() < TARGET_PRECISION {
                out.push((
                    ty,
                    format!("precision {:.4} < {TARGET_PRECISION}", s.precision()),
                ));
            }
        }
        out
    }
}

/// Scans every document and scores the findings; keeps up to
/// `max_examples` errors per type and kind.
pub fn evaluate(scanner: &Scanner, docs: &[Document], max_examples: usize) -> Evaluation {
    let mut ev = Evaluation {
        docs: docs.len(),
        ..Evaluation::default()
    };
    let mut shown: BTreeMap<(PiiType, bool), usize> = BTreeMap::new();
    for doc in docs {
        let t0 = Instant::now();
        let found = scanner.find(doc.text.as_bytes());
        ev.scan_time += t0.elapsed();
        ev.bytes += doc.text.len();
        score(doc, &found, &mut ev, &mut shown, max_examples);
    }
    ev
}

fn overlaps(a: (usize, usize), b: (usize, usize)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

fn score(
    doc: &Document,
    found: &[Finding],
    ev: &mut Evaluation,
    shown: &mut BTreeMap<(PiiType, bool), usize>,
    max_examples: usize,
) {
    let mut used = vec![false; found.len()];
    let mut example = |kind: ErrorKind, ty: PiiType, start: usize, end: usize| {
        let n = shown.entry((ty, kind == ErrorKind::Miss)).or_default();
        if *n < max_examples {
            *n += 1;
            ev.examples.push(Example {
                kind,
                ty,
                doc: doc.id,
                value: lossy(&doc.text, start, end),
                context: context(&doc.text, start, end),
            });
        }
    };
    let mut stats: BTreeMap<PiiType, TypeStats> = BTreeMap::new();
    for l in &doc.labels {
        let hit = found.iter().enumerate().find(|(i, f)| {
            !used[*i] && f.ty == l.ty && overlaps((f.start, f.end), (l.start, l.end))
        });
        let s = stats.entry(l.ty).or_default();
        match hit {
            Some((i, f)) => {
                used[i] = true;
                s.tp += 1;
                if (f.start, f.end) == (l.start, l.end) {
                    s.exact += 1;
                }
            }
            None => {
                s.fn_ += 1;
                example(ErrorKind::Miss, l.ty, l.start, l.end);
            }
        }
    }
    for (f, _) in found.iter().zip(&used).filter(|(_, u)| !**u) {
        stats.entry(f.ty).or_default().fp += 1;
        example(ErrorKind::FalsePositive, f.ty, f.start, f.end);
    }
    for (ty, s) in stats {
        ev.per_type.entry(ty).or_default().add(&s);
    }
}

fn lossy(text: &str, start: usize, end: usize) -> String {
    String::from_utf8_lossy(text.as_bytes().get(start..end).unwrap_or(&[])).into_owned()
}

fn context(text: &str, start: usize, end: usize) -> String {
    let lo = start.saturating_sub(40);
    let hi = (end + 40).min(text.len());
    format!(
        "{}⟦{}⟧{}",
        lossy(text, lo, start),
        lossy(text, start, end),
        lossy(text, end, hi)
    )
    .replace('\n', "⏎")
}
