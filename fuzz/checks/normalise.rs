//! A small reference normaliser for request paths, written from RFC 3986
//! and Envoy's documented options, and the properties every accepted path
//! and host must have. Shared by `engine/tests/request_line_props.rs`, the
//! `request_line` fuzz target and the corpus replay test.

use mcp_guard_engine::request_line::{check_authority, check_path};

/// RFC 3986 unreserved characters.
pub fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

pub fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// RFC 3986 §6.2.2.1–2: upper-case the hex of every escape and decode the
/// escapes of unreserved characters. Malformed escapes are left alone.
pub fn decode_unreserved(path: &str) -> String {
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
pub fn merge_slashes(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

/// RFC 3986 §5.2.4 remove_dot_segments, written from the RFC's steps.
pub fn remove_dot_segments(path: &str) -> String {
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
pub fn envoy_normalise(path: &str) -> String {
    merge_slashes(&remove_dot_segments(&decode_unreserved(path)))
}

/// The same steps in the other order, as another proxy or an upstream
/// framework may apply them.
pub fn merge_first_normalise(path: &str) -> String {
    remove_dot_segments(&merge_slashes(&decode_unreserved(path)))
}

/// Percent-decodes every well-formed escape (what a lenient upstream does).
pub fn decode_all(bytes: &[u8]) -> Vec<u8> {
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
pub fn assert_unambiguous(raw: &str) {
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

/// Every accepted host is lower case, has no userinfo, escape, space or
/// trailing dot, and is a fixed point of the check (with and without its
/// port).
pub fn assert_host_fixed_point(raw: &str) {
    let Ok(normal) = check_authority(raw) else {
        return;
    };
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
