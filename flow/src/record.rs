//! The decision record SREs and auditors read in the access log
//! (`%FILTER_STATE(wasm.mcp_decision:PLAIN)%`): one JSON object, written
//! while the exchange runs and, when Envoy logs the stream, completed
//! (status, time) and sealed into the VM's hash chain
//! ([`mcp_guard_engine::audit`]). The flat keys ([`FLAT_KEYS`]) repeat
//! its main members for text formats and `json_format` logs.
//!
//! No member carries a token or the query string, and every free-text
//! member is bounded and escaped.

use mcp_guard_engine::audit::DecisionChain;
use mcp_guard_engine::pii::{PiiReport, Scanner};
use mcp_guard_engine::Decision;
use serde::Serialize;

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

/// The record's members in the order they are written (the order is part
/// of the sealed bytes: the hash chain and log parsers depend on it).
/// `None` members are left out, except `policy` (always present, `null`
/// when no bundle is active); `Some(None)` writes `null`.
#[derive(Serialize)]
struct RecordJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<u64>,
    decision: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dry_run: Option<DryRunJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peer: Option<&'a str>,
    policy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mcp_method: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mcp_target: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mcp_calls: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route: Option<RouteJson<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mcp_hidden: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_pin_mismatch: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    redactions: Option<Redactions<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scrub: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit: Option<LimitJson<'a>>,
}

/// `"dry_run": {"decision", "reason", "rule"}` (`rule` may be `null`).
#[derive(Serialize)]
struct DryRunJson<'a> {
    decision: &'a str,
    reason: &'a str,
    rule: Option<&'a str>,
}

/// `"route": {"rule", "cluster", "model"?, "fallback"?, "fell_back"}`.
#[derive(Serialize)]
struct RouteJson<'a> {
    rule: &'a str,
    cluster: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<&'a str>,
    fell_back: bool,
}

/// `"limit": {"id", "outcome", "remaining", "charged_tokens"?}`.
#[derive(Serialize)]
struct LimitJson<'a> {
    id: &'a str,
    outcome: &'a str,
    remaining: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    charged_tokens: Option<u64>,
}

/// `"redactions": {"<type>": count, ...}`: the types with a count, in
/// [`PiiType::ALL`](mcp_guard_engine::pii::PiiType::ALL) order.
struct Redactions<'a>(&'a PiiReport);

impl Serialize for Redactions<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().filter(|(_, n)| *n > 0))
    }
}

/// serde_json's compact output with the escapes of
/// [`push_json_string`](mcp_guard_engine::decision::push_json_string),
/// which every other JSON the filter writes uses and which records sealed
/// before serde used: backspace and form feed as `\u0008` / `\u000c`
/// (serde_json's default writes `\b` / `\f`). The sealed bytes must not
/// depend on which writer produced them.
struct RecordFormatter;

