//! Values longer than any hold-back (PEM keys, JWTs, bearer and GitHub
//! tokens up to 16 KiB): one marker for the whole value, no byte of it in
//! the output, and streaming output equal to buffered output for every
//! delta size, in text, JSON and SSE chat-delta modes. A detector that
//! cannot decide within the bound ends the stream without writing the
//! undecided bytes.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::pii::{
    Action, ContentMode, PiiConfig, PiiType, Scanner, SseLimits, StreamScrubber,
};

/// Deterministic pseudo-random bytes from `alphabet`.
fn random(seed: u64, len: usize, alphabet: &[u8]) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            alphabet[(s % alphabet.len() as u64) as usize]
        })
        .collect()
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn b64url(data: &[u8]) -> String {
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = c.len();
        let v = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..=n {
            out.push(B64URL[((v >> (18 - 6 * k)) & 63) as usize] as char);
        }
    }
    out
}

/// A PEM private key of about `len` bytes.
fn pem(len: usize, seed: u64) -> String {
    let body = random(seed, len.saturating_sub(70), B64);
    let mut s = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for line in body.chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push('\n');
    }
    s.push_str("-----END RSA PRIVATE KEY-----");
    s
}

/// A signed JWT of about `len` bytes.
fn jwt(len: usize, seed: u64) -> String {
    let header = b64url(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = random(seed, len.saturating_sub(header.len() + 45).max(2), B64URL);
    let sig = random(seed ^ 7, 43, B64URL);
    format!(
        "{header}.{}.{}",
        std::str::from_utf8(&payload).unwrap(),
        std::str::from_utf8(&sig).unwrap()
    )
}

fn bearer(len: usize, seed: u64) -> String {
    let mut cred = random(seed, len, b"ABCDEFabcdef0123456789-._~+/");
    cred[0] = b'7';
    String::from_utf8(cred).unwrap()
}

fn github(len: usize, seed: u64) -> String {
    format!(
        "ghp_{}",
        String::from_utf8(random(seed, len - 4, ALNUM)).unwrap()
    )
}

/// One test case: the text around the value, and what buffered scrubbing
/// must turn it into.
struct Case {
    value: String,
    text: String,
    want: String,
}

fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    let mut add = |value: String, before: &str, marker: &str| {
        let text = format!("{before}{value} ok. mail jane@example.com end");
        let head = before.trim_end_matches("Bearer ").to_string();
        let head = if before.ends_with("Bearer ") {
            format!("{head}Bearer ")
        } else {
            head
        };
        let want = format!("{head}{marker} ok. mail [EMAIL] end");
        v.push(Case { value, text, want });
    };
    for (i, kib) in [1usize, 2, 4, 16].into_iter().enumerate() {
        add(pem(kib * 1024, 11 + i as u64), "key: ", "[PRIVATE_KEY]");
    }
    for (i, len) in [100usize, 1000, 4097, 16 * 1024].into_iter().enumerate() {
        add(jwt(len, 21 + i as u64), "jwt ", "[TOKEN]");
    }
    for (i, len) in [300usize, 5000, 16 * 1024].into_iter().enumerate() {
        add(
            bearer(len, 31 + i as u64),
            "Authorization: Bearer ",
            "[TOKEN]",
        );
    }
    for (i, len) in [40usize, 300, 16 * 1024].into_iter().enumerate() {
        add(github(len, 41 + i as u64), "gh ", "[TOKEN]");
    }
    v
}

fn scanner(action: Action) -> Arc<Scanner> {
    let cfg = PiiConfig {
        actions: [(PiiType::Token, action), (PiiType::PrivateKey, action)]
            .into_iter()
            .collect(),
        hash_key: Some("0123456789abcdef0123".into()),
        ..PiiConfig::default()
    };
    Arc::new(Scanner::new(&cfg).unwrap())
}

/// Delta sizes: every size from 1 to 24, then a sample of larger ones.
fn sizes(len: usize, seed: u64) -> Vec<usize> {
    let mut s: Vec<usize> = (1..=24).collect();
    let mut r = seed | 1;
    for _ in 0..6 {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        s.push(25 + (r % len as u64) as usize);
    }
    s.push(len);
    s
}

fn streamed(sc: &Arc<Scanner>, mode: ContentMode, input: &[u8], size: usize) -> (Vec<u8>, bool) {
    let mut s = StreamScrubber::new(sc.clone(), mode);
    let mut out = Vec::new();
    for c in input.chunks(size) {
        s.push(c, &mut out);
    }
    s.finish(&mut out);
    (out, s.report().overflowed())
}

