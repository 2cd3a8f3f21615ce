//! Per-request context: decide (at request headers, or once the body is
//! read when a rule needs model / MCP attributes), then filter MCP list
//! answers and scrub the response.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use mcp_guard_engine::envoy_pairs::decode_claim_map;
use mcp_guard_engine::inject::header_value;
use mcp_guard_engine::mcp::{filter_list_answer, BodyAttrs, TargetKind};
use mcp_guard_engine::{Claims, Decision, Effect, McpCall, Reason, RequestAttrs, Scrubber};

use crate::audit::AuditRecord;
use crate::host::{self, HeaderMap};
use crate::metrics::Metrics;
use crate::reply;
use crate::root::ActivePolicy;

/// Property path prefix of `jwt_authn`'s verified payloads.
const JWT_AUTHN_METADATA: [&str; 3] = [
    "metadata",
    "filter_metadata",
    "envoy.filters.http.jwt_authn",
];

/// How the response body is being processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyMode {
    /// Passed through untouched (denied, not text, or nothing to do).
    Off,
    /// Buffered until the end, then list-filtered and scrubbed whole.
    Buffered,
    /// Scrubbed chunk by chunk as it passes (event streams, oversize bodies).
    PerChunk,
}

/// The request line, kept to judge MCP list entries at response time.
#[derive(Debug, Default)]
struct RequestLine {
    method: String,
    path: String,
    authority: String,
}

/// One request/response exchange.
pub struct GuardStream {
    policy: Option<Rc<ActivePolicy>>,
    metrics: Metrics,
    record: AuditRecord,
    answered_locally: bool,
    claims: Claims,
    line: RequestLine,
    awaiting_body: bool,
    list_calls: Vec<McpCall>,
    body_mode: BodyMode,
    scratch: Vec<u8>,
}

/// Reads claims from `jwt_authn` metadata, never from headers.
fn read_claims(metadata_key: &str) -> Result<Claims, Reason> {
    let path = [
        JWT_AUTHN_METADATA[0],
        JWT_AUTHN_METADATA[1],
        JWT_AUTHN_METADATA[2],
        metadata_key,
    ];
    match host::property(&path) {
        Ok(Some(bytes)) => decode_claim_map(&bytes)
            .map(Claims::new)
            .map_err(|_| Reason::InvalidToken),
        Ok(None) => Err(Reason::MissingToken),
        Err(_) => Err(Reason::InvalidToken),
    }
}

/// The caller's claims: Envoy's verified `jwt_authn` payload when there is
/// one, else the bundle's own verification of the bearer token.
fn identify(active: &ActivePolicy) -> Result<Claims, Decision> {
    let bundle = active.policy.bundle();
    match read_claims(&bundle.identity.jwt_authn_metadata) {
        Ok(claims) => return Ok(claims),
        Err(Reason::MissingToken) => {}
        Err(reason) => return Err(Decision::deny(reason)),
    }
    let (Some(verifier), Some(config)) =
        (active.policy.verifier(), bundle.identity.verify.as_ref())
    else {
        return Err(Decision::deny(Reason::MissingToken));
    };
    let Some(value) = host::header(HeaderMap::Request, &config.header) else {
        return Err(Decision::deny(Reason::MissingToken));
    };
    let Some(token) = config.token_from_header(&value) else {
        return Err(Decision::deny(Reason::InvalidToken).with_detail("malformed"));
    };
    let mut cache = active.token_cache.borrow_mut();
    verifier
        .verify_cached(&mut cache, token, now_unix())
        .map_err(|e| Decision::deny(Reason::InvalidToken).with_detail(e.reason_code()))
}

fn is_textual(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || is_json(&ct)
        || ct == "application/x-ndjson"
        || ct == "application/jsonl"
}

fn is_json(content_type: &str) -> bool {
    let ct = content_type.split(';').next().unwrap_or_default().trim();
    ct.eq_ignore_ascii_case("application/json") || ct.to_ascii_lowercase().ends_with("+json")
}

fn now_unix() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

