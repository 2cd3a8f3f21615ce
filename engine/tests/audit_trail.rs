//! The trail verifier over a generated access log: three chains (worker
//! VMs) interleaved in one file, in both line shapes, with `-` lines
//! between. Every single-byte edit, every dropped line, every adjacent swap
//! within a chain and an inserted copy are found; a chain cut after a
//! checkpoint, and a chain re-sealed from scratch, are found by the
//! countersigned checkpoints.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use ed25519_dalek::SigningKey;
use mcp_guard_engine::audit::checkpoint::Countersigned;
use mcp_guard_engine::audit::query::{query, Filter};
use mcp_guard_engine::audit::{
    verify, verify_with, verify_with_options, Checkpoint, DecisionChain, FindingKind, LogFile,
    Options, Report,
};

const CHAINS: [&str; 3] = ["proxy-a/w0/9f3c", "proxy-a/w1/9f3c", "proxy-b/w0/17aa"];

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42u8; 32])
}

/// One record's open text (without `}`), as the filter would write it.
fn open(i: usize) -> String {
    let decision = if i % 4 == 3 { "deny" } else { "allow" };
    format!(
        "{{\"decision\":\"{decision}\",\"reason\":\"{}\",\"rule\":{},\"sub\":\"user-{}\",\"peer\":\"spiffe://x/ns/a\",\"policy\":\"demo\",\"version\":3,\"model\":\"m-{}\",\"mcp_method\":\"tools/call\",\"mcp_target\":\"tool_{}\",\"status\":{},\"ts\":{}",
        if decision == "deny" { "tool_denied" } else { "allowed" },
        if i.is_multiple_of(2) { "\"r1\"".to_string() } else { "null".to_string() },
        i % 3,
        i % 2,
        i % 5,
        if decision == "deny" { 403 } else { 200 },
        1_767_225_600_000u64 + i as u64 * 1000,
    )
}

/// The log: 21 records over 3 chains, interleaved; every third line of
/// chain 1 in the JSON shape; `-` lines between. Returns the lines, which
/// line holds which (chain, seq), and the heads.
struct Log {
    lines: Vec<String>,
    at: Vec<Option<(usize, u64)>>,
    heads: Vec<Checkpoint>,
}

fn generate() -> Log {
    let mut chains: Vec<DecisionChain> = CHAINS.iter().map(|c| DecisionChain::new(c)).collect();
    let mut lines = Vec::new();
    let mut at = Vec::new();
    for i in 0..21 {
        let c = [0, 1, 0, 2, 1, 0, 2][i % 7];
        let rec = chains[c].seal(&open(i));
        let seq = chains[c].head().seq;
        if c == 1 && seq.is_multiple_of(3) {
            lines.push(format!(
                "{{\"start\":\"2026-01-01T00:00:00Z\",\"code\":200,\"mcp\":{rec}}}"
            ));
        } else {
            lines.push(rec);
        }
        at.push(Some((c, seq)));
        if i % 5 == 0 {
            lines.push("-".into());
            at.push(None);
        }
    }
    let heads = chains
        .iter()
        .map(|c| Checkpoint::from_head(c.head()).unwrap())
        .collect();
    Log { lines, at, heads }
}

fn file(lines: &[String]) -> Vec<LogFile> {
    vec![LogFile {
        name: "access.log".into(),
        bytes: (lines.join("\n") + "\n").into_bytes(),
    }]
}

fn signed(heads: &[Checkpoint]) -> Vec<Countersigned> {
    heads
        .iter()
        .map(|h| h.countersign(1_767_225_700_000, &key()))
        .collect()
}

fn check(lines: &[String], heads: &[Checkpoint]) -> Report {
    verify_with(&file(lines), &signed(heads), &[key().verifying_key()])
}

fn kinds(report: &Report) -> Vec<FindingKind> {
    report.findings.iter().map(|f| f.kind).collect()
}

