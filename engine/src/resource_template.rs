//! MCP resource URI templates (`when.mcp.resource_templates`): the RFC 6570
//! subset MCP servers use for resource templates, matched against the
//! `params.uri` of `resources/read` with captures for relations.
//!
//! A template is `scheme://` followed by `/`-separated segments: literal,
//! `{name}` (exactly one non-empty segment) or a final `{name*}` (the rest,
//! one or more segments). `file:///tenants/{tenant}/{path*}` matches
//! `file:///tenants/acme/a/b.txt` with `tenant = acme`.
//!
//! Servers resolve URIs in many ways (decoding, dot-segment removal, case
//! folding of the scheme), so only URIs in one canonical form are judged:
//! [`check_uri`] refuses the rest, and [`ResourceTemplate::matches`] never
//! matches them.

use thiserror::Error;

use crate::template::{match_segments, Segment};

/// Why a template is not valid.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ResourceTemplateError {
    /// No lower-case `scheme://` prefix.
    #[error("must start with a lower-case `scheme://`")]
    NoScheme,
    /// A segment that is a bad capture or not a plain literal.
    #[error("segment `{0}`: a capture is a whole segment `{{name}}` or a final `{{name*}}`; literals hold no `{{}}%?#\\` and are not `.`, `..` or empty")]
    BadSegment(String),
    /// The same capture name twice.
    #[error("capture `{0}` appears twice")]
    DuplicateCapture(String),
}

/// Why a resource URI is not in the canonical form rules are matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum UriError {
    /// The scheme has upper-case letters (`FILE:`): schemes are
    /// case-insensitive, so it names the same resource as `file:`.
    #[error("URI scheme is not lower case")]
    SchemeCase,
    /// A query or fragment, which servers may or may not strip.
    #[error("URI has a query or fragment")]
    QueryOrFragment,
    /// A `.` or `..` segment, which resolves to another path.
    #[error("URI has a dot segment")]
    DotSegment,
    /// An empty segment (`//` in the path), which some servers collapse.
    #[error("URI has an empty path segment")]
    EmptySegment,
    /// A percent-encoded `/`, `\`, `%`, control or unreserved character
    /// (`%2F`, `%2e`), or a malformed escape: decoding changes its path.
    #[error("URI has an ambiguous percent-encoding")]
    Encoding,
    /// A backslash, space, control or non-ASCII character.
    #[error("URI has a character outside RFC 3986")]
    BadCharacter,
    /// An authority with another spelling of the same server (userinfo,
    /// upper case, a trailing dot, `%`, an empty, zero-led or default
    /// port, `localhost` for `file`), or a path that starts with `/`
    /// without one (`file:/etc/x` is `file:///etc/x`).
    #[error("URI authority is not in canonical form")]
    Authority,
}

impl UriError {
    /// Stable snake_case code, used as the decision detail.
    pub fn code(self) -> &'static str {
        match self {
            Self::SchemeCase => "uri_scheme_case",
            Self::QueryOrFragment => "uri_query_or_fragment",
            Self::DotSegment => "uri_dot_segment",
            Self::EmptySegment => "uri_empty_segment",
            Self::Encoding => "uri_encoding",
            Self::BadCharacter => "uri_bad_character",
            Self::Authority => "uri_authority",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Checks that a resource URI is in canonical form: lower-case scheme;
/// ASCII without spaces, controls or `\`; no query or fragment; escapes
/// only for characters that must be escaped (never `/`, `\`, `%`,
/// controls or unreserved ones); and, after `scheme://`, no empty, `.` or
/// `..` segment but the authority.
pub fn check_uri(uri: &str) -> Result<(), UriError> {
    let bytes = uri.as_bytes();
    if bytes.iter().any(|&b| b <= b' ' || b >= 0x7F || b == b'\\') {
        return Err(UriError::BadCharacter);
    }
    if uri.contains(['?', '#']) {
        return Err(UriError::QueryOrFragment);
    }
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let decoded = match (
                bytes.get(i + 1).and_then(|&h| hex(h)),
                bytes.get(i + 2).and_then(|&l| hex(l)),
            ) {
                (Some(h), Some(l)) => h * 16 + l,
                _ => return Err(UriError::Encoding),
            };
            if is_unreserved(decoded)
                || matches!(decoded, b'/' | b'\\' | b'%')
                || decoded < 0x20
                || decoded == 0x7F
            {
                return Err(UriError::Encoding);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    if let Some((scheme, _)) = uri.split_once(':') {
        if scheme.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(UriError::SchemeCase);
        }
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Ok(());
    };
    match rest.strip_prefix("//") {
        Some(rest) => {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            check_authority(scheme, authority)?;
            if rest.contains('/') {
                for segment in path.split('/') {
                    match segment {
                        "" => return Err(UriError::EmptySegment),
                        "." | ".." => return Err(UriError::DotSegment),
                        _ => {}
                    }
                }
            }
        }
        // `file:/etc/x` names `file:///etc/x` for many resolvers, which a
        // template written `file:///etc/{p*}` would not match.
        None if rest.starts_with('/') => return Err(UriError::Authority),
        None => {
            if rest.split('/').any(|s| s == "." || s == "..") {
                return Err(UriError::DotSegment);
            }
        }
    }
    Ok(())
}

/// Checks the authority of a `scheme://authority/…` URI: one spelling
/// per server, so a template's literal authority (or a capture bound to
/// a claim) sees the server the resolver reaches. Hosts are compared
/// case-insensitively by resolvers, `user@` is dropped, `host.` is
/// `host`, `:443` is no port for `https`, `file://localhost/` is
/// `file:///` (RFC 8089).
fn check_authority(scheme: &str, authority: &str) -> Result<(), UriError> {
    let bad = authority
        .bytes()
        .any(|b| b == b'@' || b == b'%' || b.is_ascii_uppercase());
    if bad {
        return Err(UriError::Authority);
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (inside, after) = v6.split_once(']').ok_or(UriError::Authority)?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or(UriError::Authority)?),
            };
            (inside, port)
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.ends_with('.') || (scheme == "file" && host == "localhost") {
        return Err(UriError::Authority);
    }
    if let Some(port) = port {
        let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
        let default = matches!(
            (scheme, port),
            ("http" | "ws", "80") | ("https" | "wss", "443")
        );
        if !digits || port.starts_with('0') || default {
            return Err(UriError::Authority);
        }
    }
    Ok(())
}

/// A compiled resource URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceTemplate {
    /// `scheme://`, matched byte for byte.
    prefix: String,
    segments: Vec<Segment>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn valid_scheme(scheme: &str) -> bool {
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        })
}

