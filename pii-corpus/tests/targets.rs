//! CI guard: the scanner meets the recall and precision targets on a
//! generated corpus, per structured type.

use mcp_guard_engine::pii::{PiiConfig, PiiType, Scanner};
use mcp_guard_pii_corpus::corpus::{generate, DEFAULT_SEED};
use mcp_guard_pii_corpus::{evaluate, report, TARGET_PRECISION, TARGET_RECALL};

#[test]
fn structured_types_meet_targets() {
    let scanner = Scanner::new(&PiiConfig::default()).unwrap();
    let corpus = generate(1500, DEFAULT_SEED);
    let ev = evaluate(&scanner, &corpus, 3);
    let table = report::text(&ev);
    for ty in PiiType::ALL.into_iter().filter(|&t| t != PiiType::Custom) {
        let s = ev.per_type.get(&ty).copied().unwrap_or_default();
        assert!(
            s.tp > 0,
            "{ty:?}: no value of this type in the corpus\n{table}"
        );
        assert!(s.recall() >= TARGET_RECALL, "{ty:?} recall\n{table}");
        assert!(
            s.precision() >= TARGET_PRECISION,
            "{ty:?} precision\n{table}"
        );
    }
}

#[test]
fn corpus_is_deterministic_and_labels_are_in_bounds() {
    let a = generate(200, 7);
    assert_eq!(a, generate(200, 7));
    assert_ne!(a, generate(200, 8));
    for d in &a {
        for l in &d.labels {
            assert!(l.start < l.end && l.end <= d.text.len(), "doc {}", d.id);
            assert!(d.text.is_char_boundary(l.start) && d.text.is_char_boundary(l.end));
        }
    }
}