/// No 16-byte window of `value` shows up in `out`.
fn assert_no_leak(out: &[u8], value: &str, what: &str) {
    let out = String::from_utf8_lossy(out);
    for w in value.as_bytes().windows(16).step_by(7) {
        let w = std::str::from_utf8(w).unwrap();
        assert!(!out.contains(w), "{what}: {w:?} leaked");
    }
}

#[test]
fn long_values_in_text_stream_equal_buffered_for_every_size() {
    let sc = scanner(Action::Mask);
    for (n, c) in cases().iter().enumerate() {
        let mut want = Vec::new();
        let r = sc.scrub_text(c.text.as_bytes(), &mut want);
        assert_eq!(String::from_utf8_lossy(&want), c.want, "case {n} buffered");
        assert_eq!(r.total(), 2, "case {n}: one value and the e-mail");
        for size in sizes(c.text.len(), n as u64) {
            let (out, over) = streamed(&sc, ContentMode::Text, c.text.as_bytes(), size);
            assert!(!over, "case {n} size {size} overflowed");
            assert_eq!(out, want, "case {n} deltas of {size}");
        }
        assert_no_leak(&want, &c.value, "text");
    }
}

#[test]
fn long_values_in_json_stream_equal_buffered_for_every_size() {
    let sc = scanner(Action::Mask);
    for (n, c) in cases().iter().enumerate() {
        let doc = serde_json::json!({"id": 1, "text": c.text, "n": [1, "x"]}).to_string();
        let mut want = Vec::new();
        sc.scrub_json(doc.as_bytes(), &mut want);
        let v: serde_json::Value = serde_json::from_slice(&want).unwrap();
        assert_eq!(v["text"], c.want.as_str(), "case {n} buffered");
        for size in sizes(doc.len(), 100 + n as u64) {
            let (out, over) = streamed(&sc, ContentMode::Json, doc.as_bytes(), size);
            assert!(!over, "case {n} size {size} overflowed");
            assert_eq!(out, want, "case {n} deltas of {size}");
        }
        assert_no_leak(&want, &c.value, "json");
    }
}

/// An SSE body carrying `content` in deltas of `size` bytes, one event
/// each.
fn sse_body(content: &str, size: usize) -> Vec<String> {
    let mut events = vec![
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n".to_string(),
    ];
    for d in content.as_bytes().chunks(size) {
        let d = std::str::from_utf8(d).unwrap();
        let v = serde_json::json!({"choices": [{"index": 0, "delta": {"content": d}, "finish_reason": null}]});
        events.push(format!("data: {v}\n\n"));
    }
    events.push("data: [DONE]\n\n".into());
    events
}

/// The concatenated content deltas of an SSE output.
fn sse_content(out: &[u8]) -> String {
    let text = std::str::from_utf8(out).unwrap();
    let mut all = String::new();
    for ev in text.split_terminator("\n\n") {
        let data = ev.strip_prefix("data: ").unwrap();
        if data == "[DONE]" {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(data).unwrap();
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            all.push_str(c);
        }
    }
    all
}

fn sse_streamed(sc: &Arc<Scanner>, events: &[String]) -> (Vec<u8>, bool) {
    let mut s = StreamScrubber::new(sc.clone(), ContentMode::Sse);
    let mut out = Vec::new();
    for e in events {
        s.push(e.as_bytes(), &mut out);
    }
    s.finish(&mut out);
    (out, s.report().overflowed())
}

#[test]
fn long_values_in_sse_deltas_equal_buffered_for_every_size() {
    let sc = scanner(Action::Mask);
    for (n, c) in cases().iter().enumerate() {
        let mut plain = Vec::new();
        sc.scrub_plain(c.text.as_bytes(), &mut plain);
        assert_eq!(String::from_utf8_lossy(&plain), c.want, "case {n} plain");
        // Sizes: all of 1..=8 (each delta its own event; 16 KiB values
        // get a few, the adversary test below sends them byte by byte),
        // then samples.
        let mut ds: Vec<usize> = if c.value.len() > 8192 {
            vec![1, 2, 3, 7]
        } else {
            (1..=8).collect()
        };
        ds.extend(sizes(c.text.len(), 200 + n as u64).into_iter().skip(24));
        for d in ds {
            let events = sse_body(&c.text, d);
            let whole = events.concat();
            // The reference reads the body in 16 KiB network chunks rather
            // than one piece: the event splitter copies the rest of its
            // buffer per event, which is quadratic in one huge chunk.
            let mut s = StreamScrubber::new(sc.clone(), ContentMode::Sse);
            let mut want = Vec::new();
            for piece in whole.as_bytes().chunks(16 * 1024) {
                s.push(piece, &mut want);
            }
            s.finish(&mut want);
            assert_eq!(
                sse_content(&want),
                c.want,
                "case {n} deltas of {d}, whole body"
            );
            let (out, over) = sse_streamed(&sc, &events);
            assert!(!over, "case {n} deltas of {d} overflowed");
            assert_eq!(out, want, "case {n} deltas of {d}, event by event");
            assert_no_leak(sse_content(&out).as_bytes(), &c.value, "sse");
        }
    }
}

