//! What a request's headers alone already settle, for a host that lets
//! headers go upstream before the body is read (an Istio `WasmPlugin`,
//! [`crate::Exchange::with_held_headers`]).
//!
//! The bundle's rules with every body condition (model, MCP call,
//! resource-template captures, prompt PII) taken as met by allow rules, and deny
//! rules that read the body left out: if this policy denies a request,
//! no body can make the real one allow it, so the request is refused at
//! its headers instead of sending them to the upstream undecided.

use mcp_guard_engine::bundle::{Bundle, RuleEffect};
use mcp_guard_engine::Policy;

/// The rules with their body conditions taken as met (allow) or left out
/// (deny), compiled without verifier, scanner, token exchange or pins;
/// the `resource` section stays, so a denial a scope could lift is
/// known as one. `None` when it does not
/// compile (the caller then decides at the body as before).
pub fn compile(bundle: &Bundle) -> Option<Policy> {
    let mut rules = bundle.rules.clone();
    rules.retain(|rule| rule.effect == RuleEffect::Allow || !reads_body(rule));
    for rule in &mut rules {
        let when = &mut rule.when;
        when.models.clear();
        when.prompt_pii.clear();
        when.mcp = None;
        when.relations.retain(|r| r.equals_capture.is_none());
    }
    let mut line = Bundle {
        rules,
        token_exchange: None,
        tool_pins: None,
        routes: None,
        ..bundle.clone()
    };
    line.identity.verify = None;
    line.pii.enabled = false;
    Policy::new(line).ok()
}

/// Whether a rule's match depends on the request body.
fn reads_body(rule: &mcp_guard_engine::bundle::Rule) -> bool {
    let when = &rule.when;
    !when.models.is_empty()
        || !when.prompt_pii.is_empty()
        || when.mcp.is_some()
        || when.relations.iter().any(|r| r.equals_capture.is_some())
}