impl serde_json::ser::Formatter for RecordFormatter {
    fn write_char_escape<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> std::io::Result<()> {
        use serde_json::ser::CharEscape;
        match char_escape {
            CharEscape::Backspace => writer.write_all(b"\\u0008"),
            CharEscape::FormFeed => writer.write_all(b"\\u000c"),
            other => serde_json::ser::CompactFormatter.write_char_escape(writer, other),
        }
    }
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
        let mut out = Vec::with_capacity(256);
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, RecordFormatter);
        if self.json_view().serialize(&mut serializer).is_err() {
            // Unreachable in practice: serde_json fails only on map keys
            // that are not strings or on a failing `Serialize` impl, and
            // the view has neither. Still a JSON object, never a panic.
            return String::from("{\"decision\":\"unrecorded\"");
        }
        // The last byte is the object's closing brace.
        out.pop();
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }

    /// The record as the members serialised, in their order, bounded.
    fn json_view(&self) -> RecordJson<'_> {
        let (decision, reason, rule, detail, dry_run) = match &self.decision {
            Some(d) => (
                d.effect.as_str(),
                Some(Some(d.reason.as_str())),
                Some(d.rule_id.as_deref()),
                d.detail,
                d.dry_run.as_ref().map(|dry| DryRunJson {
                    decision: dry.effect.as_str(),
                    reason: dry.reason.as_str(),
                    rule: dry.rule_id.as_deref(),
                }),
            ),
            // Logged without a decision of ours: Envoy answered before
            // the filter decided (an earlier filter, a reset, a codec
            // error).
            None if self.sealed || self.ts_ms.is_some() => {
                ("none", Some(None), Some(None), None, None)
            }
            None => ("pending", None, None, None, None),
        };
        fn name(v: &Option<String>) -> Option<&str> {
            v.as_deref().map(|v| bounded(v, MAX_NAME_CHARS))
        }
        let (mcp_method, mcp_target, mcp_calls) = match &self.mcp_call {
            Some((method, target)) => (
                Some(bounded(method, MAX_NAME_CHARS)),
                target.as_deref().map(|t| bounded(t, MAX_NAME_CHARS)),
                (self.mcp_calls > 1).then_some(self.mcp_calls),
            ),
            None => (None, None, None),
        };
        RecordJson {
            ts: self.ts_ms,
            decision,
            reason,
            rule,
            detail,
            dry_run,
            status: self.status,
            details: name(&self.details),
            request_id: self
                .request_id
                .as_deref()
                .map(|v| bounded(v, MAX_REQUEST_ID_CHARS)),
            method: name(&self.method),
            path: self.path.as_deref().map(|v| bounded(v, MAX_PATH_CHARS)),
            sub: self
                .subject
                .as_deref()
                .map(|v| bounded(v, MAX_SUBJECT_CHARS)),
            peer: self.peer.as_deref().map(|v| bounded(v, MAX_PEER_CHARS)),
            policy: self.policy.as_ref().map(|(name, _)| name.as_str()),
            version: self.policy.as_ref().map(|(_, version)| *version),
            model: name(&self.model),
            mcp_method,
            mcp_target,
            mcp_calls,
            route: self.route.as_ref().map(|r| RouteJson {
                rule: &r.rule,
                cluster: &r.cluster,
                model: r.model.as_deref(),
                fallback: r.fallback.as_deref(),
                fell_back: r.fell_back,
            }),
            mcp_hidden: (self.mcp_hidden > 0).then_some(self.mcp_hidden),
            tool_pin_mismatch: name(&self.tool_pin),
            redactions: (self.redactions.total() > 0).then_some(Redactions(&self.redactions)),
            scrub: self.scrub_note,
            limit: self.limit.as_ref().map(|l| LimitJson {
                id: &l.id,
                outcome: l.outcome,
                remaining: l.remaining,
                charged_tokens: l.charged_tokens,
            }),
        }
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

    use std::fmt::Write as _;

    use mcp_guard_engine::decision::push_json_string;

    fn push_field(out: &mut String, key: &str, value: &str) {
        push_bounded(out, key, value, MAX_NAME_CHARS);
    }

    fn push_bounded(out: &mut String, key: &str, value: &str, max: usize) {
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        push_json_string(out, bounded(value, max));
    }

    /// The hand-written writer serde replaced, kept as the reference the
    /// serde output must equal byte for byte.
    fn handwritten_open_json(r: &AuditRecord) -> String {
        let this = r;
        let mut out = String::with_capacity(256);
        out.push('{');
        if let Some(ts) = this.ts_ms {
            let _ = write!(out, "\"ts\":{ts},");
        }
        if let Some(d) = &this.decision {
            d.write_json_members(&mut out);
        } else if this.sealed || this.ts_ms.is_some() {
            // Logged without a decision of ours: Envoy answered before
            // the filter decided (an earlier filter, a reset, a codec
            // error).
            out.push_str("\"decision\":\"none\",\"reason\":null,\"rule\":null");
        } else {
            out.push_str("\"decision\":\"pending\"");
        }
        if let Some(status) = this.status {
            let _ = write!(out, ",\"status\":{status}");
        }
        if let Some(details) = &this.details {
            push_field(&mut out, "details", details);
        }
        if let Some(id) = &this.request_id {
            push_bounded(&mut out, "request_id", id, MAX_REQUEST_ID_CHARS);
        }
        if let Some(method) = &this.method {
            push_field(&mut out, "method", method);
        }
        if let Some(path) = &this.path {
            push_bounded(&mut out, "path", path, MAX_PATH_CHARS);
        }
        if let Some(sub) = &this.subject {
            push_bounded(&mut out, "sub", sub, MAX_SUBJECT_CHARS);
        }
        if let Some(peer) = &this.peer {
            push_bounded(&mut out, "peer", peer, MAX_PEER_CHARS);
        }
        match &this.policy {
            Some((name, version)) => {
                out.push_str(",\"policy\":");
                push_json_string(&mut out, name);
                out.push_str(&format!(",\"version\":{version}"));
            }
            None => out.push_str(",\"policy\":null"),
        }
        if let Some(model) = &this.model {
            push_field(&mut out, "model", model);
        }
        if let Some((method, target)) = &this.mcp_call {
            push_field(&mut out, "mcp_method", method);
            if let Some(target) = target {
                push_field(&mut out, "mcp_target", target);
            }
            if this.mcp_calls > 1 {
                out.push_str(&format!(",\"mcp_calls\":{}", this.mcp_calls));
            }
        }
        if let Some(route) = &this.route {
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
        if this.mcp_hidden > 0 {
            out.push_str(&format!(",\"mcp_hidden\":{}", this.mcp_hidden));
        }
        if let Some(tool) = &this.tool_pin {
            push_field(&mut out, "tool_pin_mismatch", tool);
        }
        if this.redactions.total() > 0 {
            out.push_str(",\"redactions\":{");
            for (i, (ty, count)) in this.redactions.iter().filter(|(_, n)| *n > 0).enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let name = serde_json::to_string(&ty).unwrap_or_else(|_| "\"unknown\"".into());
                out.push_str(&format!("{name}:{count}"));
            }
            out.push('}');
        }
        if let Some(note) = this.scrub_note {
            out.push_str(",\"scrub\":");
            push_json_string(&mut out, note);
        }
        if let Some(limit) = &this.limit {
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

    /// A small deterministic generator (xorshift64*).
    struct Gen(u64);

    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn flip(&mut self) -> bool {
            self.below(2) == 0
        }

        /// Text with what an attacker chooses: every control character,
        /// quotes, backslashes, DEL, multi-byte characters, lengths
        /// around and past every bound.
        fn text(&mut self) -> String {
            const PIECES: [&str; 14] = [
                "a", "\"", "\\", "\u{8}", "\u{c}", "\n", "\r", "\t", "\u{0}", "\u{1f}", "\u{7f}",
                "é", "\u{2028}", "😀",
            ];
            let len = match self.below(4) {
                0 => 0,
                1 => self.below(8),
                2 => 60 + self.below(10),
                _ => 120 + self.below(300),
            };
            (0..len)
                .map(|_| {
                    if self.below(3) == 0 {
                        PIECES[self.below(PIECES.len() as u64) as usize].to_owned()
                    } else {
                        char::from(b'a' + self.below(26) as u8).to_string()
                    }
                })
                .collect()
        }

        fn maybe_text(&mut self) -> Option<String> {
            self.flip().then(|| self.text())
        }

        fn maybe_number(&mut self) -> Option<u64> {
            self.flip().then(|| match self.below(3) {
                0 => 0,
                1 => u64::MAX,
                _ => self.next() % 100_000,
            })
        }
    }

    fn random_record(g: &mut Gen, scanner: &Scanner) -> AuditRecord {
        use mcp_guard_engine::{DryRunOutcome, Effect, Reason};
        let reasons = [
            Reason::RuleAllow,
            Reason::RuleDeny,
            Reason::DefaultDeny,
            Reason::MissingToken,
            Reason::InvalidToken,
            Reason::DryRun,
            Reason::RateLimited,
        ];
        let effect = |g: &mut Gen| {
            if g.flip() {
                Effect::Allow
            } else {
                Effect::Deny
            }
        };
        let decision = g.flip().then(|| Decision {
            effect: effect(g),
            rule_id: g.maybe_text().map(Into::into),
            reason: reasons[g.below(reasons.len() as u64) as usize],
            detail: g.flip().then_some("expired\"\u{8}"),
            dry_run: g.flip().then(|| DryRunOutcome {
                effect: effect(g),
                rule_id: g.maybe_text().map(Into::into),
                reason: reasons[g.below(reasons.len() as u64) as usize],
            }),
        });
        let mut redactions = PiiReport::default();
        if g.flip() {
            let mut out = Vec::new();
            let text = "mail jane@example.com or call +1 415 555 0100, card 4111 1111 1111 1111";
            redactions.merge(&scanner.scrub_text(text.as_bytes(), &mut out));
        }
        AuditRecord {
            decision,
            subject: g.maybe_text(),
            peer: g.maybe_text(),
            policy: g.flip().then(|| (g.text(), g.maybe_number().unwrap_or(1))),
            route: g.flip().then(|| RouteRecord {
                rule: g.text(),
                cluster: g.text(),
                model: g.maybe_text(),
                fallback: g.maybe_text(),
                fell_back: g.flip(),
            }),
            redactions,
            scrub_note: g.flip().then_some("not_json\u{c}"),
            model: g.maybe_text(),
            mcp_call: g.flip().then(|| (g.text(), g.maybe_text())),
            mcp_calls: g.below(4) as usize,
            mcp_hidden: g.below(3) as usize,
            tool_pin: g.maybe_text(),
            request_id: g.maybe_text(),
            method: g.maybe_text(),
            path: g.maybe_text(),
            status: g.flip().then(|| g.below(600) as u32),
            details: g.maybe_text(),
            ts_ms: g.maybe_number(),
            seq: None,
            sealed: g.flip(),
            limit: g.flip().then(|| LimitNote {
                id: g.text().into(),
                outcome: ["ok", "over", "unavailable"][g.below(3) as usize],
                remaining: g.maybe_number().unwrap_or(0),
                charged_tokens: g.maybe_number(),
            }),
        }
    }

    #[test]
    fn serde_writes_the_bytes_the_hand_written_writer_wrote() {
        let scanner = Scanner::new(&mcp_guard_engine::pii::PiiConfig::default()).unwrap();
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut with_redactions = 0;
        for i in 0..20_000 {
            let record = random_record(&mut g, &scanner);
            with_redactions += usize::from(record.redactions.total() > 0);
            let expected = handwritten_open_json(&record);
            assert_eq!(record.to_open_json(), expected, "record {i}: {record:?}");
            let full = record.to_json();
            let parsed: serde_json::Value = serde_json::from_str(&full).unwrap();
            assert!(parsed.is_object(), "{full}");
        }
        assert!(with_redactions > 1000);
    }

    #[test]
    fn empty_and_sealed_records_keep_their_shape() {
        let pending = AuditRecord::default();
        assert_eq!(pending.to_json(), r#"{"decision":"pending","policy":null}"#);
        let logged = AuditRecord {
            ts_ms: Some(7),
            status: Some(503),
            ..AuditRecord::default()
        };
        assert_eq!(
            logged.to_json(),
            r#"{"ts":7,"decision":"none","reason":null,"rule":null,"status":503,"policy":null}"#
        );
        let escaped = AuditRecord {
            subject: Some("a\u{8}b\u{c}c\u{1}\"\\\n".into()),
            ..AuditRecord::default()
        };
        assert_eq!(
            escaped.to_json(),
            r#"{"decision":"pending","sub":"a\u0008b\u000cc\u0001\"\\\n","policy":null}"#
        );
    }

    /// Native cost of writing one typical record (run with
    /// `cargo test -p mcp-guard-flow --profile bench record_json_speed -- --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn record_json_speed() {
        let scanner = Scanner::new(&mcp_guard_engine::pii::PiiConfig::default()).unwrap();
        let mut g = Gen(42);
        let records: Vec<AuditRecord> =
            (0..1000).map(|_| random_record(&mut g, &scanner)).collect();
        for (name, write) in [
            (
                "serde",
                AuditRecord::to_open_json as fn(&AuditRecord) -> String,
            ),
            ("hand-written", handwritten_open_json),
        ] {
            let start = std::time::Instant::now();
            let mut bytes = 0;
            for _ in 0..200 {
                for r in &records {
                    bytes += std::hint::black_box(write(r)).len();
                }
            }
            let per = start.elapsed().as_nanos() / 200_000;
            println!(
                "{name}: {per} ns per record ({} bytes on average)",
                bytes / 200_000
            );
        }
    }
}
