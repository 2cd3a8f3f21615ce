//! What the client gets when the flow says no: small JSON bodies with a
//! reason code and the request id, never token contents or internals.

use mcp_guard_engine::decision::push_json_string;
use mcp_guard_engine::{Decision, Reason};

use crate::host::{Host, Level};

/// The `error` word of a denial body, by status.
fn error_word(status: u32) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        503 => "unavailable",
        _ => "forbidden",
    }
}

/// The JSON body of a denial.
pub fn denial_body(decision: &Decision, request_id: &str) -> String {
    let status = decision.reason.deny_status();
    let mut body = String::with_capacity(128);
    body.push_str("{\"error\":");
    push_json_string(&mut body, error_word(status));
    body.push_str(",\"reason\":");
    push_json_string(&mut body, decision.reason.as_str());
    if status == 403 {
        body.push_str(",\"rule\":");
        push_json_string(&mut body, decision.rule_label());
    }
    if let Some(detail) = decision.detail {
        body.push_str(",\"detail\":");
        push_json_string(&mut body, detail);
    }
    body.push_str(",\"request_id\":");
    push_json_string(&mut body, request_id);
    body.push('}');
    body
}

/// Answers the request locally according to a deny decision;
/// `challenge` replaces the default `WWW-Authenticate` (resource-server
/// duties).
pub fn send_denial(
    host: &mut impl Host,
    decision: &Decision,
    request_id: &str,
    challenge: Option<&str>,
) {
    let status = decision.reason.deny_status();
    let body = denial_body(decision, request_id);
    let details = format!("mcp_{}", decision.reason.as_str());
    let mut headers = vec![
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ];
    match (challenge, decision.reason) {
        (Some(challenge), _) => headers.push(("www-authenticate", challenge)),
        // RFC 6750: no error code when no credentials were sent.
        (None, Reason::MissingToken) => {
            headers.push(("www-authenticate", "Bearer realm=\"mcp-guard\""))
        }
        (None, Reason::InvalidToken) => headers.push((
            "www-authenticate",
            "Bearer realm=\"mcp-guard\", error=\"invalid_token\"",
        )),
        (None, Reason::NoPolicy) => headers.push(("retry-after", "1")),
        _ => {}
    }
    if !host.send_reply(status, &details, &headers, body.as_bytes()) {
        host.log(Level::Warn, "local reply refused by host");
    }
}

fn refusal_json(reason: &str, request_id: &str) -> String {
    let mut body = String::from("{\"error\":\"blocked\",\"reason\":");
    push_json_string(&mut body, reason);
    body.push_str(",\"request_id\":");
    push_markup_safe(&mut body, request_id);
    body.push('}');
    body
}

/// A JSON string with `<`, `>` and `&` escaped too: a refusal that
/// replaces the body of an answer whose headers already left keeps the
/// upstream's content type (`text/html`), and the client's request id
/// must not become markup there.
fn push_markup_safe(out: &mut String, value: &str) {
    let mut json = String::with_capacity(value.len() + 2);
    push_json_string(&mut json, value);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c => out.push(c),
        }
    }
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
    fn denial_names_reason_and_detail() {
        let d = Decision::deny(Reason::InvalidBody).with_detail("duplicate_key");
        let body: serde_json::Value = serde_json::from_str(&denial_body(&d, "r1")).unwrap();
        assert_eq!(body["error"], "bad_request");
        assert_eq!(body["reason"], "invalid_body");
        assert_eq!(body["detail"], "duplicate_key");
    }
}
