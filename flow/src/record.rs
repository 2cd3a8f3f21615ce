//! The decision record SREs and auditors read in the access log
//! (`%FILTER_STATE(wasm.mcp_decision:PLAIN)%`): one JSON object, written
//! while the exchange runs and, when Envoy logs the stream, completed
//! (status, time) and sealed into the VM's hash chain
//! ([`mcp_guard_engine::audit`]). The flat keys ([`FLAT_KEYS`]) repeat
//! its main members for text formats and `json_format` logs.
//!
//! No member carries a token or the query string, and every free-text
//! member is bounded and escaped.

use std::fmt::Write as _;

use mcp_guard_engine::audit::DecisionChain;
use mcp_guard_engine::decision::push_json_string;
use mcp_guard_engine::pii::{PiiReport, Scanner};
use mcp_guard_engine::Decision;

/// Filter-state key the record is written under (Envoy prefixes `wasm.`).
pub const DECISION_KEY: &str = "mcp_decision";

/// Flat filter-state keys published with the sealed record, for log
/// formats that cannot embed an object: outcome (`allow`/`deny`/`none`),
/// reason, rule (`-` when no rule decided), subject, the MCP target or
/// model, and the record's chain sequence number.
pub const FLAT_KEYS: [&str; 6] = [
    "mcp_outcome",
    "mcp_reason",
    "mcp_rule",
    "mcp_sub",
    "mcp_target",
    "mcp_seq",
];

/// Longest request path copied into a record (query string never).
const MAX_PATH_CHARS: usize = 256;

/// Longest peer SPIFFE ID copied into a record.
const MAX_PEER_CHARS: usize = 256;

/// Longest request id copied into a record.
const MAX_REQUEST_ID_CHARS: usize = 64;

/// Longest subject copied into a record; bounds log lines.
const MAX_SUBJECT_CHARS: usize = 128;

/// The route an allowed request took ([`mcp_guard_engine::routes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRecord {
    /// The routing rule that matched.
    pub rule: String,
    /// The cluster it named.
    pub cluster: String,
    /// The model the body's `model` was rewritten to, if it was.
    pub model: Option<String>,
    /// The rule's fallback cluster, if it has one.
    pub fallback: Option<String>,
    /// The answer came from the fallback.
    pub fell_back: bool,
}

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
    /// The route taken, when a routing rule matched.
    pub route: Option<RouteRecord>,
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
    /// `x-request-id` as the filter saw it.
    pub request_id: Option<String>,
    /// Request method.
    pub method: Option<String>,
    /// Request path without its query string (which may carry tokens).
    pub path: Option<String>,
    /// HTTP status Envoy answered with (set when the stream is logged).
    pub status: Option<u32>,
    /// Envoy's response-code details (`via_upstream`, `mcp_default_deny`...).
    pub details: Option<String>,
    /// When the stream was logged, milliseconds since the Unix epoch.
    pub ts_ms: Option<u64>,
    /// Sequence number in the VM's chain, once sealed.
    pub seq: Option<u64>,
    /// Sealed and published for the access log: later calls do nothing.
    pub sealed: bool,
    /// The rate limit or token budget that decided (or the tightest one
    /// that counted the request).
    pub limit: Option<LimitNote>,
}

/// One limit's part in the record: `"limit": {"id", "outcome",
/// "remaining", "charged_tokens"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitNote {
    /// Limit id.
    pub id: std::sync::Arc<str>,
    /// `ok`, `over` or `unavailable`.
    pub outcome: &'static str,
    /// What is left in the window after this request (requests or
    /// tokens), as far as known.
    pub remaining: u64,
    /// Tokens the answer was charged (token budgets, once charged).
    pub charged_tokens: Option<u64>,
}

/// `value` cut to `max` characters.
fn bounded(value: &str, max: usize) -> &str {
    let end = value
        .char_indices()
        .nth(max)
        .map_or(value.len(), |(i, _)| i);
    value.get(..end).unwrap_or(value)
}

/// Longest model / tool name copied into a record.
const MAX_NAME_CHARS: usize = 128;

fn push_field(out: &mut String, key: &str, value: &str) {
    push_bounded(out, key, value, MAX_NAME_CHARS);
}

fn push_bounded(out: &mut String, key: &str, value: &str, max: usize) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    push_json_string(out, bounded(value, max));
}

impl AuditRecord {
    /// Remembers which MCP call(s) the request made.
    pub fn note_mcp(&mut self, calls: &[mcp_guard_engine::McpCall]) {
        self.mcp_calls = calls.len();
        self.mcp_call = calls.first().map(|c| (c.method.clone(), c.target.clone()));
    }

    /// Remembers the request line and id (path without its query).
    pub fn note_request(&mut self, method: &str, path: &str, request_id: &str) {
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        self.method = Some(bounded(method, MAX_NAME_CHARS).to_owned());
        self.path = Some(bounded(path, MAX_PATH_CHARS).to_owned());
        if !request_id.is_empty() {
            self.request_id = Some(bounded(request_id, MAX_REQUEST_ID_CHARS).to_owned());
        }
    }

    /// Renders the record as one line of JSON.
    pub fn to_json(&self) -> String {
        let mut out = self.to_open_json();
        out.push('}');
        out
    }

