//! The `:path` normal-form check.
//!
//! A path is accepted only when every normalisation a proxy or upstream
//! might apply (RFC 3986 dot-segment removal, slash merging, decoding of
//! unreserved characters, upper-casing of escapes) leaves it unchanged, and
//! when it holds nothing an upstream might read as a separator or a
//! parameter (`%2F`, `\`, `;`). Decisions, each chosen to fail closed:
//!
//! - Only origin form (`/…`) is accepted; `*` (asterisk form, `OPTIONS *`)
//!   is refused too: it names no resource a rule could match.
//! - Empty segments are refused, including a trailing slash (`/admin/`):
//!   many frameworks serve `/admin/` as `/admin` and `//admin` as `/admin`.
//! - `.` and `..` segments are refused; their escaped forms (`%2e`, `%2E.`)
//!   are refused as escaped unreserved characters.
//! - Escaped unreserved characters (`%61` for `a`) are refused: RFC 3986
//!   says they must be decoded, so the upstream may read them decoded.
//! - Lower-case hex in escapes (`%c3`) is refused: the normal form is upper
//!   case and a rule written with one case would miss the other.
//! - `%25` (an escaped `%`) is refused: an upstream that decodes twice
//!   would turn `%252e%252e` into `..`.
//! - `%2F`, `%5C`, escaped control bytes, malformed escapes, a raw `\`,
//!   `;` (path parameters, stripped by some servers), `#`, control bytes,
//!   non-ASCII bytes and any other byte outside RFC 3986 `pchar` are
//!   refused.
//! - The query string is left as it is (rules never look at it) but may
//!   hold only visible ASCII and no `#`.

/// A path already in normal form, split from its query string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NormalPath<'a> {
    /// The path, starting with `/`, without the query string.
    pub path: &'a str,
    /// The query string after the first `?` (without it), if any.
    pub query: Option<&'a str>,
}

/// Why a `:path` is not in normal form. [`PathError::code`] names it for
/// replies, access logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The path does not start with `/` (asterisk or absolute form, empty).
    #[error("path does not start with `/`")]
    NotOriginForm,
    /// `//` or a trailing `/`.
    #[error("path has an empty segment (`//` or a trailing `/`)")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("path has a `.` or `..` segment")]
    DotSegment,
    /// `%XX` naming a letter, digit, `-`, `.`, `_` or `~`.
    #[error("path escapes the unreserved character {0:?}")]
    EscapedUnreserved(char),
    /// `%2F` or `%5C` (any case).
    #[error("path escapes a slash or backslash")]
    EscapedSeparator,
    /// `%00`–`%1F` or `%7F`.
    #[error("path escapes a control byte")]
    EscapedControl,
    /// `%25`: an escaped `%`, the start of double encoding.
    #[error("path escapes `%` (double encoding)")]
    DoubleEncoding,
    /// `%` not followed by two hex digits.
    #[error("path has a malformed escape")]
    MalformedEscape,
    /// `%` followed by lower-case hex digits.
    #[error("path escape uses lower-case hex")]
    LowercaseEscape,
    /// A raw `\`.
    #[error("path has a backslash")]
    Backslash,
    /// A raw `;` (path parameters).
    #[error("path has a `;` parameter")]
    PathParameter,
    /// A raw `#`.
    #[error("path has a fragment (`#`)")]
    Fragment,
    /// A control byte or space.
    #[error("path has a control byte or space")]
    ControlByte,
    /// A byte above 0x7F.
    #[error("path has a non-ASCII byte")]
    NonAscii,
    /// Another byte RFC 3986 does not allow in a path segment.
    #[error("path has the character {0:?}, not allowed unescaped")]
    InvalidCharacter(char),
    /// A control byte, space, non-ASCII byte or `#` in the query string.
    #[error("query string has a control, space, non-ASCII or `#` byte")]
    InvalidQuery,
}

impl PathError {
    /// Stable snake_case code, e.g. for the detail of a 400 reply.
    pub fn code(self) -> &'static str {
        match self {
            PathError::NotOriginForm => "path_not_origin_form",
            PathError::EmptySegment => "path_empty_segment",
            PathError::DotSegment => "path_dot_segment",
            PathError::EscapedUnreserved(_) => "path_escaped_unreserved",
            PathError::EscapedSeparator => "path_escaped_slash",
            PathError::EscapedControl => "path_escaped_control",
            PathError::DoubleEncoding => "path_double_encoding",
            PathError::MalformedEscape => "path_malformed_escape",
            PathError::LowercaseEscape => "path_lowercase_escape",
            PathError::Backslash => "path_backslash",
            PathError::PathParameter => "path_parameter",
            PathError::Fragment => "path_fragment",
            PathError::ControlByte => "path_control_byte",
            PathError::NonAscii => "path_non_ascii",
            PathError::InvalidCharacter(_) => "path_invalid_character",
            PathError::InvalidQuery => "query_invalid_byte",
        }
    }
}

