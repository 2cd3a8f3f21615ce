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

#[test]
fn a_whole_worker_chain_removed_is_found() {
    use ed25519_dalek::SigningKey;
    use mcp_guard_engine::audit::{verify_with, verify_with_options, DecisionChain, Options};
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let mut w0 = DecisionChain::new("proxy-a/0001");
    let mut w1 = DecisionChain::new("proxy-a/0002");
    let mut other = DecisionChain::new("proxy-b/0003");
    let r1 = w1.seal("{\"ts\":1000,\"decision\":\"deny\"");
    let heads = [w1.head().clone()];
    let _ = other.seal("{\"ts\":1000,\"decision\":\"allow\"");
    let other_head = other.head().clone();
    let r0 = w0.seal("{\"ts\":5000,\"decision\":\"allow\"");
    let sign = |h: &mcp_guard_engine::audit::ChainHead, at: u64| {
        mcp_guard_engine::audit::Checkpoint::from_head(h)
            .unwrap()
            .countersign(at, &key)
    };
    let cps = vec![sign(&heads[0], 2000), sign(&other_head, 2000)];
    let keys = [key.verifying_key()];
    let file = |lines: &[&String]| LogFile {
        name: "access.log".into(),
        bytes: lines
            .iter()
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            .into_bytes(),
    };
    // Untouched: both workers' records there; proxy-b's log not given.
    let whole = verify_with(&[file(&[&r1, &r0])], &cps, &keys);
    assert!(whole.ok(), "{:?}", whole.findings);
    assert_eq!(whole.checkpointed_chains_absent, ["proxy-b/0003"]);
    // Worker 1's only record removed: its node's log runs on to 5000 ms.
    let cut = verify_with(&[file(&[&r0])], &cps, &keys);
    assert!(!cut.ok());
    assert_eq!(cut.findings.len(), 1, "{:?}", cut.findings);
    assert_eq!(cut.findings[0].kind, FindingKind::Dropped);
    assert_eq!(cut.findings[0].chain.as_deref(), Some("proxy-a/0002"));
    // Rotated logs may have lost it honestly: listed, not a finding.
    let rotated = verify_with_options(&[file(&[&r0])], &cps, &keys, Options { rotated: true });
    assert!(rotated.ok(), "{:?}", rotated.findings);
}
