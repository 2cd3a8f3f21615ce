//! Checks before timing: a variant is only measured once its answers are
//! the right ones (status, bytes, redactions), so a misconfigured filter
//! that answers 403 fast, or passes PII through, fails the run loudly.

use mcp_guard_engine::pii::{PiiConfig, Scanner};

use super::load::{self, Request};
use super::payloads::{self, MARKERS, PII_VALUES, PROMPT_PII, SSE_PII_VALUES};
use super::upstream::StreamUpstream;
use super::variants::{Answer, Variant, MCP_FORBIDDEN_TOOL, MCP_TOOL};

/// The engine's own scanner must find exactly the 10 planted values in the
/// 4 KB answer; otherwise the redaction counts below would mean nothing.
pub fn corpus() -> Result<(), String> {
    let scanner = Scanner::new(&PiiConfig::default()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let report = scanner.scrub_json(payloads::pii_json().as_bytes(), &mut out);
    if report.total() != PII_VALUES.len() {
        return Err(format!(
            "the scanner finds {} PII values in the 4 KB answer, expected {}",
            report.total(),
            PII_VALUES.len()
        ));
    }
    Ok(())
}

fn count_markers(body: &str) -> usize {
    MARKERS.iter().map(|m| body.matches(m).count()).sum()
}

/// A scrubbed body: `expected` markers and none of `values` (nor their
/// first half, which would show a value split across events survived).
fn check_scrubbed(body: &str, expected: usize, values: &[&str]) -> Result<(), String> {
    let markers = count_markers(body);
    if markers != expected {
        return Err(format!(
            "{markers} redaction markers, expected {expected}: {body}"
        ));
    }
    for v in values {
        let half = v.get(..v.len() / 2).unwrap_or(v);
        if body.contains(v) || body.contains(half) {
            return Err(format!("PII {v:?} (or its start) passed through: {body}"));
        }
    }
    Ok(())
}

/// Sends the [`payloads::mcp_attacks`] bodies; returns each one's status
/// (200 = the upstream got it). mcp-guard must refuse every one; what
/// Envoy's own MCP filter + RBAC does is reported, not asserted.
pub fn mcp_attacks(v: &Variant, port: u16, req: &Request) -> Result<Vec<(String, u16)>, String> {
    let mut seen = Vec::new();
    for (name, body) in payloads::mcp_attacks(MCP_TOOL, MCP_FORBIDDEN_TOOL) {
        let attack = Request {
            body,
            ..req.clone()
        };
        let msg = load::exchange(port, &attack)?;
        if v.guard.is_some() && msg.status() == 200 {
            return Err(format!(
                "check of {} failed: attack \"{name}\" reached the upstream",
                v.name
            ));
        }
        seen.push((name.to_string(), msg.status()));
    }
    Ok(seen)
}

/// Checks one variant's answers through Envoy on `port`.
pub fn variant(
    v: &Variant,
    port: u16,
    req: &Request,
    stream_req: &Request,
    upstream: &StreamUpstream,
) -> Result<(), String> {
    let fail = |e: String| format!("check of {} failed: {e}", v.name);
    let msg = load::exchange(port, req).map_err(fail)?;
    let body = String::from_utf8_lossy(&msg.body).into_owned();
    if msg.status() != 200 {
        return Err(fail(format!("status {}: {body}", msg.status())));
    }
    let original = match v.answer {
        Answer::Small => payloads::small_json(),
        Answer::Pii => payloads::pii_json(),
        Answer::Sse => payloads::sse_answer(),
        Answer::Mcp => payloads::mcp_result(),
    };
    match (v.guard.is_some(), v.answer) {
        (true, Answer::Pii) => {
            check_scrubbed(&body, PII_VALUES.len(), &PII_VALUES).map_err(fail)?;
            serde_json::from_str::<serde_json::Value>(&body)
                .map_err(|e| fail(format!("scrubbed JSON is invalid: {e}")))?;
        }
        (true, Answer::Sse) => {
            check_scrubbed(&body, SSE_PII_VALUES.len(), &SSE_PII_VALUES).map_err(fail)?;
            if !body.ends_with("data: [DONE]\n\n") {
                return Err(fail(format!("stream cut short: {body}")));
            }
        }
        _ => {
            if msg.body != original.as_bytes() {
                return Err(fail(format!(
                    "{} body bytes, expected the upstream's {} unchanged: {body}",
                    msg.body.len(),
                    original.len()
                )));
            }
        }
    }
    if v.answer == Answer::Mcp && (v.guard.is_some() || v.envoy_mcp) {
        // The tool policy is enforced: another tool is refused.
        let other = Request {
            body: payloads::mcp_call(MCP_FORBIDDEN_TOOL),
            ..req.clone()
        };
        let msg = load::exchange(port, &other).map_err(fail)?;
        if msg.status() != 403 {
            return Err(fail(format!(
                "a call of {MCP_FORBIDDEN_TOOL} answered {}: {}",
                msg.status(),
                String::from_utf8_lossy(&msg.body)
            )));
        }
    }
    if let Some(g) = &v.guard {
        // The bundle is enforced: a path no rule allows is refused.
        let denied = Request {
            path: "/not-allowed".into(),
            ..req.clone()
        };
        let msg = load::exchange(port, &denied).map_err(fail)?;
        let text = String::from_utf8_lossy(&msg.body);
        if msg.status() != 403 || !text.contains("default_deny") {
            return Err(fail(format!(
                "unlisted path answered {}: {text}",
                msg.status()
            )));
        }
        if g.scrub_requests {
            // The prompt reaches the upstream scrubbed.
            let echo = Request {
                path: "/stream/echo".into(),
                ..req.clone()
            };
            let msg = load::exchange(port, &echo).map_err(fail)?;
            let seen = upstream
                .last_echo
                .lock()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            if msg.status() != 200 || !seen.contains("[EMAIL]") || seen.contains(PROMPT_PII) {
                return Err(fail(format!(
                    "status {}; the upstream received the prompt {seen:?}",
                    msg.status()
                )));
            }
        }
    }
    if v.ttfb {
        let msg = load::exchange(port, stream_req).map_err(fail)?;
        if msg.status() != 200 || msg.body != payloads::stream_events().concat().as_bytes() {
            return Err(fail(format!(
                "slow stream: status {}, body {:?}",
                msg.status(),
                String::from_utf8_lossy(&msg.body)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_pii_is_what_the_scanner_finds() {
        corpus().unwrap();
    }

    #[test]
    fn scrub_check_counts_markers_and_catches_leaks() {
        assert!(check_scrubbed("[EMAIL] and [PHONE]", 2, &["a@b.example"]).is_ok());
        assert!(check_scrubbed("[EMAIL] only", 2, &[]).is_err());
        assert!(
            check_scrubbed("[EMAIL] [PHONE] jane.doe@exa", 2, &["jane.doe@example.com"]).is_err()
        );
    }
}
