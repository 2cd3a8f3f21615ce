//! Properties of the request-line checks over many generated adversarial
//! inputs: every accepted path is a fixed point of the normalisations a
//! proxy or upstream may apply, and every accepted host is a fixed point of
//! the host check itself.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_guard_engine::request_line::{check_authority, check_path};

#[path = "../../fuzz/checks/normalise.rs"]
mod normalise;

use normalise::{
    assert_host_fixed_point, assert_unambiguous, envoy_normalise, merge_first_normalise,
};

/// Pieces attackers combine.
const TOKENS: &[&str] = &[
    "/", "//", ".", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C", "%25", "%252e", "%61", "%41",
    "%3B", "%3b", "%C3%A9", "%c3", "%", "%4", "%zz", "a", "admin", "tenants", "acme", ";", ";x=1",
    "\\", "?", "#", "~", "_", "-", ":", "@", "+", " ", "\t", "\u{e9}", "%00", "%0A", "%7F", "%20",
    "*", "!", "%3F", "%23", "..;", "%u002e", "\u{ff0e}",
];

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_token_paths_accepted_only_in_normal_form() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..200_000 {
        let mut raw = String::from(if rng.below(8) == 0 { "" } else { "/" });
        for _ in 0..1 + rng.below(7) {
            raw.push_str(TOKENS[rng.below(TOKENS.len())]);
        }
        match check_path(&raw) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
        assert_unambiguous(&raw);
    }
    // Both outcomes must be well represented, or the test proves nothing.
    assert!(
        accepted > 5_000 && refused > 5_000,
        "{accepted} / {refused}"
    );
}

#[test]
fn every_short_path_over_a_hostile_alphabet() {
    let alphabet = [
        b'/', b'.', b'%', b'2', b'e', b'E', b'f', b'F', b'a', b'5', b'c', b';', b'\\',
    ];
    let mut accepted = 0;
    let mut current = vec![b'/'];
    fn walk(current: &mut Vec<u8>, alphabet: &[u8], depth: usize, accepted: &mut usize) {
        let raw = std::str::from_utf8(current).expect("ASCII");
        if check_path(raw).is_ok() {
            *accepted += 1;
        }
        assert_unambiguous(raw);
        if depth == 0 {
            return;
        }
        for &b in alphabet {
            current.push(b);
            walk(current, alphabet, depth - 1, accepted);
            current.pop();
        }
    }
    walk(&mut current, &alphabet, 5, &mut accepted);
    assert!(accepted > 1_000, "{accepted}");
}

#[test]
fn the_reference_normaliser_rewrites_the_attacks() {
    // The reference must itself see the attacks, or the properties above
    // are vacuous.
    for (raw, normal) in [
        ("/tenants/acme/../globex/x", "/tenants/globex/x"),
        ("/%2e%2e/admin", "/admin"),
        ("/a/%2E./admin", "/admin"),
        ("/%61dmin", "/admin"),
        ("//admin", "/admin"),
        ("/a/./b", "/a/b"),
        ("/a/%c3%a9", "/a/%C3%A9"),
        ("/a/b/..", "/a/"),
        ("///x//..//admin", "/x/admin"),
    ] {
        assert_eq!(envoy_normalise(raw), normal, "{raw}");
        assert!(check_path(raw).is_err(), "{raw}");
    }
    assert_eq!(merge_first_normalise("///x//..//admin"), "/admin");
}

#[test]
fn random_authorities_normalise_to_fixed_points() {
    const PIECES: &[&str] = &[
        "a",
        "B",
        "model",
        "local",
        ".",
        "..",
        ":",
        ":80",
        ":65536",
        "@",
        "[",
        "]",
        "::1",
        "%2E",
        "0x7f",
        "127",
        "0",
        "1",
        "-",
        "_",
        " ",
        "\u{e4}",
        "[::1]",
        "[::FFFF:1.2.3.4]",
        "%25eth0",
    ];
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..100_000 {
        let mut raw = String::new();
        for _ in 0..1 + rng.below(6) {
            raw.push_str(PIECES[rng.below(PIECES.len())]);
        }
        match check_authority(&raw) {
            Ok(_) => accepted += 1,
            Err(_) => refused += 1,
        }
        assert_host_fixed_point(&raw);
    }
    assert!(
        accepted > 1_000 && refused > 1_000,
        "{accepted} / {refused}"
    );
}
