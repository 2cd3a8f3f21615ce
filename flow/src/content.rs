//! What a body's content type lets the flow do with it.
//!
//! The scanner reads text. A body it cannot read is refused unless the
//! bundle lists its type as known safe (`pii.safe_content_types`): an
//! unknown, missing or generic type is sniffed from the bytes rather than
//! trusted, so labelling a JSON answer `application/octet-stream` (or
//! sending none) does not get it past the scanner.

use mcp_guard_engine::pii::ContentMode;

/// How a body of a given type is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentClass {
    /// Text the scanner reads in this mode (buffered).
    Text(ContentMode),
    /// `text/event-stream`: scrubbed as it streams.
    EventStream,
    /// No type, or a generic one: decided from the bytes.
    Sniff,
    /// A type the scanner cannot read (images, archives, gRPC...).
    Opaque,
}

/// The media type without parameters, lower case.
pub fn mime_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Types that say nothing about the bytes.
fn is_generic(mime: &str) -> bool {
    matches!(
        mime,
        "" | "application/octet-stream"
            | "binary/octet-stream"
            | "application/unknown"
            | "application/binary"
            | "unknown/unknown"
            | "*/*"
            | "text/plain"
    ) || !mime.contains('/')
}

/// Classifies a `content-type` header value (absent = `None`).
pub fn classify(content_type: Option<&str>) -> ContentClass {
    let mime = mime_of(content_type.unwrap_or_default());
    if mime == "text/event-stream" {
        return ContentClass::EventStream;
    }
    if is_generic(&mime) {
        // text/plain is sniffed too: a JSON answer labelled text/plain is
        // scanned as JSON (string values), which keeps it valid.
        return ContentClass::Sniff;
    }
    let json = mime == "application/json"
        || mime.ends_with("+json")
        || mime == "application/x-ndjson"
        || mime == "application/ndjson"
        || mime == "application/jsonl"
        || mime == "application/json-seq";
    if json {
        return ContentClass::Text(ContentMode::Json);
    }
    let text = mime.starts_with("text/")
        || mime == "application/xml"
        || mime.ends_with("+xml")
        || mime == "application/x-www-form-urlencoded"
        || mime == "application/javascript"
        || mime == "application/ecmascript"
        || mime == "application/graphql"
        || mime == "application/yaml"
        || mime == "application/x-yaml"
        || mime == "application/toml"
        || mime == "application/csv"
        || mime == "application/sql";
    if text {
        return ContentClass::Text(ContentMode::Text);
    }
    ContentClass::Opaque
}

/// Whether a bundle's safe list covers a type: exact media types or
/// `type/*` wildcards, compared without parameters.
pub fn is_listed_safe(safe: &[String], content_type: Option<&str>) -> bool {
    let mime = mime_of(content_type.unwrap_or_default());
    if mime.is_empty() {
        return false;
    }
    safe.iter().any(|entry| {
        let entry = entry.trim().to_ascii_lowercase();
        match entry.strip_suffix("/*") {
            Some(major) => mime.split_once('/').is_some_and(|(m, _)| m == major),
            None => entry == mime,
        }
    })
}

/// What sniffing a whole body found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// Strict JSON: scanned in JSON mode so it stays valid.
    Json,
    /// Text (any byte encoding the detectors read: they match ASCII).
    Text,
    /// Binary: NUL bytes (also how UTF-16 text looks), or mostly control
    /// bytes. The scanner would miss values in it: refuse.
    Binary,
}

/// Decides what a body of unknown type is from its bytes.
pub fn sniff(body: &[u8]) -> Sniffed {
    if body.contains(&0) {
        return Sniffed::Binary;
    }
    let control = body
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
        .count();
    // A few stray control bytes occur in text; a binary format is full
    // of them.
    if control * 32 > body.len() {
        return Sniffed::Binary;
    }
    let trimmed = body.trim_ascii_start();
    let looks_json = matches!(trimmed.first(), Some(b'{' | b'['));
    if looks_json && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
        return Sniffed::Json;
    }
    Sniffed::Text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert_eq!(
            classify(Some("application/json; charset=utf-8")),
            ContentClass::Text(ContentMode::Json)
        );
        assert_eq!(
            classify(Some("Text/Event-Stream")),
            ContentClass::EventStream
        );
        assert_eq!(classify(None), ContentClass::Sniff);
        assert_eq!(classify(Some("")), ContentClass::Sniff);
        assert_eq!(
            classify(Some("application/octet-stream")),
            ContentClass::Sniff
        );
        assert_eq!(classify(Some("garbage")), ContentClass::Sniff);
        assert_eq!(classify(Some("text/plain")), ContentClass::Sniff);
        assert_eq!(classify(Some("image/png")), ContentClass::Opaque);
        assert_eq!(classify(Some("application/grpc")), ContentClass::Opaque);
        assert_eq!(
            classify(Some("application/problem+json")),
            ContentClass::Text(ContentMode::Json)
        );
        assert_eq!(
            classify(Some("text/html")),
            ContentClass::Text(ContentMode::Text)
        );
    }

    #[test]
    fn safe_list() {
        let safe = vec!["image/*".to_string(), "application/pdf".to_string()];
        assert!(is_listed_safe(&safe, Some("image/png")));
        assert!(is_listed_safe(&safe, Some("Application/PDF; x=1")));
        assert!(!is_listed_safe(&safe, Some("application/pdfx")));
        assert!(!is_listed_safe(&safe, Some("imagex/png")));
        assert!(!is_listed_safe(&safe, None));
    }

    #[test]
    fn sniffing() {
        assert_eq!(sniff(b" {\"a\":1}"), Sniffed::Json);
        assert_eq!(sniff(b"{\"a\":"), Sniffed::Text);
        assert_eq!(sniff(b"hello jane@example.com"), Sniffed::Text);
        assert_eq!(sniff("h\0e\0l\0l\0o\0".as_bytes()), Sniffed::Binary);
        assert_eq!(
            sniff(&[0x89, b'P', b'N', b'G', 1, 2, 3, 4]),
            Sniffed::Binary
        );
        assert_eq!(sniff(b""), Sniffed::Text);
    }
}
