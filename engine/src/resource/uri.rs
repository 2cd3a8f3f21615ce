//! The URIs of the `resource` section: absolute, `https` (plain `http`
//! only on loopback), in a normal form the filter can compare byte for
//! byte and quote in a header.

/// An absolute URI split as far as the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Uri<'a> {
    /// `https` or `http`, as written (lower case).
    pub scheme: &'a str,
    /// Host and optional port.
    pub authority: &'a str,
    /// Path, empty or starting with `/`.
    pub path: &'a str,
}

/// Characters allowed in a URI here: unreserved, sub-delims other than
/// quote-like ones, `:`, `@`, `/`. No `%` (what the filter compares must
/// be what the client sends), no `"` or `\` (the URI goes into quoted
/// header parameters).
fn uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'['
                | b']'
        )
}

/// Loopback host names for which plain `http` is accepted (local
/// development only; tokens must never travel over cleartext elsewhere).
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host.strip_prefix("127.").is_some_and(|rest| {
            rest.split('.').count() == 3 && rest.split('.').all(|o| o.parse::<u8>().is_ok())
        })
}

/// Splits `host[:port]`; the port must be digits.
fn host_of(authority: &str) -> Result<&str, &'static str> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or("has an unclosed IPv6 literal")?;
        let (host, rest) = authority
            .split_at_checked(end.saturating_add(1))
            .ok_or("has a malformed host")?;
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(rest.strip_prefix(':').ok_or("has a malformed port")?),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("has no host");
    }
    if let Some(digits) = port {
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("has a malformed port");
        }
    }
    let bracketed = host.starts_with('[');
    if host.get(1..).unwrap_or("").contains('[') || (!bracketed && host.contains(']')) {
        return Err("has a malformed host");
    }
    Ok(host)
}

/// Checks an absolute `https` URI (or `http` on loopback): no fragment,
/// no query, no user info, no percent-encoding, no dot segments.
pub(super) fn parse_uri(text: &str) -> Result<Uri<'_>, &'static str> {
    if text.contains('#') {
        return Err("must not have a fragment");
    }
    if text.contains('?') {
        return Err("must not have a query");
    }
    if !text.bytes().all(uri_char) {
        return Err("may only use unreserved characters, sub-delims, `:`, `@` and `/` (no `%`, quotes, spaces)");
    }
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("must be an absolute URI (`https://host/path`)")?;
    if scheme != "https" && scheme != "http" {
        return Err("must use the `https` scheme");
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("")),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("must not carry user info");
    }
    let host = host_of(authority)?;
    if scheme == "http" && !is_loopback(host) {
        return Err("must use `https` (`http` is accepted only for loopback hosts)");
    }
    let dot_segment = path.split('/').skip(1).any(|s| s == "." || s == "..");
    if dot_segment || path.contains("//") {
        return Err("must have a path in normal form (no dot segments or empty segments)");
    }
    Ok(Uri {
        scheme,
        authority,
        path,
    })
}