#[test]
fn the_untouched_log_verifies() {
    let log = generate();
    let report = check(&log.lines, &log.heads);
    assert!(report.ok(), "{:#?}", report.findings);
    assert_eq!(report.chains.len(), 3);
    assert_eq!(report.trusted_checkpoints, 3);
    let records: usize = report.chains.iter().map(|c| c.records).sum();
    assert_eq!(records, 21);
    assert_eq!(report.files[0].skipped, 5);
    for c in &report.chains {
        assert_eq!(c.first_seq, 1);
        assert_eq!(c.checkpoint_seq, Some(c.last_seq));
        assert_eq!(c.unprovable_tail, 0);
    }
    // Without checkpoints: still clean, but every record is unprovable tail.
    let bare = verify(&file(&log.lines));
    assert!(bare.ok());
    assert_eq!(
        bare.chains.iter().map(|c| c.unprovable_tail).sum::<u64>(),
        21
    );
}

#[test]
fn every_single_byte_edit_is_found_where_it_was_made() {
    let log = generate();
    let mut edits = 0;
    for (n, line) in log.lines.iter().enumerate() {
        if log.at[n].is_none() {
            continue;
        }
        // In the JSON shape only the `mcp` member is sealed; Envoy's own
        // fields around it are not the trail's to vouch for.
        let span = match line.find(",\"mcp\":") {
            Some(i) => i + 7..line.len() - 1,
            None => 0..line.len(),
        };
        for pos in span {
            let mut bytes = line.as_bytes().to_vec();
            // A different byte; some make invalid UTF-8, some a newline.
            for replacement in [bytes[pos] ^ 0x01, b'\n', 0xff] {
                if replacement == line.as_bytes()[pos] {
                    continue;
                }
                bytes[pos] = replacement;
                let edited = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines = log.lines.clone();
                lines[n] = edited;
                let mut f = file(&lines);
                // Keep invalid UTF-8 as is, not lossily replaced.
                if replacement == 0xff {
                    let mut all: Vec<u8> = Vec::new();
                    for (m, l) in log.lines.iter().enumerate() {
                        if m == n {
                            all.extend_from_slice(&bytes);
                        } else {
                            all.extend_from_slice(l.as_bytes());
                        }
                        all.push(b'\n');
                    }
                    f[0].bytes = all;
                }
                let report = verify_with(&f, &signed(&log.heads), &[key().verifying_key()]);
                edits += 1;
                assert!(
                    !report.ok(),
                    "byte {pos} of line {} changed to {replacement:#x} went unnoticed",
                    n + 1
                );
                // The first finding points at the edited line.
                assert!(
                    report.findings.iter().any(|f| f.line == Some(n + 1)
                        || (replacement == b'\n' && f.line == Some(n + 2))),
                    "line {} byte {pos}: {:?}",
                    n + 1,
                    report.findings
                );
            }
        }
    }
    assert!(edits > 10_000, "{edits} edits tried");
}

#[test]
fn every_dropped_line_is_found() {
    let log = generate();
    for n in 0..log.lines.len() {
        let Some((c, seq)) = log.at[n] else { continue };
        let mut lines = log.lines.clone();
        lines.remove(n);
        let report = check(&lines, &log.heads);
        let last = log.heads[c].seq;
        let want = if seq == last {
            FindingKind::Truncated
        } else {
            FindingKind::Dropped
        };
        assert_eq!(kinds(&report), [want], "dropping line {}", n + 1);
        assert_eq!(report.findings[0].chain.as_deref(), Some(CHAINS[c]));
    }
}

#[test]
fn the_last_record_dropped_without_a_checkpoint_goes_unnoticed() {
    // What the trail does not prove: the tail after the last checkpoint.
    let log = generate();
    let last = log.at.iter().rposition(Option::is_some).unwrap();
    let mut lines = log.lines.clone();
    lines.remove(last);
    assert!(verify(&file(&lines)).ok());
    let (c, seq) = log.at[last].unwrap();
    let mut older = log.heads.clone();
    older[c].seq = seq - 1;
    // A checkpoint one record earlier: the tail of one record is unprovable.
    let (before, _) = generate_head_at(c, seq - 1);
    older[c].hash = before;
    let report = check(&lines, &older);
    assert!(report.ok());
    let summary = report.chains.iter().find(|s| s.chain == CHAINS[c]).unwrap();
    assert_eq!(summary.unprovable_tail, 0);
    assert_eq!(summary.checkpoint_seq, Some(seq - 1));
}