impl ResourceTemplate {
    /// Parses a template such as `file:///tenants/{tenant}/{path*}`.
    pub fn parse(text: &str) -> Result<Self, ResourceTemplateError> {
        let (scheme, rest) = text
            .split_once("://")
            .filter(|(s, _)| valid_scheme(s))
            .ok_or(ResourceTemplateError::NoScheme)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let mut segments = Vec::new();
        let mut names: Vec<&str> = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let bad = || ResourceTemplateError::BadSegment((*part).to_string());
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(inner) => {
                    let (name, rest) = match inner.strip_suffix('*') {
                        Some(name) => (name, true),
                        None => (inner, false),
                    };
                    if !valid_name(name) || (rest && i + 1 != parts.len()) {
                        return Err(bad());
                    }
                    if names.contains(&name) {
                        return Err(ResourceTemplateError::DuplicateCapture(name.to_string()));
                    }
                    names.push(name);
                    if rest {
                        Segment::Rest(name.to_string())
                    } else {
                        Segment::Capture(name.to_string())
                    }
                }
                None => {
                    let plain = !part.contains(['{', '}', '%', '?', '#', '\\'])
                        && part.bytes().all(|b| b > b' ' && b < 0x7F);
                    let dot = matches!(*part, "." | "..");
                    // Only the authority (first segment) may be empty, as
                    // in `file:///`; a literal one must be canonical, as
                    // the URIs it is matched against are.
                    if !plain || dot || (part.is_empty() && i != 0) {
                        return Err(bad());
                    }
                    if i == 0 && check_authority(scheme, part).is_err() {
                        return Err(bad());
                    }
                    Segment::Literal((*part).to_string())
                }
            };
            segments.push(segment);
        }
        Ok(Self {
            prefix: format!("{scheme}://"),
            segments,
        })
    }

    /// Whether the template captures `name`.
    pub fn has_capture(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Capture(n) | Segment::Rest(n) if n == name))
    }

    /// Matches a canonical `uri` (see [`check_uri`]; any other never
    /// matches). On success returns the value of capture `want`, or
    /// `Some("")` when `want` is `None`. Captures are never empty.
    pub fn matches<'u>(&self, uri: &'u str, want: Option<&str>) -> Option<&'u str> {
        check_uri(uri).ok()?;
        let rest = uri.strip_prefix(self.prefix.as_str())?;
        match_segments(&self.segments, rest, want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> ResourceTemplate {
        ResourceTemplate::parse(text).unwrap()
    }

    #[test]
    fn captures_one_segment_and_the_rest() {
        let tpl = t("file:///tenants/{tenant}/{path*}");
        let uri = "file:///tenants/acme/a/b.txt";
        assert_eq!(tpl.matches(uri, Some("tenant")), Some("acme"));
        assert_eq!(tpl.matches(uri, Some("path")), Some("a/b.txt"));
        assert_eq!(tpl.matches("file:///tenants/acme", None), None);
        assert_eq!(tpl.matches("file:///tenants/acme/", None), None);
        assert_eq!(tpl.matches("file:///other/acme/x", None), None);
        let db = t("db://{table}/rows/{id}");
        assert_eq!(
            db.matches("db://users/rows/7", Some("table")),
            Some("users")
        );
        assert_eq!(db.matches("db://users/rows/7/x", None), None);
        assert_eq!(db.matches("db:///rows/7", None), None, "empty capture");
    }

    #[test]
    fn attacker_uris_never_match_another_tenant() {
        let tpl = t("file:///tenants/{tenant}/{path*}");
        for uri in [
            "file:///tenants/acme/../globex/x",
            "file:///tenants/acme/./x",
            "file:///tenants/acme/x/..",
            "file:///tenants/acme%2F..%2Fglobex/x",
            "file:///tenants/acme/%2e%2e/globex/x",
            "file:///tenants/acme/%2E%2E/globex/x",
            "file:///tenants/acme/%252e%252e/globex/x",
            "file:///tenants/acme//x",
            "file:///tenants/acme/x?../../globex",
            "file:///tenants/acme/x#frag",
            "FILE:///tenants/acme/x",
            "File:///tenants/acme/x",
            "file:///tenants/acme\\..\\globex/x",
            "file:///tenants/acme/x%00",
            "file:///tenants/acme/x%",
            "file:///tenants/acme/x%zz",
            "file:///tenants/%61cme/x",
            "file:///tenants/acme/x y",
            "file:///tenants/acme/\u{ff0e}\u{ff0e}/globex",
        ] {
            assert!(check_uri(uri).is_err(), "{uri}");
            assert_eq!(tpl.matches(uri, Some("tenant")), None, "{uri}");
        }
        assert_eq!(
            check_uri("file:///tenants/acme/../globex/x"),
            Err(UriError::DotSegment)
        );
        assert_eq!(check_uri("FILE:///x"), Err(UriError::SchemeCase));
        assert_eq!(check_uri("file:///a/%2fb"), Err(UriError::Encoding));
        assert_eq!(check_uri("file:///a//b"), Err(UriError::EmptySegment));
        assert_eq!(check_uri("file:///a?b"), Err(UriError::QueryOrFragment));
        // Escapes that must be escaped are fine.
        assert_eq!(check_uri("file:///tenants/acme/a%20b"), Ok(()));
        assert_eq!(
            tpl.matches("file:///tenants/acme/a%20b", Some("tenant")),
            Some("acme")
        );
        assert_eq!(check_uri("urn:isbn:0451450523"), Ok(()));
    }

    /// Attack: spellings a server resolves to the resource a template
    /// names, but that the template does not match, so a deny rule on
    /// `file:///etc/{p*}` or `https://api.example.com/admin/{p*}` missed
    /// them: no authority (`file:/etc/x`), `localhost` for `file`, userinfo,
    /// host case, a trailing dot, an empty or default port.
    #[test]
    fn other_spellings_of_a_templated_authority_are_refused() {
        let etc = t("file:///etc/{p*}");
        let admin = t("https://api.example.com/admin/{p*}");
        assert_eq!(etc.matches("file:///etc/passwd", None), Some(""));
        assert_eq!(
            admin.matches("https://api.example.com/admin/x", None),
            Some("")
        );
        for uri in [
            "file:/etc/passwd",
            "file:/etc/../etc/passwd",
            "file://localhost/etc/passwd",
            "https://API.example.com/admin/x",
            "https://Api.Example.com/admin/x",
            "https://user@api.example.com/admin/x",
            "https://api.example.com@evil.example/admin/x",
            "https://api.example.com./admin/x",
            "https://api.example.com:443/admin/x",
            "http://api.example.com:80/admin/x",
            "https://api.example.com:/admin/x",
            "https://api.example.com:0443/admin/x",
            "https://api%2eexample.com/admin/x",
            "custom:a/../b",
        ] {
            assert!(check_uri(uri).is_err(), "{uri}");
        }
        // Ports that change the resource, IPv6 literals and opaque URIs
        // stay usable.
        for uri in [
            "https://api.example.com:8443/admin/x",
            "db://db.internal:5432/users/rows/7",
            "https://[::1]:8443/x",
            "urn:isbn:0451450523",
            "file:///etc/passwd",
        ] {
            assert_eq!(check_uri(uri), Ok(()), "{uri}");
        }
        // A template's literal authority must itself be canonical, or it
        // could never match.
        for text in [
            "https://API.example.com/{p*}",
            "https://u@api.example.com/{p*}",
            "file://localhost/{p*}",
            "https://api.example.com:443/{p*}",
        ] {
            assert!(ResourceTemplate::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn bad_templates_are_refused() {
        for text in [
            "/tenants/{t}",
            "FILE:///x",
            "file:///{t*}/x",
            "file:///a{t}",
            "file:///{}",
            "file:///{t}/{t}",
            "file:///a//b",
            "file:///a/../b",
            "file:///a/%2e",
            "file:///a?x",
        ] {
            assert!(ResourceTemplate::parse(text).is_err(), "{text}");
        }
    }
}
