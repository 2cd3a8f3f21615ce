//! The `Mcp-Method` / `Mcp-Name` request headers of MCP 2026-07-28
//! (Streamable HTTP, "Standard Request Headers", SEP-2243).
//!
//! The headers mirror the body's `method` and `params.name` /
//! `params.uri`, so a proxy can decide before the body arrives. They are
//! only worth that if they are read strictly and the body is later shown
//! to say the same thing: [`read_headers`] turns the headers into the
//! [`McpCall`] the rules see (or refuses headers that are ambiguous), and
//! [`verify_body`] checks the body against it. Every refusal is a
//! [`HeaderMismatch`], answered with HTTP 400 and JSON-RPC error `-32020`.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::{BodyAttrs, McpCall, TargetKind};

/// The header mirroring the JSON-RPC `method` (lower case, as HTTP/2).
pub const METHOD_HEADER: &str = "mcp-method";
/// The header mirroring `params.name` / `params.uri`.
pub const NAME_HEADER: &str = "mcp-name";
/// The JSON-RPC error code the spec gives header/body disagreements.
pub const HEADER_MISMATCH_CODE: i32 = -32020;

/// Methods for which the spec requires `Mcp-Name`.
const SPEC_NAMED: [&str; 3] = ["tools/call", "resources/read", "prompts/get"];

const SENTINEL_START: &str = "=?base64?";
const SENTINEL_END: &str = "?=";

/// Why the MCP headers were refused; [`HeaderMismatch::code`] is the
/// decision detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeaderMismatch {
    /// `Mcp-Method` or `Mcp-Name` sent more than once (two proxies may
    /// each read another copy).
    #[error("Mcp-Method or Mcp-Name header sent more than once")]
    Duplicate,
    /// `Mcp-Name` without `Mcp-Method`.
    #[error("Mcp-Name header without Mcp-Method")]
    NameWithoutMethod,
    /// Empty, non-ASCII, control characters or surrounding whitespace.
    #[error("header value holds invalid characters")]
    InvalidValue,
    /// A `=?base64?…?=` value that does not decode to UTF-8.
    #[error("Base64-encoded header value cannot be decoded")]
    BadEncoding,
    /// `Mcp-Name` on a method that names no tool, resource or prompt.
    #[error("Mcp-Name header on a method that takes no name")]
    NameNotTaken,
    /// The body's `method` differs from `Mcp-Method`.
    #[error("Mcp-Method header does not match the body's method")]
    Method,
    /// The body's name / uri differs from `Mcp-Name` (or is absent).
    #[error("Mcp-Name header does not match the body's name")]
    Name,
    /// The body names a target but `Mcp-Name` is missing.
    #[error("Mcp-Name header is missing")]
    MissingName,
    /// The body is a JSON-RPC batch, which the headers cannot describe.
    #[error("request body is a batch")]
    Batch,
    /// The body carries no JSON-RPC call.
    #[error("request body is not a JSON-RPC call")]
    NotACall,
    /// A POST of protocol revision 2026-07-28 or later without
    /// `Mcp-Method`, which that revision requires on every request.
    #[error("Mcp-Method header is missing")]
    MissingMethod,
}

impl HeaderMismatch {
    /// Every refusal, for lookups by code.
    pub const ALL: [Self; 11] = [
        Self::Duplicate,
        Self::NameWithoutMethod,
        Self::InvalidValue,
        Self::BadEncoding,
        Self::NameNotTaken,
        Self::Method,
        Self::Name,
        Self::MissingName,
        Self::Batch,
        Self::NotACall,
        Self::MissingMethod,
    ];

    /// The refusal with this [`HeaderMismatch::code`] (decisions carry
    /// only the code).
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.code() == code)
    }

    /// Stable snake_case code, used as the decision detail.
    pub fn code(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate_header",
            Self::NameWithoutMethod => "name_without_method",
            Self::InvalidValue => "invalid_header_value",
            Self::BadEncoding => "bad_base64",
            Self::NameNotTaken => "name_not_taken",
            Self::Method => "method_mismatch",
            Self::Name => "name_mismatch",
            Self::MissingName => "missing_name",
            Self::Batch => "batch",
            Self::NotACall => "not_a_call",
            Self::MissingMethod => "missing_method",
        }
    }
}

/// Whether a header name spells `name` (any case, `_` for `-`: upstreams
/// that fold names the CGI way read `Mcp_Name` as `Mcp-Name`).
fn spells(header: &str, name: &str) -> bool {
    header.len() == name.len()
        && header
            .bytes()
            .zip(name.bytes())
            .all(|(h, n)| h.eq_ignore_ascii_case(&n) || (h == b'_' && n == b'-'))
}

/// The one value of a header, or `Duplicate` when it is sent twice (in
/// any spelling).
fn single<'a>(
    headers: &'a [(String, String)],
    name: &str,
) -> Result<Option<&'a str>, HeaderMismatch> {
    let mut values = headers
        .iter()
        .filter(|(k, _)| spells(k, name))
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(HeaderMismatch::Duplicate);
    }
    Ok(first)
}

