//! Streaming equals buffered, for every split of the input; JSON output
//! stays valid JSON; random bytes never panic.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::pii::{Action, ContentMode, PiiConfig, PiiType, Scanner, StreamScrubber};

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";

fn texts() -> Vec<String> {
    vec![
        format!(
            "Contact jane.doe@example.com or +1 (415) 555-0132, card 4111 1111 1111 1111, \
             ssn 123-45-6789, iban DE89 3704 0044 0532 0130 00, ip 192.168.1.20 and 2001:db8::1, \
             key AKIAIOSFODNN7EXAMPLE {SECRET}, token ghp_abcdefghijklmnopqrstuvwxyz0123456789, \
             Bearer {JWT} and the Acme plan. 2024-01-15 v1.2.3 1700000000."
        ),
        "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n-----END EC PRIVATE KEY-----\nbye 07700 900123".into(),
        "a@b.co@c.io x@y.zz 1.2.3.4.5 ::1 12:30:45 fe80::1 415.555.0132.".into(),
        labelled_text().into(),
    ]
}

/// Bare SSNs after labels, phones followed by a note, and their
/// look-alikes: what the label look-behind and the note rule decide must
/// not depend on where the text was cut.
fn labelled_text() -> &'static str {
    "SSN: 123456789\nssn=234567890, SSN#345678901 social security number 456789012;      Social Security No. 567890123 {\"ssn\": \"078051120\"} my SSN is 123456780      id: 123456789 Order #123456789 ssn_count: 5 SSN verified for order 123456789      SSN: 666123456 SSN: 1234567890 or +31 6 12878407 (mobile) 269-847-2332 (verified)      (555) 310-1234 (home) +44 20 7946 0958 (office). a@b.co SSN 123456789"
}

/// JSON with SSN keys: string and number values, and keys that are not.
fn labelled_json() -> &'static str {
    r##"{"ssn":"123456789","n":{"social_security_number": 234567890},"national_id":"345678901",
"ssn":456789012,"ssn_count":123456789,"order_id":123456789,"id":"123456789",
"socialSecurityNumber":-123456789,"ssn":1234567890,"ssn":123456789.5,"ssn":[123456789],
"taxpayer_id":"#567890123","phone":"+31 6 12878407 (mobile)","ssn":666123456,"ssn":"x 123456789","ssn":123456789}"##
}

fn jsons() -> Vec<String> {
    vec![
        format!(
            r#"{{"user":{{"email":"jane\u0040example.com","phone":"+44 20 7946 0958","n":4111111111111111}},
"notes":["call 415-555-0132\nor mail bob@example.org","\ud83d\ude00 joe@x.io \u00e9"],
"aws_secret_access_key":"{SECRET}","ip\/v4":"10.0.0.1","esc":"\\carol@example.net\"","k":"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----"}}"#
        ),
        "{\"a\":\"x\"}\n{\"b\":\"4111111111111111\"}\n[\"123-45-6789\", 12, null, \"acme\"]\n"
            .into(),
        labelled_json().into(),
    ]
}

fn scanner() -> Arc<Scanner> {
    let cfg = PiiConfig {
        custom_terms: vec!["acme".into()],
        actions: [
            (PiiType::Card, Action::Partial),
            (PiiType::Email, Action::Hash),
        ]
        .into_iter()
        .collect(),
        hash_key: Some("0123456789abcdef0123".into()),
        ..PiiConfig::default()
    };
    Arc::new(Scanner::new(&cfg).unwrap())
}

fn buffered(sc: &Scanner, mode: ContentMode, input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match mode {
        ContentMode::Json => sc.scrub_json(input, &mut out),
        _ => sc.scrub_text(input, &mut out),
    };
    out
}

fn streamed(sc: &Arc<Scanner>, mode: ContentMode, chunks: &[&[u8]]) -> Vec<u8> {
    let mut s = StreamScrubber::new(sc.clone(), mode);
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, &mut out);
    }
    s.finish(&mut out);
    out
}

fn check_all_splits(sc: &Arc<Scanner>, mode: ContentMode, input: &[u8]) -> Vec<u8> {
    let want = buffered(sc, mode, input);
    for k in 0..=input.len() {
        let (a, b) = input.split_at(k);
        assert_eq!(streamed(sc, mode, &[a, b]), want, "{mode:?} split at {k}");
    }
    for size in 1..=7 {
        let chunks: Vec<&[u8]> = input.chunks(size).collect();
        assert_eq!(
            streamed(sc, mode, &chunks),
            want,
            "{mode:?} chunks of {size}"
        );
    }
    want
}

