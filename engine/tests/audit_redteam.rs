//! Hostile log lines against the trail verifier: whatever a forger writes,
//! `audit verify` reports it and never crashes.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_guard_engine::audit::chain::{link, to_hex};
use mcp_guard_engine::audit::{verify, FindingKind, LogFile};

/// A record for `chain` at `seq` that seals correctly onto `prev`.
fn forged(chain: &str, seq: u64, prev: &[u8; 32], body: &str) -> (String, [u8; 32]) {
    let prefix = format!("{{\"decision\":\"{body}\",\"chain\":\"{chain}\",\"seq\":{seq}");
    let hash = link(prev, prefix.as_bytes());
    (format!("{prefix},\"hash\":\"{}\"}}", to_hex(&hash)), hash)
}

#[test]
fn repeated_records_at_the_last_seq_are_reported_not_a_crash() {
    let (a, _) = forged("x", u64::MAX, &[1; 32], "allow");
    let (b, _) = forged("x", u64::MAX, &[2; 32], "deny");
    let log = LogFile {
        name: "a.log".into(),
        bytes: format!("{a}\n{b}\n").into_bytes(),
    };
    let report = verify(&[log]);
    assert!(!report.ok());
    assert!(
        report
            .findings
            .iter()
            .any(|f| f.kind == FindingKind::Inserted),
        "{:?}",
        report.findings
    );
}

#[test]
fn a_hostile_checkpoint_list_cannot_write_to_the_terminal() {
    use mcp_guard_engine::audit::{verify_with, Countersigned};
    let entry = |chain: &str, key: &str| Countersigned {
        chain: chain.into(),
        seq: 1,
        hash: "0".repeat(64),
        received_at: 1,
        key: key.into(),
        ed25519: String::new(),
    };
    let list = [
        entry("x\u{1b}]0;owned\u{7}\n", "k"),
        entry("x", "k\u{1b}[2J\u{202e}"),
    ];
    let report = verify_with(&[], &list, &[]);
    assert_eq!(report.findings.len(), 2, "{:?}", report.findings);
    for f in &report.findings {
        assert_eq!(f.kind, FindingKind::BadCheckpoint);
        let text = f.to_string();
        assert!(
            !text.chars().any(|c| c.is_control() || c == '\u{202e}'),
            "{text:?}"
        );
    }
}
