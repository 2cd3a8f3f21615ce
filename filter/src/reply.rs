//! Local replies for denied requests: small JSON bodies with a reason code
//! and the request id, never token contents or internals.

use mcp_guard_engine::decision::push_json_string;
use mcp_guard_engine::{Decision, Reason};

use crate::host;

/// Answers the request locally according to a deny decision.
pub fn send_denial(decision: &Decision, request_id: &str) {
    let status = decision.reason.deny_status();
    let error = match status {
        400 => "bad_request",
        401 => "unauthorized",
        413 => "payload_too_large",
        503 => "unavailable",
        _ => "forbidden",
    };
    let mut body = String::with_capacity(128);
    body.push_str("{\"error\":");
    push_json_string(&mut body, error);
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

    let details = format!("mcp_{}", decision.reason.as_str());
    let mut headers = vec![
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ];
    match decision.reason {
        // RFC 6750: no error code when no credentials were sent.
        Reason::MissingToken => headers.push(("www-authenticate", "Bearer realm=\"mcp-guard\"")),
        Reason::InvalidToken => headers.push((
            "www-authenticate",
            "Bearer realm=\"mcp-guard\", error=\"invalid_token\"",
        )),
        Reason::NoPolicy => headers.push(("retry-after", "1")),
        _ => {}
    }
    if let Err(status) = host::send_local_response(status, &details, &headers, body.as_bytes()) {
        let _ = proxy_wasm::hostcalls::log(
            proxy_wasm::types::LogLevel::Error,
            &format!("local reply refused by host (status {status})"),
        );
    }
}
