//! The `:authority` (Host) check.
//!
//! Host rules compare the host as text, so every spelling of one host must
//! reduce to one text, and spellings that an upstream could read as another
//! host are refused. Decisions:
//!
//! - Upper case is normalised to lower case (DNS names are case-insensitive;
//!   refusing `Model.Local` would only break clients).
//! - A trailing dot is refused (`host_trailing_dot`): the upstream gets the
//!   authority as sent, so the rules must have matched exactly that text.
//!   The shipped Envoy config strips one trailing dot before the filter
//!   (`strip_trailing_host_dot`), so `internal.local.` from a client still
//!   works there and `internal.local..` is refused.
//! - The port is split off and returned apart; rules match the host alone
//!   (as they did before this check). An empty, non-numeric or out-of-range
//!   port is refused.
//! - IPv6 literals (`[::1]`) must parse and are rewritten in their canonical
//!   RFC 5952 text (`[0:0::1]` becomes `[::1]`); zone ids are refused.
//! - A host whose last label is numeric must be a canonical dotted-quad
//!   IPv4 address: `127.1`, `0x7f.0.0.1` and `0177.0.0.1` are refused, as
//!   resolvers and URL parsers read them as IPv4 addresses.
//! - Userinfo (`user@host`), percent escapes, empty labels, labels over 63
//!   bytes, names over 253 bytes and any byte other than letters, digits,
//!   `-`, `_` and `.` are refused.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest DNS name (without the trailing dot).
const MAX_NAME: usize = 253;
/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// A host in normal form, apart from its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalHost<'a> {
    /// Lower-case name without a trailing dot, dotted-quad IPv4, or a
    /// bracketed canonical IPv6 address. Borrowed when already normal.
    pub host: Cow<'a, str>,
    /// The port, if the authority named one.
    pub port: Option<u16>,
}

impl NormalHost<'_> {
    /// The host part, as host rules compare it.
    pub fn as_str(&self) -> &str {
        &self.host
    }
}

/// Why an `:authority` is refused. [`HostError::code`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No host at all.
    #[error("host is empty")]
    Empty,
    /// `user@host`.
    #[error("authority has userinfo (`@`)")]
    Userinfo,
    /// A byte not allowed in a host name.
    #[error("host has a character not allowed in a host name")]
    InvalidCharacter,
    /// `a..b`, `.a`, `a..`.
    #[error("host has an empty label")]
    EmptyLabel,
    /// A trailing dot: not the host's normal form.
    #[error("host ends with a dot")]
    TrailingDot,
    /// A label over 63 bytes or a name over 253.
    #[error("host name or label too long")]
    TooLong,
    /// Empty, non-numeric or out-of-range port.
    #[error("authority has an invalid port")]
    InvalidPort,
    /// `[…]` that is not an IPv6 address, or has a zone id.
    #[error("host is not a valid IPv6 literal")]
    InvalidIpv6,
    /// A numeric last label that is not a canonical dotted-quad address.
    #[error("host is an ambiguous IPv4 address")]
    AmbiguousIpv4,
}

impl HostError {
    /// Stable snake_case code, e.g. for the detail of a 400 reply.
    pub fn code(self) -> &'static str {
        match self {
            HostError::Empty => "host_empty",
            HostError::Userinfo => "host_userinfo",
            HostError::InvalidCharacter => "host_invalid_character",
            HostError::EmptyLabel => "host_empty_label",
            HostError::TrailingDot => "host_trailing_dot",
            HostError::TooLong => "host_too_long",
            HostError::InvalidPort => "host_invalid_port",
            HostError::InvalidIpv6 => "host_invalid_ipv6",
            HostError::AmbiguousIpv4 => "host_ambiguous_ipv4",
        }
    }
}

/// Checks an HTTP `:authority` (or `Host`) and returns its host in normal
/// form and its port (see the module documentation for the rules).
pub fn check_authority(raw: &str) -> Result<NormalHost<'_>, HostError> {
    if raw.contains('@') {
        return Err(HostError::Userinfo);
    }
    if let Some(bracketed) = raw.strip_prefix('[') {
        let (literal, after) = bracketed.split_once(']').ok_or(HostError::InvalidIpv6)?;
        let port = match after {
            "" => None,
            _ => Some(parse_port(
                after.strip_prefix(':').ok_or(HostError::InvalidPort)?,
            )?),
        };
        let address: Ipv6Addr = literal.parse().map_err(|_| HostError::InvalidIpv6)?;
        return Ok(NormalHost {
            host: Cow::Owned(format!("[{address}]")),
            port,
        });
    }
    let (name, port) = match raw.split_once(':') {
        Some((name, port)) => (name, Some(parse_port(port)?)),
        None => (raw, None),
    };
    let host = check_name(name)?;
    Ok(NormalHost { host, port })
}

/// The digits after `host:`: one to five of them, at most 65535.
fn parse_port(digits: &str) -> Result<u16, HostError> {
    if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::InvalidPort);
    }
    digits.parse().map_err(|_| HostError::InvalidPort)
}

