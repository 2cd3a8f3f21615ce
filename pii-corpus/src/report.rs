//! Human-readable and JSON renderings of an [`Evaluation`].

use std::fmt::Write;

use serde_json::json;

use crate::eval::{structured, ErrorKind, Evaluation, TARGET_PRECISION, TARGET_RECALL};

/// The per-type table, the overall line, throughput, target verdicts and
/// the examples of errors.
pub fn text(ev: &Evaluation) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{} documents, {:.2} MB, scanned at {:.1} MB/s\n",
        ev.docs,
        ev.bytes as f64 / 1e6,
        ev.throughput_mb_s()
    );
    let _ = writeln!(
        o,
        "{:<12} {:>7} {:>6} {:>6} {:>9} {:>10} {:>7}  target",
        "type", "TP", "FP", "FN", "recall", "precision", "exact"
    );
    for (ty, s) in &ev.per_type {
        let verdict = if !structured(*ty) {
            "-"
        } else if s.recall() >= TARGET_RECALL && s.precision() >= TARGET_PRECISION {
            "ok"
        } else {
            "FAIL"
        };
        let _ = writeln!(
            o,
            "{:<12} {:>7} {:>6} {:>6} {:>8.2}% {:>9.2}% {:>6.1}%  {verdict}",
            ty.label().to_ascii_lowercase(),
            s.tp,
            s.fp,
            s.fn_,
            s.recall() * 100.0,
            s.precision() * 100.0,
            pct(s.exact, s.tp)
        );
    }
    let all = ev.overall();
    let _ = writeln!(
        o,
        "{:<12} {:>7} {:>6} {:>6} {:>8.2}% {:>9.2}% {:>6.1}%",
        "overall",
        all.tp,
        all.fp,
        all.fn_,
        all.recall() * 100.0,
        all.precision() * 100.0,
        pct(all.exact, all.tp)
    );
    if !ev.examples.is_empty() {
        let _ = writeln!(o, "\nexamples (fictitious, generated data):");
        for e in &ev.examples {
            let kind = match e.kind {
                ErrorKind::Miss => "miss",
                ErrorKind::FalsePositive => "fp  ",
            };
            let _ = writeln!(
                o,
                "  {kind} {:<11} doc {:>5}: {}",
                e.ty.label().to_ascii_lowercase(),
                e.doc,
                e.context
            );
        }
    }
    let fails = ev.failures();
    let _ = writeln!(
        o,
        "\ntargets (structured types): recall >= {:.1}%, precision >= {:.1}%: {}",
        TARGET_RECALL * 100.0,
        TARGET_PRECISION * 100.0,
        if fails.is_empty() { "met" } else { "NOT met" }
    );
    for (ty, why) in fails {
        let _ = writeln!(o, "  {}: {why}", ty.label().to_ascii_lowercase());
    }
    o
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        100.0
    } else {
        n as f64 * 100.0 / d as f64
    }
}

/// The same content as one JSON object.
pub fn json(ev: &Evaluation) -> serde_json::Value {
    let types: serde_json::Map<String, serde_json::Value> = ev
        .per_type
        .iter()
        .map(|(ty, s)| {
            let name = serde_json::to_value(ty)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (
                name,
                json!({
                    "tp": s.tp, "fp": s.fp, "fn": s.fn_, "exact": s.exact,
                    "recall": s.recall(), "precision": s.precision(),
                }),
            )
        })
        .collect();
    let all = ev.overall();
    json!({
        "docs": ev.docs,
        "bytes": ev.bytes,
        "throughput_mb_s": ev.throughput_mb_s(),
        "types": types,
        "overall": {"tp": all.tp, "fp": all.fp, "fn": all.fn_,
                    "recall": all.recall(), "precision": all.precision()},
        "targets": {"recall": TARGET_RECALL, "precision": TARGET_PRECISION},
        "failures": ev.failures().iter().map(|(t, w)| json!({"type": t, "why": w})).collect::<Vec<_>>(),
        "examples": ev.examples,
    })
}