    /// The record's JSON without its closing brace, ready to be sealed.
    fn to_open_json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push('{');
        if let Some(ts) = self.ts_ms {
            let _ = write!(out, "\"ts\":{ts},");
        }
        if let Some(d) = &self.decision {
            d.write_json_members(&mut out);
        } else if self.sealed || self.ts_ms.is_some() {
            // Logged without a decision of ours: Envoy answered before
            // the filter decided (an earlier filter, a reset, a codec
            // error).
            out.push_str("\"decision\":\"none\",\"reason\":null,\"rule\":null");
        } else {
            out.push_str("\"decision\":\"pending\"");
        }
        if let Some(status) = self.status {
            let _ = write!(out, ",\"status\":{status}");
        }
        if let Some(details) = &self.details {
            push_field(&mut out, "details", details);
        }
        if let Some(id) = &self.request_id {
            push_bounded(&mut out, "request_id", id, MAX_REQUEST_ID_CHARS);
        }
        if let Some(method) = &self.method {
            push_field(&mut out, "method", method);
        }
        if let Some(path) = &self.path {
            push_bounded(&mut out, "path", path, MAX_PATH_CHARS);
        }
        if let Some(sub) = &self.subject {
            push_bounded(&mut out, "sub", sub, MAX_SUBJECT_CHARS);
        }
        if let Some(peer) = &self.peer {
            push_bounded(&mut out, "peer", peer, MAX_PEER_CHARS);
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
        if let Some(route) = &self.route {
            out.push_str(",\"route\":{\"rule\":");
            push_json_string(&mut out, &route.rule);
            out.push_str(",\"cluster\":");
            push_json_string(&mut out, &route.cluster);
            if let Some(model) = &route.model {
                out.push_str(",\"model\":");
                push_json_string(&mut out, model);
            }
            if let Some(fallback) = &route.fallback {
                out.push_str(",\"fallback\":");
                push_json_string(&mut out, fallback);
            }
            let _ = write!(out, ",\"fell_back\":{}}}", route.fell_back);
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
        if let Some(limit) = &self.limit {
            out.push_str(",\"limit\":{\"id\":");
            push_json_string(&mut out, &limit.id);
            out.push_str(",\"outcome\":");
            push_json_string(&mut out, limit.outcome);
            let _ = write!(out, ",\"remaining\":{}", limit.remaining);
            if let Some(tokens) = limit.charged_tokens {
                let _ = write!(out, ",\"charged_tokens\":{tokens}");
            }
            out.push('}');
        }
        out
    }

    /// The values of [`FLAT_KEYS`], in that order.
    pub fn flat_values(&self) -> [String; 6] {
        let (outcome, reason, rule) = match &self.decision {
            Some(d) => (
                d.effect.as_str(),
                d.reason.as_str(),
                d.rule_id.as_deref().unwrap_or("-"),
            ),
            None => ("none", "-", "-"),
        };
        let target = self
            .mcp_call
            .as_ref()
            .map(|(method, target)| target.as_deref().unwrap_or(method))
            .or(self.model.as_deref())
            .unwrap_or("-");
        [
            outcome.to_owned(),
            reason.to_owned(),
            bounded(rule, MAX_NAME_CHARS).to_owned(),
            bounded(self.subject.as_deref().unwrap_or("-"), MAX_SUBJECT_CHARS).to_owned(),
            bounded(target, MAX_NAME_CHARS).to_owned(),
            self.seq.map_or_else(|| "-".to_owned(), |s| s.to_string()),
        ]
    }

    /// Replaces personal data `scanner` finds in every member the caller
    /// chooses (headers, path, body): the trail must never carry it.
    fn scrub_caller_members(&mut self, scanner: &Scanner) {
        let (mcp_method, mcp_target) = match self.mcp_call.as_mut() {
            Some((method, target)) => (Some(method), target.as_mut()),
            None => (None, None),
        };
        let mut out = Vec::new();
        for field in [
            self.path.as_mut(),
            self.request_id.as_mut(),
            mcp_method,
            mcp_target,
            self.model.as_mut(),
            self.tool_pin.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            out.clear();
            if scanner.scrub_text(field.as_bytes(), &mut out).total() > 0 {
                *field = String::from_utf8_lossy(&out).into_owned();
            }
        }
    }

    /// Completes the record when Envoy logs the stream (status, time,
    /// caller-chosen members scrubbed with the bundle's `scanner`), seals
    /// it into `chain` and publishes it with the flat keys. Once per
    /// exchange: a second call (periodic logging) changes nothing.
    pub fn seal_and_publish(
        &mut self,
        host: &mut impl crate::Host,
        chain: Option<&mut DecisionChain>,
        scanner: Option<&Scanner>,
    ) {
        if self.sealed {
            return;
        }
        self.sealed = true;
        if let Some(scanner) = scanner {
            self.scrub_caller_members(scanner);
        }
        let (status, details) = host.logged_response();
        self.status = status;
        self.details = details.map(|d| bounded(&d, MAX_NAME_CHARS).to_owned());
        self.ts_ms = Some(host.now_ms());
        let open = self.to_open_json();
        let record = match chain {
            Some(chain) => {
                let sealed = chain.seal(&open);
                self.seq = Some(chain.head().seq);
                sealed
            }
            None => open + "}",
        };
        host.publish_record(&record);
        for (key, value) in FLAT_KEYS.iter().zip(self.flat_values()) {
            host.publish_field(key, &value);
        }
    }

    /// Publishes the record (filter state in Envoy); a host refusal is
    /// ignored because logging must never change the traffic outcome.
    pub fn publish(&self, host: &mut impl crate::Host) {
        host.publish_record(&self.to_json());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_chosen_members_are_bounded() {
        let record = AuditRecord {
            subject: Some("s".repeat(1000)),
            peer: Some(format!("spiffe://td/{}", "p".repeat(1000))),
            ..AuditRecord::default()
        };
        let v: serde_json::Value = serde_json::from_str(&record.to_json()).unwrap();
        assert_eq!(v["sub"].as_str().map(str::len), Some(MAX_SUBJECT_CHARS));
        assert_eq!(v["peer"].as_str().map(str::len), Some(MAX_PEER_CHARS));
    }
}