/// Splits `raw` (an HTTP `:path`) at the first `?` and checks that the path
/// is in normal form (see the module documentation for what is refused).
pub fn check_path(raw: &str) -> Result<NormalPath<'_>, PathError> {
    let (path, query) = match raw.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (raw, None),
    };
    let rest = path.strip_prefix('/').ok_or(PathError::NotOriginForm)?;
    if !rest.is_empty() {
        rest.split('/').try_for_each(check_segment)?;
    }
    if let Some(query) = query {
        check_query(query)?;
    }
    Ok(NormalPath { path, query })
}

/// Whether RFC 3986 calls `b` unreserved.
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// One segment between slashes.
fn check_segment(segment: &str) -> Result<(), PathError> {
    if segment.is_empty() {
        return Err(PathError::EmptySegment);
    }
    if segment == "." || segment == ".." {
        return Err(PathError::DotSegment);
    }
    let mut bytes = segment.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => check_escape(bytes.next(), bytes.next())?,
            b if is_unreserved(b) => {}
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@' => {}
            b';' => return Err(PathError::PathParameter),
            b'\\' => return Err(PathError::Backslash),
            b'#' => return Err(PathError::Fragment),
            0..=0x20 | 0x7F => return Err(PathError::ControlByte),
            0x80..=0xFF => return Err(PathError::NonAscii),
            other => return Err(PathError::InvalidCharacter(char::from(other))),
        }
    }
    Ok(())
}

/// The two bytes after a `%`.
fn check_escape(high: Option<u8>, low: Option<u8>) -> Result<(), PathError> {
    let (Some(high), Some(low)) = (high, low) else {
        return Err(PathError::MalformedEscape);
    };
    let (Some(h), Some(l)) = (hex_value(high), hex_value(low)) else {
        return Err(PathError::MalformedEscape);
    };
    let value = h << 4 | l;
    match value {
        b'/' | b'\\' => Err(PathError::EscapedSeparator),
        0..=0x1F | 0x7F => Err(PathError::EscapedControl),
        b'%' => Err(PathError::DoubleEncoding),
        v if is_unreserved(v) => Err(PathError::EscapedUnreserved(char::from(v))),
        _ if high.is_ascii_lowercase() || low.is_ascii_lowercase() => {
            Err(PathError::LowercaseEscape)
        }
        _ => Ok(()),
    }
}