/// Methods whose case variants are refused outright: a rule written for
/// `tools/call` must not be skipped by `Tools/Call` at the headers.
const KNOWN_METHODS: [&str; 11] = [
    "initialize",
    "ping",
    "tools/call",
    "tools/list",
    "resources/read",
    "resources/list",
    "resources/subscribe",
    "resources/unsubscribe",
    "resources/templates/list",
    "prompts/get",
    "prompts/list",
];

/// A method: visible ASCII only, no spaces (a comma-joined pair of
/// values holds one), and not a case variant of a known method (values
/// are case-sensitive, so it could never match the body's).
fn method_value(value: &str) -> Result<&str, HeaderMismatch> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(HeaderMismatch::InvalidValue);
    }
    let variant = KNOWN_METHODS
        .iter()
        .any(|known| *known != value && known.eq_ignore_ascii_case(value));
    if variant {
        return Err(HeaderMismatch::Method);
    }
    Ok(value)
}

/// A name: plain visible ASCII (inner spaces allowed), or the spec's
/// Base64 sentinel around the UTF-8 value.
fn name_value(value: &str) -> Result<String, HeaderMismatch> {
    let plain = value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
    if value.is_empty() || !plain || value.starts_with(' ') || value.ends_with(' ') {
        return Err(HeaderMismatch::InvalidValue);
    }
    let Some(encoded) = value
        .strip_prefix(SENTINEL_START)
        .and_then(|rest| rest.strip_suffix(SENTINEL_END))
    else {
        return Ok(value.to_owned());
    };
    let bytes = STANDARD
        .decode(encoded)
        .map_err(|_| HeaderMismatch::BadEncoding)?;
    let decoded = String::from_utf8(bytes).map_err(|_| HeaderMismatch::BadEncoding)?;
    if decoded.is_empty() {
        return Err(HeaderMismatch::BadEncoding);
    }
    Ok(decoded)
}

/// The MCP call the headers announce: `Ok(None)` when neither header is
/// present (an older revision: the body decides). Header names are
/// matched case-insensitively, values exactly (`Tools/Call` is not
/// `tools/call`).
pub fn read_headers(headers: &[(String, String)]) -> Result<Option<McpCall>, HeaderMismatch> {
    let method = single(headers, METHOD_HEADER)?;
    let name = single(headers, NAME_HEADER)?;
    let method = match (method, name) {
        (None, None) if requires_method_header(headers) => {
            return Err(HeaderMismatch::MissingMethod)
        }
        (None, None) => return Ok(None),
        (None, Some(_)) => return Err(HeaderMismatch::NameWithoutMethod),
        (Some(method), _) => method_value(method)?,
    };
    let Some(name) = name else {
        if SPEC_NAMED.contains(&method) {
            return Err(HeaderMismatch::MissingName);
        }
        return Ok(Some(McpCall::new(method)));
    };
    if TargetKind::of_method(method).is_none() {
        return Err(HeaderMismatch::NameNotTaken);
    }
    Ok(Some(McpCall::targeting(method, &name_value(name)?)))
}

/// The first protocol revision whose requests must carry `Mcp-Method`.
const HEADERS_REQUIRED_FROM: &str = "2026-07-28";

/// Whether the request is a POST of a protocol revision that requires
/// `Mcp-Method` (`MCP-Protocol-Version`, `YYYY-MM-DD`, on or after
/// 2026-07-28): such a request without it is refused, as its server
/// would, rather than decided on a body the headers never announced.
/// Older revisions, other methods and unreadable versions are not.
fn requires_method_header(headers: &[(String, String)]) -> bool {
    let post = headers.iter().any(|(k, v)| k == ":method" && v == "POST");
    let is_date = |v: &str| {
        v.len() == 10
            && v.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            })
    };
    post && headers
        .iter()
        .filter(|(k, _)| spells(k, "mcp-protocol-version"))
        .map(|(_, v)| v.trim())
        .any(|v| is_date(v) && v >= HEADERS_REQUIRED_FROM)
}

/// Checks that a body read by [`super::read_body`] makes exactly the call
/// the headers announced: one call (no batch), the same method, the same
/// name or URI (both absent counts as the same).
pub fn verify_body(announced: &McpCall, body: &BodyAttrs) -> Result<(), HeaderMismatch> {
    if body.batch {
        return Err(HeaderMismatch::Batch);
    }
    let [call] = body.mcp.as_slice() else {
        return Err(HeaderMismatch::NotACall);
    };
    if call.method != announced.method {
        return Err(HeaderMismatch::Method);
    }
    match (&announced.target, &call.target) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) if a == b => Ok(()),
        (None, Some(_)) => Err(HeaderMismatch::MissingName),
        _ => Err(HeaderMismatch::Name),
    }
}

#[cfg(test)]
mod tests;
