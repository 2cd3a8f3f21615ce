//! Resource-server duties on the request path (MCP authorization):
//! answering RFC 9728 metadata requests locally, choosing the RFC 6750
//! challenge of a denial, and keeping the client's token from the
//! upstream. The documents and challenges were built when the policy
//! compiled ([`ProtectedResource`]); nothing here formats per request.

use mcp_guard_engine::resource::{ProtectedResource, WELL_KNOWN};
use mcp_guard_engine::{Claims, Decision, Effect, McpCall, Policy, Reason, RequestAttrs};

use crate::edges::check_request_line;
use crate::host::{Host, Level, Side};

/// Answers a request for the protected-resource metadata, when this is
/// one: `GET` / `HEAD` get the document (200), other methods 405. Only a
/// request line in normal form can name the well-known path, so dot
/// segments and encodings are left to the normal checks (refused).
/// Returns whether the request was answered.
pub fn answer_metadata(
    host: &mut impl Host,
    policy: &Policy,
    method: &str,
    path: &str,
    authority: &str,
) -> bool {
    let Some(resource) = policy.resource() else {
        return false;
    };
    // The checks below never rewrite a path, so only a path spelled with
    // the well-known prefix can be one; every other request pays only
    // this comparison.
    if !path.starts_with(WELL_KNOWN) {
        return false;
    }
    let Ok(checked) = check_request_line(path, authority) else {
        return false;
    };
    if !resource.is_well_known(&checked.path) {
        return false;
    }
    let sent = match method {
        "GET" | "HEAD" => host.send_reply(
            200,
            "mcp_resource_metadata",
            &[
                ("content-type", "application/json"),
                ("cache-control", "max-age=300"),
                // Public metadata: browser-based MCP clients read it
                // cross-origin.
                ("access-control-allow-origin", "*"),
            ],
            resource.document(),
        ),
        _ => host.send_reply(
            405,
            "mcp_resource_metadata_method",
            &[
                ("allow", "GET, HEAD"),
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
            ],
            b"{\"error\":\"method_not_allowed\"}",
        ),
    };
    if !sent {
        host.log(Level::Warn, "metadata reply refused by host; resetting");
        host.reset();
    }
    true
}

/// The `WWW-Authenticate` value of a denial under a `resource` section:
/// `resource_metadata` on every 401, `error="invalid_token"` when a token
/// was sent but unusable, the stored scope challenge on 403
/// `insufficient_scope`. `None` keeps the default challenge.
pub fn challenge<'a>(
    resource: Option<&'a ProtectedResource>,
    decision: &Decision,
    scope: Option<&'a str>,
) -> Option<&'a str> {
    let resource = resource?;
    match decision.reason {
        Reason::MissingToken => Some(resource.challenge_missing()),
        Reason::InvalidToken => Some(resource.challenge_invalid()),
        Reason::InsufficientScope => scope,
        _ => None,
    }
}

/// Turns a default denial into 403 `insufficient_scope` when an allow
/// rule would have matched but for its scope conditions; returns the
/// challenge to send. Only denials pay for this.
pub fn note_insufficient_scope(
    policy: &Policy,
    decision: &mut Decision,
    claims: &Claims,
    request: &RequestAttrs<'_>,
    calls: &[McpCall],
) -> Option<String> {
    if decision.effect != Effect::Deny || decision.reason != Reason::DefaultDeny {
        return None;
    }
    let challenge = policy.scope_challenge(decision, claims, request, calls)?;
    decision.reason = Reason::InsufficientScope;
    Some(challenge.to_owned())
}

/// RFC 8707 audience binding: under a `resource` section a token must
/// name this server (or one of the bundle's `audiences`) in `aud`.
pub fn check_audience(policy: &Policy, claims: &Claims) -> Result<(), Decision> {
    match policy.resource() {
        Some(resource) if !resource.audience_holds(claims) => {
            Err(Decision::deny(Reason::InvalidToken).with_detail("audience"))
        }
        _ => Ok(()),
    }
}

/// No token passthrough: the one place an allowed request loses the
/// client's credentials (`authorization`, and the header the bundle
/// verifies tokens from) before it goes upstream, unless the bundle sets
/// `identity.forward_authorization`. Whatever credential the upstream
/// should get (token exchange) is set after this.
pub fn remove_client_token(host: &mut impl Host, policy: &Policy) {
    let identity = &policy.bundle().identity;
    if identity.forward_authorization {
        return;
    }
    host.remove_header(Side::Request, "authorization");
    if let Some(verify) = &identity.verify {
        if !verify.header.eq_ignore_ascii_case("authorization") {
            host.remove_header(Side::Request, &verify.header);
        }
    }
}