#[test]
fn text_stream_equals_buffered_at_every_split() {
    let sc = scanner();
    for t in texts() {
        let out = check_all_splits(&sc, ContentMode::Text, t.as_bytes());
        assert_ne!(out, t.as_bytes());
    }
    let out = buffered(&sc, ContentMode::Text, texts()[0].as_bytes());
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("[CARD ****1111]"), "{out}");
    assert!(out.contains("[EMAIL:"), "{out}");
    assert!(!out.contains("Acme"), "{out}");
}

#[test]
fn json_stream_equals_buffered_and_stays_valid() {
    let sc = scanner();
    for j in jsons() {
        let out = check_all_splits(&sc, ContentMode::Json, j.as_bytes());
        let text = String::from_utf8(out).unwrap();
        for v in serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>() {
            v.unwrap_or_else(|e| panic!("{e}: {text}"));
        }
    }
    let out = String::from_utf8(buffered(&sc, ContentMode::Json, jsons()[0].as_bytes())).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["user"]["email"].as_str().unwrap().starts_with("[EMAIL:"));
    assert_eq!(v["user"]["phone"], "[PHONE]");
    assert_eq!(
        v["user"]["n"], 4111111111111111u64,
        "numbers are left alone"
    );
    assert_eq!(v["aws_secret_access_key"], "[SECRET]");
    assert_eq!(v["ip/v4"], "[IP]");
    assert_eq!(v["k"], "[PRIVATE_KEY]");
    assert!(v["esc"].as_str().unwrap().starts_with("\\[EMAIL:"));
    assert!(v["notes"][1]
        .as_str()
        .unwrap()
        .starts_with("\u{1f600} [EMAIL:"));
    assert!(out.contains(r#""ip\/v4""#), "keys keep their escapes");
}

#[test]
fn labelled_values_in_text_and_json() {
    let sc = scanner();
    let out =
        String::from_utf8(buffered(&sc, ContentMode::Text, labelled_text().as_bytes())).unwrap();
    assert_eq!(out.matches("[SSN]").count(), 8, "{out}");
    assert_eq!(out.matches("[PHONE]").count(), 4, "{out}");
    for kept in [
        "id: 123456789",
        "Order #123456789",
        "order 123456789",
        "SSN: 666123456",
        "1234567890",
        "[PHONE] (mobile)",
        "[PHONE] (office).",
    ] {
        assert!(out.contains(kept), "{kept}: {out}");
    }
    assert!(out.ends_with("SSN [SSN]"), "{out}");

    let out =
        String::from_utf8(buffered(&sc, ContentMode::Json, labelled_json().as_bytes())).unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["national_id"], "[SSN]");
    assert_eq!(
        v["n"]["social_security_number"], "[SSN]",
        "a number becomes a string"
    );
    assert_eq!(v["ssn_count"], 123456789);
    assert_eq!(v["order_id"], 123456789);
    assert_eq!(v["id"], "123456789");
    assert_eq!(v["socialSecurityNumber"], -123456789);
    assert_eq!(v["taxpayer_id"], "#[SSN]");
    assert_eq!(v["phone"], "[PHONE] (mobile)");
    for kept in [
        r#""ssn":1234567890"#,
        r#""ssn":123456789.5"#,
        r#""ssn":[123456789]"#,
        r#""ssn":666123456"#,
        r#""ssn":"x 123456789""#,
        r#""ssn":"[SSN]""#,
        r#"{"ssn":"[SSN]","#,
    ] {
        assert!(out.contains(kept), "{kept}: {out}");
    }
    assert!(out.ends_with(r#""ssn":"[SSN]"}"#), "{out}");
    assert_eq!(out.matches("[SSN]").count(), 6, "{out}");
}

#[test]
fn random_bytes_never_panic_and_stream_equals_buffered() {
    let sc = scanner();
    let alphabet = b"0123456789@.:-+ ()\"\\{}[],aAbeEfkKsSuUxX_\n\xc3\xa9/=";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..400 {
        let len = (rnd() % 200) as usize;
        let input: Vec<u8> = (0..len)
            .map(|_| {
                let r = rnd();
                if round % 4 == 0 {
                    r as u8
                } else {
                    alphabet[(r % alphabet.len() as u64) as usize]
                }
            })
            .collect();
        for mode in [ContentMode::Text, ContentMode::Json] {
            let want = buffered(&sc, mode, &input);
            let mut chunks = Vec::new();
            let mut rest = &input[..];
            while !rest.is_empty() {
                let n = ((rnd() % 9) as usize).min(rest.len());
                let (a, b) = rest.split_at(n);
                chunks.push(a);
                rest = b;
            }
            assert_eq!(streamed(&sc, mode, &chunks), want, "{mode:?} {input:?}");
        }
    }
}

#[test]
fn stream_holds_back_little_on_clean_text() {
    let sc = scanner();
    let mut s = StreamScrubber::new(sc, ContentMode::Text);
    let mut out = Vec::new();
    let chunk = b"lorem ipsum dolor sit amet consectetur adipiscing elit ".repeat(100);
    s.push(&chunk, &mut out);
    assert!(
        chunk.len() - out.len() <= 200,
        "held back {}",
        chunk.len() - out.len()
    );
}

#[test]
fn ssn_key_number_holds_back_at_most_nine_digits() {
    let sc = scanner();
    let key = format!("{}_ssn", "k".repeat(10_000));
    // A number too long to be an SSN is not held back at all.
    let mut s = StreamScrubber::new(sc.clone(), ContentMode::Json);
    let mut out = Vec::new();
    let body = format!("{{\"{key}\":{}", "1".repeat(100_000));
    s.push(body.as_bytes(), &mut out);
    assert_eq!(out, body.as_bytes());
    // Up to nine digits wait for the end of the number.
    let mut s = StreamScrubber::new(sc.clone(), ContentMode::Json);
    let mut out = Vec::new();
    let head = format!("{{\"{key}\":12345678");
    s.push(head.as_bytes(), &mut out);
    assert_eq!(out.len(), head.len() - 8);
    s.push(b"9}", &mut out);
    s.finish(&mut out);
    assert_eq!(out, format!("{{\"{key}\":\"[SSN]\"}}").as_bytes());
    assert_eq!(s.report().count(PiiType::Ssn), 1);
}

#[test]
fn ssn_number_partial_and_block_actions_keep_json_valid() {
    for (action, want) in [
        (Action::Partial, "[SSN ***-**-6789]"),
        (Action::Block, "[SSN]"),
    ] {
        let cfg = PiiConfig {
            actions: [(PiiType::Ssn, action)].into_iter().collect(),
            ..PiiConfig::default()
        };
        let sc = Scanner::new(&cfg).unwrap();
        let mut out = Vec::new();
        let r = sc.scrub_json(br#"{"ssn": 123456789, "SSN": "123456789"}"#, &mut out);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (v["ssn"].as_str(), v["SSN"].as_str()),
            (Some(want), Some(want))
        );
        assert_eq!(r.count(PiiType::Ssn), 2);
        assert_eq!(r.blocked(), action == Action::Block);
    }
}

/// Streamed word by word, text is final up to the last space once no
/// keyword can start in what follows: a token waits for the next one,
/// not for ~95 bytes of later text.
#[test]
fn streamed_words_wait_only_for_the_next_word() {
    let sc = scanner();
    let words = [
        "The", " weather", " in", " Lisbon", " is", " mild", " today,", " with", " light", " rain",
        " later", " on.",
    ];
    let mut s = StreamScrubber::new(sc, ContentMode::Text);
    let mut out = Vec::new();
    let mut sent = String::new();
    for (i, w) in words.iter().enumerate() {
        s.push(w.as_bytes(), &mut out);
        sent.push_str(w);
        if i >= 1 {
            // Everything before the word just sent is out.
            let upto = sent.len() - w.len();
            assert!(
                out.len() >= upto,
                "after {sent:?} only {:?} out",
                String::from_utf8_lossy(&out)
            );
        }
    }
    s.finish(&mut out);
    assert_eq!(String::from_utf8_lossy(&out), sent);
}

/// What may still start a keyword waits: `gh` could become `ghp_…`, and
/// `-----BEG` a private key; a value split that way is still found.
#[test]
fn a_keyword_cut_after_a_space_is_still_found() {
    let sc = scanner();
    let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    for cut in 1..token.len() {
        let (a, b) = token.split_at(cut);
        let first = format!("token: {a}");
        let out = streamed(
            &sc,
            ContentMode::Text,
            &[first.as_bytes(), b.as_bytes(), b" ok"],
        );
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("abcdefghij"), "cut {cut}: {out}");
    }
}
