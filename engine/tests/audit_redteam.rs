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
