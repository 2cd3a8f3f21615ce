//! Body scrubbing state for one direction of an exchange, and the bodies
//! sent when a body is refused.

use mcp_guard_engine::decision::push_json_string;
use std::sync::Arc;

use mcp_guard_engine::pii::{ContentMode, PiiReport, Scanner, StreamScrubber};

/// How a body is being processed.
pub enum BodyScrub {
    /// Passed through untouched (denied, not text, exempt, or nothing to do).
    Off,
    /// Held until the end, then list-filtered and scrubbed whole.
    Buffered(ContentMode),
    /// Scrubbed as it passes with a bounded hold-back (event streams, or
    /// buffered bodies that outgrew the limit with `on_overflow: stream`).
    Streaming(Box<StreamScrubber>),
    /// Refused: whatever still arrives is dropped.
    Blocked,
}

/// Scrubs a whole body in the mode its content type calls for.
pub fn scrub_whole(
    scanner: &Arc<Scanner>,
    mode: ContentMode,
    body: &[u8],
    out: &mut Vec<u8>,
) -> PiiReport {
    out.clear();
    match mode {
        ContentMode::Json => scanner.scrub_json(body, out),
        ContentMode::Text => scanner.scrub_text(body, out),
        ContentMode::Sse => {
            // Shares the compiled scanner rather than copying its automata.
            let mut stream = StreamScrubber::new(Arc::clone(scanner), ContentMode::Sse);
            stream.push(body, out);
            stream.finish(out);
            stream.report()
        }
    }
}

/// Whether a content type is text the scanner can read.
pub fn is_textual(content_type: &str) -> bool {
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    mime.starts_with("text/")
        || mime == "application/json"
        || mime.ends_with("+json")
        || mime == "application/x-ndjson"
        || mime == "application/ndjson"
        || mime == "application/jsonl"
        || mime == "application/xml"
        || mime.ends_with("+xml")
}

fn refusal_json(reason: &str, request_id: &str) -> String {
    let mut body = String::from("{\"error\":\"blocked\",\"reason\":");
    push_json_string(&mut body, reason);
    body.push_str(",\"request_id\":");
    push_json_string(&mut body, request_id);
    body.push('}');
    body
}

/// The JSON body that replaces a refused buffered response.
pub fn refusal_body(reason: &str, request_id: &str) -> Vec<u8> {
    refusal_json(reason, request_id).into_bytes()
}

/// The SSE event that ends a refused stream, so clients see an explicit
/// error rather than a silent truncation.
pub fn refusal_event(reason: &str, request_id: &str) -> Vec<u8> {
    format!(
        "event: error\ndata: {}\n\n",
        refusal_json(reason, request_id)
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_valid_json_and_sse() {
        let body: serde_json::Value =
            serde_json::from_slice(&refusal_body("pii_blocked", "r\"1")).unwrap();
        assert_eq!(body["request_id"], "r\"1");
        let event = String::from_utf8(refusal_event("pii_blocked", "r1")).unwrap();
        assert!(event.starts_with("event: error\ndata: {") && event.ends_with("}\n\n"));
    }

    #[test]
    fn textual_types() {
        assert!(is_textual("application/json; charset=utf-8"));
        assert!(is_textual("text/event-stream"));
        assert!(is_textual("application/problem+json"));
        assert!(!is_textual("image/png"));
        assert!(!is_textual("application/octet-stream"));
    }
}