/// A registered name or IPv4 address, lower-cased.
fn check_name(name: &str) -> Result<Cow<'_, str>, HostError> {
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if name.ends_with('.') {
        return Err(HostError::TrailingDot);
    }
    if name.len() > MAX_NAME {
        return Err(HostError::TooLong);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(HostError::InvalidCharacter);
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(HostError::TooLong);
        }
    }
    if looks_numeric(name) && name.parse::<Ipv4Addr>().is_err() {
        return Err(HostError::AmbiguousIpv4);
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        Ok(Cow::Owned(name.to_ascii_lowercase()))
    } else {
        Ok(Cow::Borrowed(name))
    }
}

/// Whether URL parsers would read `name` as an IPv4 address: its last
/// label is all digits, or hex with a `0x` prefix.
fn looks_numeric(name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    let lower = last.to_ascii_lowercase();
    let digits = lower.strip_prefix("0x").unwrap_or(&lower);
    if lower.starts_with("0x") {
        digits.bytes().all(|b| b.is_ascii_hexdigit())
    } else {
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_normalised() {
        for (raw, host, port) in [
            ("model.local", "model.local", None),
            ("Model.LOCAL", "model.local", None),
            ("model.local:80", "model.local", Some(80)),
            ("localhost", "localhost", None),
            ("a_b.svc", "a_b.svc", None),
            ("127.0.0.1", "127.0.0.1", None),
            ("127.0.0.1:443", "127.0.0.1", Some(443)),
            ("[::1]", "[::1]", None),
            ("[::1]:80", "[::1]", Some(80)),
            ("[0:0:0:0:0:0:0:1]", "[::1]", None),
            ("[FE80::ABCD]:65535", "[fe80::abcd]", Some(65535)),
            ("[::ffff:127.0.0.1]", "[::ffff:127.0.0.1]", None),
            ("x1.example", "x1.example", None),
            ("1x.example", "1x.example", None),
            ("xn--intrnl-cua.local", "xn--intrnl-cua.local", None),
        ] {
            let got = check_authority(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!((got.as_str(), got.port), (host, port), "{raw}");
        }
    }

    #[test]
    fn normal_hosts_are_borrowed() {
        assert!(matches!(
            check_authority("model.local:1").map(|h| h.host),
            Ok(Cow::Borrowed("model.local"))
        ));
    }

    #[test]
    fn ambiguous_or_malformed_hosts_are_refused() {
        for (raw, expected) in [
            ("", HostError::Empty),
            (":80", HostError::Empty),
            (".", HostError::TrailingDot),
            ("INTERNAL.local.:8080", HostError::TrailingDot),
            (".:80", HostError::TrailingDot),
            ("user@internal.local", HostError::Userinfo),
            ("internal.local@evil", HostError::Userinfo),
            (":@evil", HostError::Userinfo),
            ("internal.local.", HostError::TrailingDot),
            ("internal.local..", HostError::TrailingDot),
            (".internal.local", HostError::EmptyLabel),
            ("a..b", HostError::EmptyLabel),
            ("model.local:", HostError::InvalidPort),
            ("model.local:x", HostError::InvalidPort),
            ("model.local:65536", HostError::InvalidPort),
            ("model.local:+80", HostError::InvalidPort),
            ("model.local:80:80", HostError::InvalidPort),
            ("model.local:000080", HostError::InvalidPort),
            ("[::1]80", HostError::InvalidPort),
            ("[::1]:", HostError::InvalidPort),
            ("[::1", HostError::InvalidIpv6),
            ("[zz::1]", HostError::InvalidIpv6),
            ("[fe80::1%25eth0]", HostError::InvalidIpv6),
            ("[127.0.0.1]", HostError::InvalidIpv6),
            ("[]", HostError::InvalidIpv6),
            ("::1", HostError::InvalidPort),
            ("127.1", HostError::AmbiguousIpv4),
            ("0x7f.0.0.1", HostError::AmbiguousIpv4),
            ("0177.0.0.1", HostError::AmbiguousIpv4),
            ("2130706433", HostError::AmbiguousIpv4),
            ("1.2.3.4.5", HostError::AmbiguousIpv4),
            ("evil.0x7f", HostError::AmbiguousIpv4),
            ("evil.1", HostError::AmbiguousIpv4),
            ("example.0x", HostError::AmbiguousIpv4),
            ("1.2.3.04", HostError::AmbiguousIpv4),
            ("in ternal.local", HostError::InvalidCharacter),
            ("internal%2Elocal", HostError::InvalidCharacter),
            ("internal.local/x", HostError::InvalidCharacter),
            ("internal.local\\x", HostError::InvalidCharacter),
            ("internal.local\0", HostError::InvalidCharacter),
            ("intern\u{e4}l.local", HostError::InvalidCharacter),
        ] {
            assert_eq!(check_authority(raw), Err(expected), "{raw:?}");
        }
        assert_eq!(
            check_authority(&format!("{}.local", "a".repeat(64))),
            Err(HostError::TooLong)
        );
        let long = vec!["a".repeat(63); 4].join(".");
        assert_eq!(check_authority(&long), Err(HostError::TooLong));
        assert!(check_authority(&long[..253]).is_ok());
    }
}