/// The value of one hex digit, either case.
fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// The query string: visible ASCII except `#`.
fn check_query(query: &str) -> Result<(), PathError> {
    if query.bytes().all(|b| matches!(b, 0x21..=0x7E) && b != b'#') {
        Ok(())
    } else {
        Err(PathError::InvalidQuery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(raw: &str) -> &'static str {
        match check_path(raw) {
            Ok(_) => "ok",
            Err(e) => e.code(),
        }
    }

    #[test]
    fn normal_paths_are_accepted_and_split_from_the_query() {
        for (raw, path, query) in [
            ("/", "/", None),
            ("/v1/chat/completions", "/v1/chat/completions", None),
            ("/mcp?session=1&x=%2F", "/mcp", Some("session=1&x=%2F")),
            ("/a?", "/a", Some("")),
            ("/a?b?c", "/a", Some("b?c")),
            ("/files/caf%C3%A9", "/files/caf%C3%A9", None),
            ("/a%20b/%3B/%3F/%23", "/a%20b/%3B/%3F/%23", None),
            ("/x:y@z/!$&'()*+,=", "/x:y@z/!$&'()*+,=", None),
            ("/.well-known/x", "/.well-known/x", None),
            ("/..a/a../...", "/..a/a../...", None),
            ("/~user/_x-y", "/~user/_x-y", None),
        ] {
            assert_eq!(check_path(raw), Ok(NormalPath { path, query }), "{raw}");
        }
    }

    #[test]
    fn paths_not_in_normal_form_are_refused_with_a_reason() {
        for (raw, expected) in [
            ("", "path_not_origin_form"),
            ("*", "path_not_origin_form"),
            ("?a", "path_not_origin_form"),
            ("http://h/a", "path_not_origin_form"),
            ("a/b", "path_not_origin_form"),
            ("//admin", "path_empty_segment"),
            ("/admin/", "path_empty_segment"),
            ("/a//b", "path_empty_segment"),
            ("/admin/?x", "path_empty_segment"),
            ("/tenants/acme/../globex/x", "path_dot_segment"),
            ("/tenants/acme/./x", "path_dot_segment"),
            ("/..", "path_dot_segment"),
            ("/.", "path_dot_segment"),
            ("/a/..?x", "path_dot_segment"),
            ("/%2e%2e/admin", "path_escaped_unreserved"),
            ("/%2E%2E/admin", "path_escaped_unreserved"),
            ("/%2E./admin", "path_escaped_unreserved"),
            ("/.%2e/admin", "path_escaped_unreserved"),
            ("/%61dmin", "path_escaped_unreserved"),
            ("/%41dmin", "path_escaped_unreserved"),
            ("/adm%69n", "path_escaped_unreserved"),
            ("/a%5Fb", "path_escaped_unreserved"),
            ("/a%7eb", "path_escaped_unreserved"),
            ("/a%2Db", "path_escaped_unreserved"),
            ("/a%30", "path_escaped_unreserved"),
            ("/a%2fb", "path_escaped_slash"),
            ("/a%2Fb", "path_escaped_slash"),
            ("/a%5cb", "path_escaped_slash"),
            ("/a%5Cb", "path_escaped_slash"),
            ("/a%00", "path_escaped_control"),
            ("/a%0A", "path_escaped_control"),
            ("/a%0d%0a", "path_escaped_control"),
            ("/a%7F", "path_escaped_control"),
            ("/a%252e%252e", "path_double_encoding"),
            ("/a%25", "path_double_encoding"),
            ("/a%", "path_malformed_escape"),
            ("/a%4", "path_malformed_escape"),
            ("/a%zz", "path_malformed_escape"),
            ("/a%4g", "path_malformed_escape"),
            ("/a%%41", "path_malformed_escape"),
            ("/a%+1", "path_malformed_escape"),
            ("/a%-1", "path_malformed_escape"),
            ("/a%c3%a9", "path_lowercase_escape"),
            ("/a%C3%a9", "path_lowercase_escape"),
            ("/a%3b", "path_lowercase_escape"),
            ("/a\\..\\admin", "path_backslash"),
            ("/a\\b", "path_backslash"),
            ("\\admin", "path_not_origin_form"),
            ("/admin;x=1", "path_parameter"),
            ("/admin;/x", "path_parameter"),
            ("/..;/admin", "path_parameter"),
            ("/a#frag", "path_fragment"),
            ("/a#", "path_fragment"),
            ("/a b", "path_control_byte"),
            ("/a\tb", "path_control_byte"),
            ("/a\0", "path_control_byte"),
            ("/a\r\nX: y", "path_control_byte"),
            ("/a\x7f", "path_control_byte"),
            ("/caf\u{e9}", "path_non_ascii"),
            ("/\u{2e2e}", "path_non_ascii"),
            ("/\u{ff0e}\u{ff0e}/admin", "path_non_ascii"),
            ("/a\"b", "path_invalid_character"),
            ("/a<b>", "path_invalid_character"),
            ("/a{b}", "path_invalid_character"),
            ("/a|b", "path_invalid_character"),
            ("/a^b", "path_invalid_character"),
            ("/a`b", "path_invalid_character"),
            ("/a[b]", "path_invalid_character"),
            ("/a?b#c", "query_invalid_byte"),
            ("/a?b c", "query_invalid_byte"),
            ("/a?b\nc", "query_invalid_byte"),
            ("/a?\u{e9}", "query_invalid_byte"),
            ("/a?\0", "query_invalid_byte"),
        ] {
            assert_eq!(code(raw), expected, "{raw:?}");
        }
    }

    #[test]
    fn every_escape_is_classified_by_the_byte_it_names() {
        for value in 0u8..=255 {
            let upper = format!("{value:02X}");
            let lower = format!("{value:02x}");
            for hex in [&upper, &lower] {
                let raw = format!("/1%{hex}");
                let expected = match value {
                    b'/' | b'\\' => "path_escaped_slash",
                    0..=0x1F | 0x7F => "path_escaped_control",
                    b'%' => "path_double_encoding",
                    v if is_unreserved(v) => "path_escaped_unreserved",
                    _ if hex != &upper => "path_lowercase_escape",
                    _ => "ok",
                };
                assert_eq!(code(&raw), expected, "{raw}");
            }
        }
    }

    #[test]
    fn error_codes_are_distinct() {
        let all = [
            PathError::NotOriginForm,
            PathError::EmptySegment,
            PathError::DotSegment,
            PathError::EscapedUnreserved('a'),
            PathError::EscapedSeparator,
            PathError::EscapedControl,
            PathError::DoubleEncoding,
            PathError::MalformedEscape,
            PathError::LowercaseEscape,
            PathError::Backslash,
            PathError::PathParameter,
            PathError::Fragment,
            PathError::ControlByte,
            PathError::NonAscii,
            PathError::InvalidCharacter('"'),
            PathError::InvalidQuery,
        ];
        let mut codes: Vec<_> = all.iter().map(|e| e.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }
}
