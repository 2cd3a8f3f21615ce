//! Deciding MCP requests at their `Mcp-Method` / `Mcp-Name` headers
//! (MCP 2026-07-28), and answering disagreements the way the spec asks.
//!
//! When the policy reads nothing from the body but the MCP call, and the
//! request announces that call in its headers, the rules decide on the
//! headers: a denial is answered before any body byte is read. An allowed
//! request's headers go upstream, but its body is held to its end and
//! must make exactly the announced call; otherwise the request is
//! answered with 400 and JSON-RPC error -32020 (`HeaderMismatch`), and
//! Envoy resets the upstream stream that never got the body.
//! Without the headers (older revisions) nothing changes: the body
//! decides.

use mcp_guard_engine::decision::push_json_string;
use mcp_guard_engine::mcp::headers::HEADER_MISMATCH_CODE;
use mcp_guard_engine::mcp::{read_headers, HeaderMismatch};
use mcp_guard_engine::resource_template::check_uri;
use mcp_guard_engine::{Decision, McpCall, Policy, TargetKind};
use serde_json::Value;

use crate::host::{Host, Level};

/// What the request's MCP headers mean for this exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPlan {
    /// No MCP headers, or a policy that reads no MCP call: as before.
    Absent,
    /// Decide now on the announced call; hold the body to verify it.
    DecideNow(McpCall),
    /// The rules need the body anyway: decide at its end, after checking
    /// it makes the announced call.
    VerifyAtBody(McpCall),
    /// The headers are ambiguous or malformed: refuse now.
    Refuse(HeaderMismatch),
    /// A compressed body cannot be compared with the headers: refuse
    /// rather than guess what it says.
    Compressed,
}

/// Plans the request side from its headers. `body_read_anyway` is set
/// when something besides the rules reads the body (prompt scrubbing).
pub fn plan(policy: &Policy, headers: &[(String, String)], body_read_anyway: bool) -> HeaderPlan {
    let needs = policy.body_needs();
    if !needs.mcp {
        return HeaderPlan::Absent;
    }
    let call = match read_headers(headers) {
        Ok(Some(call)) => call,
        Ok(None) => return HeaderPlan::Absent,
        Err(refusal) => return HeaderPlan::Refuse(refusal),
    };
    let compressed = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
        .any(|(_, v)| !v.trim().eq_ignore_ascii_case("identity"));
    if compressed {
        return HeaderPlan::Compressed;
    }
    // A resource URI outside canonical form is refused by the body read;
    // deciding on it here would let a glob match what it resolves past.
    let odd_uri = policy.canonical_uris()
        && call.target_kind() == Some(TargetKind::Resource)
        && call
            .target
            .as_deref()
            .is_some_and(|u| check_uri(u).is_err());
    if needs.only_mcp() && !body_read_anyway && !odd_uri {
        HeaderPlan::DecideNow(call)
    } else {
        HeaderPlan::VerifyAtBody(call)
    }
}

/// The JSON-RPC error body of a `header_mismatch` refusal, in the spec's
/// shape; the request's `id` when the body was readable. The message
/// names which check failed, never the header or body values.
pub fn mismatch_body(decision: &Decision, id: Option<&Value>, request_id: &str) -> String {
    let detail = decision.detail.unwrap_or("header_mismatch");
    let what =
        HeaderMismatch::from_code(detail).map_or_else(|| detail.to_owned(), |m| m.to_string());
    let mut body = String::with_capacity(192);
    body.push_str("{\"jsonrpc\":\"2.0\"");
    if let Some(id) = id.filter(|id| !id.is_null()) {
        body.push_str(",\"id\":");
        body.push_str(&id.to_string());
    }
    body.push_str(",\"error\":{\"code\":");
    body.push_str(&HEADER_MISMATCH_CODE.to_string());
    body.push_str(",\"message\":");
    push_json_string(&mut body, &format!("Header mismatch: {what}"));
    body.push_str(",\"data\":{\"reason\":\"header_mismatch\",\"detail\":");
    push_json_string(&mut body, detail);
    body.push_str(",\"request_id\":");
    push_json_string(&mut body, request_id);
    body.push_str("}}}");
    body
}

/// Answers a `header_mismatch` denial: 400 with the JSON-RPC error.
pub fn send_mismatch(
    host: &mut impl Host,
    decision: &Decision,
    id: Option<&Value>,
    request_id: &str,
) {
    let body = mismatch_body(decision, id, request_id);
    let headers = [
        ("content-type", "application/json"),
        ("cache-control", "no-store"),
    ];
    let status = decision.reason.deny_status();
    if !host.send_reply(status, "mcp_header_mismatch", &headers, body.as_bytes()) {
        host.log(Level::Warn, "local reply refused by host");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use mcp_guard_engine::Reason;
    use serde_json::json;

    #[test]
    fn mismatch_body_has_the_spec_shape() {
        let d = Decision::deny(Reason::HeaderMismatch).with_detail("name_mismatch");
        let id = json!("a\"b");
        let body: Value = serde_json::from_str(&mismatch_body(&d, Some(&id), "r1")).unwrap();
        assert_eq!(body["jsonrpc"], "2.0");
        assert_eq!(body["id"], "a\"b");
        assert_eq!(body["error"]["code"], -32020);
        assert!(body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Header mismatch: Mcp-Name"));
        assert_eq!(body["error"]["data"]["detail"], "name_mismatch");
        assert_eq!(body["error"]["data"]["request_id"], "r1");
        let no_id: Value =
            serde_json::from_str(&mismatch_body(&d, Some(&Value::Null), "r1")).unwrap();
        assert!(no_id.get("id").is_none());
    }
}