/// The head hash of chain `c` after `seq` records of the generated log.
fn generate_head_at(c: usize, seq: u64) -> (String, u64) {
    let log = generate();
    let n = log.at.iter().position(|a| *a == Some((c, seq))).unwrap();
    let line = &log.lines[n];
    let cut = line.rfind("\"hash\":\"").unwrap() + 8;
    (line[cut..cut + 64].to_string(), seq)
}

#[test]
fn every_adjacent_swap_within_a_chain_is_found() {
    let log = generate();
    for c in 0..CHAINS.len() {
        let lines_of: Vec<usize> = (0..log.lines.len())
            .filter(|&n| log.at[n].is_some_and(|(cc, _)| cc == c))
            .collect();
        for pair in lines_of.windows(2) {
            let mut lines = log.lines.clone();
            lines.swap(pair[0], pair[1]);
            let report = check(&lines, &log.heads);
            assert_eq!(
                kinds(&report),
                [FindingKind::Reordered],
                "swap of lines {} and {}",
                pair[0] + 1,
                pair[1] + 1
            );
            assert_eq!(report.findings[0].line, Some(pair[1] + 1));
        }
    }
    // Swapping records of two different chains changes nothing provable.
    let mut lines = log.lines.clone();
    lines.swap(0, 1);
    assert!(check(&lines, &log.heads).ok());
}

#[test]
fn inserted_copies_and_forged_records_are_found() {
    let log = generate();
    for (from, to) in [(0usize, 5usize), (3, 3), (10, 22)] {
        let mut lines = log.lines.clone();
        let copy = lines[from].clone();
        lines.insert(to, copy);
        let report = check(&lines, &log.heads);
        assert!(
            kinds(&report).contains(&FindingKind::Inserted),
            "{from}->{to}: {:?}",
            report.findings
        );
    }
    // A new record sealed for seq 2 of chain 0 by someone who knows the
    // (public) algorithm: it links to seq 1 but repeats seq 2.
    let n1 = log.at.iter().position(|a| *a == Some((0, 1))).unwrap();
    let mut forger = DecisionChain::new(CHAINS[0]);
    let first = forger.seal(&open(0));
    assert_eq!(first, log.lines[n1]);
    let forged = forger.seal("{\"decision\":\"allow\",\"sub\":\"mallory\"");
    let mut lines = log.lines.clone();
    lines.insert(n1 + 1, forged);
    let report = check(&lines, &log.heads);
    assert_eq!(kinds(&report), [FindingKind::Inserted]);
    assert!(report.findings[0].detail.contains("a second record"));
}

#[test]
fn a_rewritten_chain_is_caught_by_its_checkpoint() {
    let log = generate();
    // The attacker re-seals chain 2 from scratch, changing one decision.
    let mut forger = DecisionChain::new(CHAINS[2]);
    let mut lines = log.lines.clone();
    for (n, i) in (0..log.lines.len())
        .filter_map(|n| log.at[n].map(|a| (n, a)))
        .filter(|(_, a)| a.0 == 2)
        .map(|(n, _)| n)
        .zip(0..)
    {
        let record_index = [3usize, 6, 10, 13, 17, 20][i];
        let mut text = open(record_index);
        if i == 1 {
            text = text.replace("\"allow\"", "\"deny\"");
        }
        lines[n] = forger.seal(&text);
    }
    assert_ne!(lines, log.lines);
    assert!(verify(&file(&lines)).ok(), "the chain alone cannot tell");
    let report = check(&lines, &log.heads);
    assert_eq!(kinds(&report), [FindingKind::CheckpointMismatch]);
    assert_eq!(report.findings[0].chain.as_deref(), Some(CHAINS[2]));
}

#[test]
fn forged_or_foreign_checkpoints_are_ignored_and_reported() {
    let log = generate();
    let mut cps = signed(&log.heads);
    cps[0].seq += 5; // pretend the chain went further: signature breaks
    let other = SigningKey::from_bytes(&[1u8; 32]);
    cps.push(log.heads[1].countersign(1, &other));
    let report = verify_with(&file(&log.lines), &cps, &[key().verifying_key()]);
    assert_eq!(report.trusted_checkpoints, 2);
    assert_eq!(
        kinds(&report),
        [FindingKind::BadCheckpoint, FindingKind::BadCheckpoint]
    );
}