impl GuardStream {
    /// A stream bound to the policy active when the request started, so a
    /// bundle swap never changes the rules half-way through an exchange.
    pub fn new(_context_id: u32, policy: Option<Rc<ActivePolicy>>, metrics: Metrics) -> Self {
        Self {
            policy,
            metrics,
            record: AuditRecord::default(),
            answered_locally: false,
            claims: Claims::default(),
            line: RequestLine::default(),
            awaiting_body: false,
            list_calls: Vec::new(),
            body_mode: BodyMode::Off,
            scratch: Vec::new(),
        }
    }

    /// Records, counts and carries out a decision.
    fn enforce(&mut self, decision: Decision) -> Action {
        self.metrics.record_decision(&decision);
        let denied = decision.effect == Effect::Deny;
        self.record.decision = Some(decision);
        self.record.publish();
        if denied {
            let request_id = host::header(HeaderMap::Request, "x-request-id").unwrap_or_default();
            self.answered_locally = true;
            if let Some(d) = &self.record.decision {
                reply::send_denial(d, &request_id);
            }
            return Action::Pause;
        }
        Action::Continue
    }

    /// Removes client-sent copies of every header the bundle injects, so a
    /// caller can never smuggle identity to the upstream.
    fn strip_injected_headers(active: &ActivePolicy) {
        for inj in &active.policy.bundle().inject {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, &inj.header);
        }
    }

    fn inject_claims(&self, active: &ActivePolicy) {
        for inj in &active.policy.bundle().inject {
            if let Some(value) = self.claims.get(&inj.claim).and_then(header_value) {
                let _ = hostcalls::set_map_value(
                    MapType::HttpRequestHeaders,
                    &inj.header,
                    Some(&value),
                );
            }
        }
    }

    /// Decides with what the headers (and body, if read) say.
    fn decide(&mut self, active: &Rc<ActivePolicy>, body: Option<&[u8]>) -> Action {
        let policy = &active.policy;
        let attrs = match body.map(|b| policy.read_request_body(b)) {
            Some(Err(reason)) => return self.enforce(policy.deny_for(reason)),
            Some(Ok(attrs)) => attrs,
            None => BodyAttrs::default(),
        };
        let header_values: Vec<(String, String)> = policy
            .header_names()
            .iter()
            .filter_map(|name| host::header(HeaderMap::Request, name).map(|v| (name.clone(), v)))
            .collect();
        let headers: Vec<(&str, &str)> = header_values
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let model = policy.model_of(&attrs, &headers);
        let request = RequestAttrs::new(&self.line.method, &self.line.path, &self.line.authority)
            .with_headers(&headers)
            .with_model(model)
            .at(now_unix());
        let decision = policy.decide_calls(&self.claims, &request, &attrs.mcp);
        self.record.model = model.map(str::to_owned);
        self.record.note_mcp(&attrs.mcp);
        if decision.effect == Effect::Allow {
            self.list_calls = attrs
                .mcp
                .into_iter()
                .filter(|c| TargetKind::of_list_method(&c.method).is_some())
                .collect();
            self.inject_claims(active);
            if self.scrubber().is_some() || !self.list_calls.is_empty() {
                // Ask for an uncompressed answer so it can be read.
                let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "accept-encoding");
            }
        }
        self.enforce(decision)
    }

    fn scrubber(&self) -> Option<Scrubber> {
        let pii = &self.policy.as_ref()?.policy.bundle().pii;
        pii.email.then_some(Scrubber { email: pii.email })
    }

    fn max_response_body(&self) -> usize {
        self.policy
            .as_ref()
            .map_or(0, |p| p.policy.bundle().pii.max_body_bytes)
    }

    /// Removes MCP list entries the caller may not use.
    fn filter_lists(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        let active = self.policy.clone()?;
        let request = RequestAttrs::new(&self.line.method, &self.line.path, &self.line.authority)
            .at(now_unix());
        let claims = &self.claims;
        let (filtered, removed) = filter_list_answer(body, &self.list_calls, |kind, name| {
            active.policy.allows_target(claims, &request, kind, name)
        })?;
        self.record.mcp_hidden += removed;
        Some(filtered)
    }

    /// Filters and scrubs `size` bytes of the response body buffer in place.
    fn process_response_buffer(&mut self, size: usize, whole: bool) {
        let Ok(Some(body)) = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size) else {
            return;
        };
        let filtered = if whole && !self.list_calls.is_empty() {
            self.filter_lists(&body)
        } else {
            None
        };
        let mut changed = filtered.is_some();
        let mut current = filtered.unwrap_or(body);
        if let Some(scrubber) = self.scrubber() {
            let report = scrubber.scrub(&current, &mut self.scratch);
            if report.total() > 0 {
                std::mem::swap(&mut current, &mut self.scratch);
                self.record.redactions.emails += report.emails;
                self.metrics.record_redactions(report.total());
                changed = true;
            }
        }
        if changed {
            let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &current);
        }
    }
}

