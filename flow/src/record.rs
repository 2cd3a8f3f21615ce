//! The decision record SREs read in the access log
//! (`%FILTER_STATE(wasm.mcp_decision:PLAIN)%`).

use mcp_guard_engine::decision::push_json_string;
use mcp_guard_engine::pii::PiiReport;
use mcp_guard_engine::Decision;

/// Filter-state key the record is written under (Envoy prefixes `wasm.`).
pub const DECISION_KEY: &str = "mcp_decision";

/// Longest subject copied into a record; bounds log lines.
const MAX_SUBJECT_CHARS: usize = 128;

/// Everything that explains one request's outcome.
#[derive(Debug, Clone, Default)]
pub struct AuditRecord {
    /// The decision, once made.
    pub decision: Option<Decision>,
    /// Caller subject from the claims (or the peer SPIFFE ID of a
    /// workload-only caller).
    pub subject: Option<String>,
    /// Peer SPIFFE ID from the downstream mTLS certificate, when read.
    pub peer: Option<String>,
    /// Active bundle name and version.
    pub policy: Option<(String, u64)>,
    /// What scrubbing replaced (request and response), counts per type.
    pub redactions: PiiReport,
    /// Why a response was not scrubbed, when it was not.
    pub scrub_note: Option<&'static str>,
    /// Model the request named.
    pub model: Option<String>,
    /// First MCP call of the request: method and target.
    pub mcp_call: Option<(String, Option<String>)>,
    /// Number of MCP calls (more than one for a batch).
    pub mcp_calls: usize,
    /// MCP list entries hidden from the caller.
    pub mcp_hidden: usize,
    /// The pinned tool whose definition changed: the call denied for it,
    /// or the first changed tool of a list answer.
    pub tool_pin: Option<String>,
}

/// Longest model / tool name copied into a record.
const MAX_NAME_CHARS: usize = 128;

fn push_field(out: &mut String, key: &str, value: &str) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    let end = value
        .char_indices()
        .nth(MAX_NAME_CHARS)
        .map_or(value.len(), |(i, _)| i);
    push_json_string(out, value.get(..end).unwrap_or(value));
}

impl AuditRecord {
    /// Remembers which MCP call(s) the request made.
    pub fn note_mcp(&mut self, calls: &[mcp_guard_engine::McpCall]) {
        self.mcp_calls = calls.len();
        self.mcp_call = calls.first().map(|c| (c.method.clone(), c.target.clone()));
    }

    /// Renders the record as one line of JSON.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(160);
        out.push('{');
        if let Some(d) = &self.decision {
            d.write_json_members(&mut out);
        } else {
            out.push_str("\"decision\":\"pending\"");
        }
        if let Some(sub) = &self.subject {
            out.push_str(",\"sub\":");
            let end = sub
                .char_indices()
                .nth(MAX_SUBJECT_CHARS)
                .map_or(sub.len(), |(i, _)| i);
            push_json_string(&mut out, sub.get(..end).unwrap_or(sub));
        }
        if let Some(peer) = &self.peer {
            out.push_str(",\"peer\":");
            push_json_string(&mut out, peer);
        }
        match &self.policy {
            Some((name, version)) => {
                out.push_str(",\"policy\":");
                push_json_string(&mut out, name);
                out.push_str(&format!(",\"version\":{version}"));
            }
            None => out.push_str(",\"policy\":null"),
        }
        if let Some(model) = &self.model {
            push_field(&mut out, "model", model);
        }
        if let Some((method, target)) = &self.mcp_call {
            push_field(&mut out, "mcp_method", method);
            if let Some(target) = target {
                push_field(&mut out, "mcp_target", target);
            }
            if self.mcp_calls > 1 {
                out.push_str(&format!(",\"mcp_calls\":{}", self.mcp_calls));
            }
        }
        if self.mcp_hidden > 0 {
            out.push_str(&format!(",\"mcp_hidden\":{}", self.mcp_hidden));
        }
        if let Some(tool) = &self.tool_pin {
            push_field(&mut out, "tool_pin_mismatch", tool);
        }
        if self.redactions.total() > 0 {
            out.push_str(",\"redactions\":{");
            for (i, (ty, count)) in self.redactions.iter().filter(|(_, n)| *n > 0).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let name = serde_json::to_string(&ty).unwrap_or_else(|_| "\"unknown\"".into());
                out.push_str(&format!("{name}:{count}"));
            }
            out.push('}');
        }
        if let Some(note) = self.scrub_note {
            out.push_str(",\"scrub\":");
            push_json_string(&mut out, note);
        }
        out.push('}');
        out
    }

    /// Publishes the record (filter state in Envoy); a host refusal is
    /// ignored because logging must never change the traffic outcome.
    pub fn publish(&self, host: &mut impl crate::Host) {
        host.publish_record(&self.to_json());
    }
}