#[test]
fn rotated_files_are_one_stream_and_a_missing_head_needs_a_checkpoint() {
    let log = generate();
    let (a, b) = log.lines.split_at(12);
    let files = vec![
        LogFile {
            name: "access.log.1".into(),
            bytes: (a.join("\n") + "\n").into_bytes(),
        },
        LogFile {
            name: "access.log".into(),
            bytes: (b.join("\n") + "\n").into_bytes(),
        },
    ];
    let keys = [key().verifying_key()];
    assert!(verify_with(&files, &signed(&log.heads), &keys).ok());
    // The older file rotated away: chains start mid-way.
    let report = verify_with(&files[1..], &signed(&log.heads), &keys);
    assert_eq!(kinds(&report), [FindingKind::Dropped; 3]);
    assert!(report.chains.iter().all(|c| c.head_missing));
    // Said to be rotated: no finding, and the rest still checked.
    let rotated = Options { rotated: true };
    let report = verify_with_options(&files[1..], &signed(&log.heads), &keys, rotated);
    assert!(report.ok(), "{:?}", report.findings);
    let text = String::from_utf8(files[1].bytes.clone()).unwrap();
    let edit = |at: usize| {
        let mut bytes = text.clone().into_bytes();
        bytes[at] = b'-';
        let f = LogFile {
            name: "access.log".into(),
            bytes,
        };
        verify_with_options(&[f], &signed(&log.heads), &keys, rotated)
    };
    // An edit in the last record is found ...
    assert!(!edit(text.rfind("tool_").unwrap() + 4).ok());
    // ... but the first record left of a chain has no predecessor to
    // recompute from: what a rotated-away head costs, unless a checkpoint
    // sits right before it.
    assert!(edit(text.find("tool_").unwrap() + 4).ok());
    assert!(report
        .findings
        .iter()
        .all(|f| f.file.as_deref() == Some("access.log")));
    // With a checkpoint at the last record of the rotated file, no finding.
    let mut cps = signed(&log.heads);
    for (c, chain) in CHAINS.iter().enumerate() {
        let last = (0..12)
            .rev()
            .find_map(|n| log.at[n].filter(|a| a.0 == c))
            .unwrap();
        let (hash, seq) = generate_head_at(c, last.1);
        cps.push(
            Checkpoint {
                chain: (*chain).into(),
                seq,
                hash,
            }
            .countersign(5, &key()),
        );
    }
    let report = verify_with(&files[1..], &cps, &keys);
    assert!(report.ok(), "{:?}", report.findings);
}

#[test]
fn query_filters_records() {
    let log = generate();
    let f = file(&log.lines);
    let all = query(&f, &Filter::default());
    assert_eq!(all.len(), 21);
    let denies = query(
        &f,
        &Filter {
            decision: Some("deny".into()),
            ..Filter::default()
        },
    );
    assert_eq!(denies.len(), 5);
    assert!(denies.iter().all(|m| m.record["status"] == 403));
    let narrow = query(
        &f,
        &Filter {
            sub: Some("user-0".into()),
            tool: Some("tool_0".into()),
            since: Some(1_767_225_600_000),
            until: Some(1_767_225_600_000 + 15_001),
            ..Filter::default()
        },
    );
    // i in 0..=15 with i % 3 == 0 and i % 5 == 0: 0 and 15.
    assert_eq!(narrow.len(), 2);
    assert_eq!(narrow[1].record["ts"], 1_767_225_615_000u64);
}

#[test]
fn a_forged_checkpoint_raises_an_alarm_and_hides_nothing() {
    // Anyone may post checkpoints, so the service may countersign a forged
    // one; it can only make a genuine log look tampered, never the reverse.
    let log = generate();
    let mut cps = signed(&log.heads);
    let forged_ahead = Checkpoint {
        seq: log.heads[0].seq + 3,
        ..log.heads[0].clone()
    };
    let forged_at = Checkpoint {
        hash: "1".repeat(64),
        ..log.heads[1].clone()
    };
    cps.push(forged_ahead.countersign(9, &key()));
    cps.push(forged_at.countersign(9, &key()));
    let report = verify_with(&file(&log.lines), &cps, &[key().verifying_key()]);
    assert_eq!(
        kinds(&report),
        [FindingKind::Truncated, FindingKind::CheckpointMismatch]
    );
}
