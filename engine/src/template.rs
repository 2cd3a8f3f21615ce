//! Path templates with captures: `/tenants/{tenant}/models/{model}`.
//!
//! Matching is by segment, linear in the path length, allocation-free: the
//! captures are returned as slices of the request path.

use thiserror::Error;

/// Why a template is not valid.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TemplateError {
    /// Templates are absolute.
    #[error("must start with `/`")]
    NotAbsolute,
    /// `{}` or a name with characters other than letters, digits and `_`.
    #[error("segment `{0}`: a capture is `{{name}}` with letters, digits or `_`")]
    BadCapture(String),
    /// The same capture name twice.
    #[error("capture `{0}` appears twice")]
    DuplicateCapture(String),
    /// `{rest*}` anywhere but last.
    #[error("`{{{0}*}}` must be the last segment")]
    RestNotLast(String),
}

/// One template segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Segment {
    Literal(String),
    Capture(String),
    Rest(String),
}

/// A parsed path template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    segments: Vec<Segment>,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl PathTemplate {
    /// Parses a template such as `/tenants/{tenant}/files/{path*}`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let rest = text.strip_prefix('/').ok_or(TemplateError::NotAbsolute)?;
        let mut segments = Vec::new();
        let mut names = Vec::new();
        let parts: Vec<&str> = rest.split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(inner) => {
                    let (name, is_rest) = match inner.strip_suffix('*') {
                        Some(name) => (name, true),
                        None => (inner, false),
                    };
                    if !valid_name(name) {
                        return Err(TemplateError::BadCapture((*part).to_string()));
                    }
                    if names.contains(&name) {
                        return Err(TemplateError::DuplicateCapture(name.to_string()));
                    }
                    names.push(name);
                    if is_rest {
                        if i + 1 != parts.len() {
                            return Err(TemplateError::RestNotLast(name.to_string()));
                        }
                        Segment::Rest(name.to_string())
                    } else {
                        Segment::Capture(name.to_string())
                    }
                }
                None if part.contains(['{', '}']) => {
                    return Err(TemplateError::BadCapture((*part).to_string()))
                }
                None => Segment::Literal((*part).to_string()),
            };
            segments.push(segment);
        }
        Ok(Self { segments })
    }

    /// Whether the template captures `name`.
    pub fn has_capture(&self, name: &str) -> bool {
        self.segments
            .iter()
            .any(|s| matches!(s, Segment::Capture(n) | Segment::Rest(n) if n == name))
    }

    /// The first segment when it is a literal: an index key.
    pub fn literal_first_segment(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(l)) if self.segments.len() > 1 || !l.is_empty() => Some(l),
            _ => None,
        }
    }

    /// Matches `path`; on success returns the value of capture `want`
    /// (or `Some("")` when `want` is `None`), else `None`. Captured
    /// segments are never empty.
    pub fn matches<'p>(&self, path: &'p str, want: Option<&str>) -> Option<&'p str> {
        match_segments(&self.segments, path.strip_prefix('/')?, want)
    }
}

/// Matches `/`-separated `rest` against template segments (literal, one
/// non-empty segment, a final rest); on success the value of capture
/// `want` (or `Some("")`). Shared by path and resource URI templates.
pub(crate) fn match_segments<'p>(
    segments: &[Segment],
    rest: &'p str,
    want: Option<&str>,
) -> Option<&'p str> {
    let mut rest = rest;
    let mut found: &'p str = "";
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        if let Segment::Rest(name) = segment {
            if rest.is_empty() {
                return None;
            }
            if want == Some(name.as_str()) {
                found = rest;
            }
            return Some(found);
        }
        let (part, tail) = match rest.split_once('/') {
            Some((p, t)) => (p, Some(t)),
            None => (rest, None),
        };
        match segment {
            Segment::Literal(l) if l != part => return None,
            Segment::Capture(_) if part.is_empty() => return None,
            Segment::Capture(name) if want == Some(name.as_str()) => found = part,
            _ => {}
        }
        match (tail, last) {
            (Some(t), false) => rest = t,
            (None, true) => return Some(found),
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_segments() {
        let t = PathTemplate::parse("/tenants/{tenant}/models/{model}").unwrap();
        assert_eq!(
            t.matches("/tenants/acme/models/gpt", Some("tenant")),
            Some("acme")
        );
        assert_eq!(
            t.matches("/tenants/acme/models/gpt", Some("model")),
            Some("gpt")
        );
        assert_eq!(t.matches("/tenants/acme/models/gpt", None), Some(""));
        for miss in [
            "/tenants//models/gpt",
            "/tenants/acme/models",
            "/tenants/acme/models/gpt/x",
            "/tenant/acme/models/gpt",
            "tenants/acme/models/gpt",
            "/",
        ] {
            assert_eq!(t.matches(miss, None), None, "{miss}");
        }
        assert_eq!(t.literal_first_segment(), Some("tenants"));
    }

    #[test]
    fn rest_captures_the_remainder() {
        let t = PathTemplate::parse("/files/{path*}").unwrap();
        assert_eq!(t.matches("/files/a/b/c", Some("path")), Some("a/b/c"));
        assert_eq!(t.matches("/files/", None), None);
        assert_eq!(t.matches("/files", None), None);
    }

    #[test]
    fn bad_templates_are_rejected() {
        assert_eq!(
            PathTemplate::parse("x/{a}"),
            Err(TemplateError::NotAbsolute)
        );
        assert!(matches!(
            PathTemplate::parse("/a/{}"),
            Err(TemplateError::BadCapture(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/a/{b-c}"),
            Err(TemplateError::BadCapture(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/a/x{b}"),
            Err(TemplateError::BadCapture(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/{a}/{a}"),
            Err(TemplateError::DuplicateCapture(_))
        ));
        assert!(matches!(
            PathTemplate::parse("/{a*}/b"),
            Err(TemplateError::RestNotLast(_))
        ));
    }
}