impl Context for GuardStream {}

impl HttpContext for GuardStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(active) = self.policy.clone() else {
            return self.enforce(Decision::deny(Reason::NoPolicy));
        };
        Self::strip_injected_headers(&active);
        let bundle = active.policy.bundle();
        self.record.policy = Some((bundle.name.clone(), bundle.version));
        self.line = RequestLine {
            method: host::header(HeaderMap::Request, ":method").unwrap_or_default(),
            path: host::header(HeaderMap::Request, ":path").unwrap_or_default(),
            authority: host::header(HeaderMap::Request, ":authority").unwrap_or_default(),
        };
        match identify(&active) {
            Ok(claims) => self.claims = claims,
            Err(denial) => {
                let decision = match denial.detail {
                    Some(detail) => active.policy.deny_for(denial.reason).with_detail(detail),
                    None => active.policy.deny_for(denial.reason),
                };
                return self.enforce(decision);
            }
        }
        self.record.subject = self
            .claims
            .get_str(&bundle.identity.subject_claim)
            .map(str::to_owned);
        if active.policy.needs_body() && !end_of_stream {
            self.awaiting_body = true;
            return Action::Pause;
        }
        self.decide(&active, None)
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.awaiting_body {
            return Action::Continue;
        }
        let Some(active) = self.policy.clone() else {
            return Action::Continue;
        };
        if body_size > active.policy.bundle().limits.max_request_body_bytes {
            self.awaiting_body = false;
            return self.enforce(active.policy.deny_for(Reason::BodyTooLarge));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.awaiting_body = false;
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        self.decide(&active, Some(&body))
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.answered_locally || (self.scrubber().is_none() && self.list_calls.is_empty()) {
            return Action::Continue;
        }
        let content_type = host::header(HeaderMap::Response, "content-type").unwrap_or_default();
        if !is_textual(&content_type) {
            return Action::Continue;
        }
        if let Some(encoding) = host::header(HeaderMap::Response, "content-encoding") {
            if !encoding.eq_ignore_ascii_case("identity") {
                self.record.scrub_note = Some("compressed_not_scanned");
                self.record.publish();
                return Action::Continue;
            }
        }
        let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, "content-length");
        self.body_mode = if content_type.starts_with("text/event-stream") {
            BodyMode::PerChunk
        } else {
            BodyMode::Buffered
        };
        if !is_json(&content_type) {
            self.list_calls.clear();
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.body_mode {
            BodyMode::Off => return Action::Continue,
            BodyMode::Buffered if !end_of_stream => {
                if body_size <= self.max_response_body() {
                    return Action::Pause;
                }
                self.body_mode = BodyMode::PerChunk;
                self.record.scrub_note = Some("over_limit_per_chunk");
            }
            _ => {}
        }
        let whole = self.body_mode == BodyMode::Buffered;
        let before = (self.record.redactions, self.record.mcp_hidden);
        self.process_response_buffer(body_size, whole);
        if end_of_stream || (self.record.redactions, self.record.mcp_hidden) != before {
            self.record.publish();
        }
        Action::Continue
    }
}