#[test]
fn adversary_sends_16_kib_secrets_in_one_byte_sse_events() {
    let sc = scanner(Action::Mask);
    for value in [pem(16 * 1024, 5), jwt(16 * 1024, 6), github(16 * 1024, 8)] {
        let text = format!("here: {value} bye");
        let events = sse_body(&text, 1);
        // Each event also arrives cut in two network chunks.
        let mut s = StreamScrubber::new(sc.clone(), ContentMode::Sse);
        let mut out = Vec::new();
        for e in &events {
            let (a, b) = e.as_bytes().split_at(e.len() / 2);
            s.push(a, &mut out);
            s.push(b, &mut out);
            assert!(!s.report().overflowed());
        }
        s.finish(&mut out);
        let got = sse_content(&out);
        assert!(
            got == "here: [PRIVATE_KEY] bye" || got == "here: [TOKEN] bye",
            "{got}"
        );
        // Every event kept its place; the value's bytes are gone from all.
        assert_eq!(
            out.iter().filter(|&&b| b == b'\n').count(),
            2 * events.len()
        );
        assert_no_leak(got.as_bytes(), &value, "1-byte sse");
    }
}

#[test]
fn long_values_with_hash_and_partial_actions_stream_like_buffered() {
    for action in [Action::Hash, Action::Partial, Action::Block] {
        let sc = scanner(action);
        for (n, c) in cases().iter().enumerate().step_by(2) {
            let mut want = Vec::new();
            let r = sc.scrub_text(c.text.as_bytes(), &mut want);
            assert_eq!(r.blocked(), action == Action::Block);
            for size in [1, 2, 3, 5, 64, 1000] {
                let (out, over) = streamed(&sc, ContentMode::Text, c.text.as_bytes(), size);
                assert!(!over);
                assert_eq!(out, want, "{action:?} case {n} deltas of {size}");
            }
            assert_no_leak(&want, &c.value, "hash/partial");
        }
    }
    // Hashes tell long values apart (by their first 4 KiB).
    let sc = scanner(Action::Hash);
    let mut a = Vec::new();
    let mut b = Vec::new();
    sc.scrub_text(github(9000, 1).as_bytes(), &mut a);
    sc.scrub_text(github(9000, 2).as_bytes(), &mut b);
    assert_ne!(a, b);
    assert!(a.starts_with(b"[TOKEN:"), "{}", String::from_utf8_lossy(&a));
}

/// A JWT header of ~1 KiB sent one byte per SSE event keeps its detector
/// undecided over more held bytes than the stream may hold (a bound set
/// low here): the stream fails and not one byte from the undecided point
/// on is written.
#[test]
fn undecided_past_the_bound_overflows_without_writing_undecided_bytes() {
    let sc = scanner(Action::Mask);
    let claims = format!(r#"{{"alg":"HS256","pad":"{}"}}"#, "x".repeat(700));
    let header = b64url(claims.as_bytes());
    assert!(header.len() < 1024);
    let before = "start ";
    let text = format!("{before}{header}.eyJzdWIiOiIxIn0.c2lnbmF0dXJl tail");
    let events = sse_body(&text, 1);
    let limits = SseLimits {
        max_held_bytes: 16 * 1024,
        ..SseLimits::default()
    };
    let mut s = StreamScrubber::sse_with_limits(sc.clone(), limits);
    let mut out = Vec::new();
    let mut overflow_at = None;
    for (i, e) in events.iter().enumerate() {
        s.push(e.as_bytes(), &mut out);
        if (s.report().overflowed() || s.error().is_some()) && overflow_at.is_none() {
            overflow_at = Some(i);
        }
    }
    let len = out.len();
    s.finish(&mut out);
    assert_eq!(out.len(), len, "nothing is written after the overflow");
    let at = overflow_at.expect("the stream overflowed");
    assert!(
        at < before.len() + header.len(),
        "overflowed while undecided"
    );
    let got = sse_content(&out);
    assert!(
        before.starts_with(&got),
        "only decided bytes written: {got:?}"
    );
    // The same text in one piece (or in large deltas) is decided in time.
    let (whole, over) = sse_streamed(&sc, &sse_body(&text, 64));
    assert!(!over);
    assert_eq!(sse_content(&whole), "start [TOKEN] tail");
}
