//! Properties of the request-line checks over many generated adversarial
//! inputs: every accepted path is a fixed point of the normalisations a
//! proxy or upstream may apply, and every accepted host is a fixed point of
//! the host check itself.

use mcp_guard_engine::request_line::{check_authority, check_path};

/// RFC 3986 unreserved characters.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 §6.2.2.1–2: upper-case the hex of every escape and decode the
/// escapes of unreserved characters. Malformed escapes are left alone.
fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        match escape {
            Some((h, l)) => {
                let v = h << 4 | l;
                if unreserved(v) {
                    out.push(v);
                } else {
                    out.extend(format!("%{v:02X}").bytes());
                }
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("only ASCII was added")
}

/// Envoy's `merge_slashes`.
fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// RFC 3986 §5.2.4 remove_dot_segments, written from the RFC's steps.
fn remove_dot_segments(path: &str) -> String {
    let mut input = path.to_string();
    let mut output = String::new();
    while !input.is_empty() {
        if let Some(rest) = input.strip_prefix("../") {
            input = rest.to_string();
        } else if let Some(rest) = input.strip_prefix("./") {
            input = rest.to_string();
        } else if input.starts_with("/./") {
            input = input[2..].to_string();
        } else if input == "/." {
            input = "/".to_string();
        } else if input.starts_with("/../") || input == "/.." {
            input = format!("/{}", &input[if input == "/.." { 3 } else { 4 }..]);
            match output.rfind('/') {
                Some(at) => output.truncate(at),
                None => output.clear(),
            }
        } else if input == "." || input == ".." {
            input.clear();
        } else {
            let start = usize::from(input.starts_with('/'));
            let end = input[start..].find('/').map_or(input.len(), |e| e + start);
            output.push_str(&input[..end]);
            input = input[end..].to_string();
        }
    }
    output
}

/// What Envoy's `normalize_path` then `merge_slashes` make of a path.
fn envoy_normalise(path: &str) -> String {
    merge_slashes(&remove_dot_segments(&decode_unreserved(path)))
}

/// The same steps in the other order, as another proxy or an upstream
/// framework may apply them.
fn merge_first_normalise(path: &str) -> String {
    remove_dot_segments(&merge_slashes(&decode_unreserved(path)))
}

/// Percent-decodes every well-formed escape (what a lenient upstream does).
fn decode_all(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let pair = (bytes[i] == b'%')
            .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
            .flatten();
        if let Some((h, l)) = pair {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// Every way the upstream could read an accepted path gives the same
/// segments as the path itself.
fn assert_unambiguous(raw: &str) {
    let Ok(normal) = check_path(raw) else { return };
    assert_eq!(
        envoy_normalise(normal.path),
        normal.path,
        "accepted {raw:?} is not a fixed point of normalisation"
    );
    assert_eq!(merge_first_normalise(normal.path), normal.path, "{raw:?}");
    assert!(!normal.path.contains(['?', '#', ';', '\\']), "{raw:?}");
    let segments = normal
        .path
        .strip_prefix('/')
        .filter(|rest| !rest.is_empty());
    for segment in segments.into_iter().flat_map(|rest| rest.split('/')) {
        let once = decode_all(segment.as_bytes());
        assert!(!once.is_empty(), "{raw:?}: empty segment");
        assert!(
            once != b"." && once != b"..",
            "{raw:?}: decodes to a dot segment"
        );
        assert!(
            !once
                .iter()
                .any(|b| matches!(b, b'/' | b'\\' | 0..=0x1F | 0x7F)),
            "{raw:?}: a segment decodes to a separator or control byte"
        );
        assert_eq!(
            decode_all(&once),
            once,
            "{raw:?}: decoding twice differs from decoding once"
        );
    }
}

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
        let Ok(normal) = check_authority(&raw) else {
            refused += 1;
            continue;
        };
        accepted += 1;
        let host = normal.as_str();
        assert!(
            !host.is_empty() && !host.ends_with('.'),
            "{raw:?} -> {host:?}"
        );
        assert!(!host.contains(['@', '%', ' ']), "{raw:?} -> {host:?}");
        assert_eq!(host, host.to_ascii_lowercase(), "{raw:?}");
        let again = check_authority(host).unwrap_or_else(|e| panic!("{raw:?} -> {host:?}: {e}"));
        assert_eq!((again.as_str(), again.port), (host, None), "{raw:?}");
        if let Some(port) = normal.port {
            let with_port = format!("{host}:{port}");
            let again = check_authority(&with_port).expect("host:port of a normal host");
            assert_eq!((again.as_str(), again.port), (host, Some(port)));
        }
    }
    assert!(
        accepted > 1_000 && refused > 1_000,
        "{accepted} / {refused}"
    );
}
