//! Per-request context: decide (at request headers, or once the body is
//! read when a rule needs model / MCP attributes), then filter MCP list
//! answers and scrub the response.

use std::rc::Rc;
use std::sync::Arc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use mcp_guard_engine::bundle::Fallback;
use mcp_guard_engine::envoy_metadata::jwt_payload_from_metadata;
use mcp_guard_engine::inject::header_value;
use mcp_guard_engine::mcp::{filter_list_answer, BodyAttrs, TargetKind};
use mcp_guard_engine::pii::{ContentMode, PiiReport, Scanner, StreamScrubber};
use mcp_guard_engine::policy::claim_holds;
use mcp_guard_engine::{Claims, Decision, Effect, McpCall, Reason, RequestAttrs};

use crate::audit::AuditRecord;
use crate::host::{self, HeaderMap};
use crate::metrics::Metrics;
use crate::reply;
use crate::root::ActivePolicy;
use crate::scrub::{self, BodyScrub};

/// Dynamic-metadata namespace of `jwt_authn`'s verified payloads.
const JWT_AUTHN_FILTER: &str = "envoy.filters.http.jwt_authn";

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
    /// The scanner for this exchange; `None` when scrubbing is off or the
    /// caller is exempt.
    scanner: Option<Arc<Scanner>>,
    response: BodyScrub,
    scratch: Vec<u8>,
}

/// Reads claims from `jwt_authn` metadata, never from headers. The property
/// `metadata` alone is the whole dynamic metadata as a protobuf `Metadata`
/// message, whose `Struct` values carry their types; a deeper path would
/// return untyped bytes whose type must be guessed (a number or a string?).
fn read_claims(metadata_key: &str) -> Result<Claims, Reason> {
    match host::property(&["metadata"]) {
        Ok(Some(bytes)) => {
            match jwt_payload_from_metadata(&bytes, JWT_AUTHN_FILTER, metadata_key) {
                Ok(Some(claims)) => Ok(Claims::new(claims)),
                Ok(None) => Err(Reason::MissingToken),
                Err(_) => Err(Reason::InvalidToken),
            }
        }
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

fn now_unix() -> u64 {
    host::now_ms() / 1000
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
            scanner: None,
            response: BodyScrub::Off,
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
            if self.scanner.is_some() || !self.list_calls.is_empty() {
                // Ask for an uncompressed answer so it can be read.
                let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "accept-encoding");
            }
        }
        self.enforce(decision)
    }

    fn request_id() -> String {
        host::header(HeaderMap::Request, "x-request-id").unwrap_or_default()
    }

    fn settings(&self) -> Option<&mcp_guard_engine::bundle::PiiSettings> {
        Some(&self.policy.as_ref()?.policy.bundle().pii)
    }

    /// Picks the scanner for this caller: none when scrubbing is off or the
    /// caller's claims match an exemption (recorded).
    fn choose_scanner(&mut self, active: &ActivePolicy) {
        let pii = &active.policy.bundle().pii;
        if pii.exempt.iter().any(|c| claim_holds(c, &self.claims)) {
            self.record.scrub_note = Some("exempt");
            return;
        }
        self.scanner = active.scanner.clone();
    }

    fn count(&mut self, report: &PiiReport) {
        if report.total() > 0 {
            self.record.redactions.merge(report);
            self.metrics.record_redactions(report);
        }
    }

    /// Scrubs a whole buffered request body (prompts) in place; `false`
    /// when a blocking type was found.
    fn scrub_request(&mut self, size: usize, body: &[u8]) -> bool {
        let Some(scanner) = self.scanner.clone() else {
            return true;
        };
        let content_type = host::header(HeaderMap::Request, "content-type").unwrap_or_default();
        if !scrub::is_textual(&content_type) {
            return true;
        }
        let mode = ContentMode::from_content_type(&content_type);
        let report = scrub::scrub_whole(&scanner, mode, body, &mut self.scratch);
        self.count(&report);
        if report.blocked() {
            return false;
        }
        if report.total() > 0 {
            let _ = hostcalls::set_buffer(BufferType::HttpRequestBody, 0, size, &self.scratch);
        }
        true
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

    /// Refuses a response whose headers are still held: 502 with a JSON
    /// body naming the reason.
    fn refuse_buffered(&mut self, size: usize, reason: &'static str) {
        let body = scrub::refusal_body(reason, &Self::request_id());
        let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, ":status", Some("502"));
        let _ = hostcalls::set_map_value(
            MapType::HttpResponseHeaders,
            "content-type",
            Some("application/json"),
        );
        let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &body);
        self.response = BodyScrub::Blocked;
        self.record.scrub_note = Some(reason);
        self.metrics.record_pii_block();
    }

    /// Ends a stream that has started with an explicit SSE error event.
    fn refuse_stream(&mut self, size: usize, reason: &'static str) {
        let event = scrub::refusal_event(reason, &Self::request_id());
        let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &event);
        self.response = BodyScrub::Blocked;
        self.record.scrub_note = Some(reason);
        self.metrics.record_pii_block();
    }

    /// The whole buffered response: list filtering, then scrubbing.
    fn finish_buffered(&mut self, size: usize, mode: ContentMode) {
        let Ok(Some(body)) = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size) else {
            return;
        };
        let filtered = if self.list_calls.is_empty() {
            None
        } else {
            self.filter_lists(&body)
        };
        let changed = filtered.is_some();
        let current = filtered.unwrap_or(body);
        let Some(scanner) = self.scanner.clone() else {
            if changed {
                let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &current);
            }
            return;
        };
        let report = scrub::scrub_whole(&scanner, mode, &current, &mut self.scratch);
        self.count(&report);
        if report.blocked() {
            self.refuse_buffered(size, "pii_blocked");
        } else if changed || report.total() > 0 {
            let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &self.scratch);
        }
    }

    /// One chunk of a streamed response.
    fn stream_chunk(&mut self, size: usize, end_of_stream: bool) {
        let BodyScrub::Streaming(scrubber) = &mut self.response else {
            return;
        };
        let chunk = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size)
            .ok()
            .flatten()
            .unwrap_or_default();
        // One output buffer per stream, reused chunk after chunk.
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let before = scrubber.report();
        scrubber.push(&chunk, &mut out);
        if end_of_stream {
            scrubber.finish(&mut out);
        }
        let after = scrubber.report();
        if after.blocked() {
            self.count(&after.since(&before));
            self.refuse_stream(size, "pii_blocked");
            return;
        }
        if after.total() != before.total() {
            self.count(&after.since(&before));
        }
        if out != chunk {
            let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &out);
        }
        self.scratch = out;
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
        self.choose_scanner(&active);
        let scrub_request = bundle.pii.scrub_requests && self.scanner.is_some();
        if (active.policy.needs_body() || scrub_request) && !end_of_stream {
            if scrub_request {
                let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "content-length");
            }
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
        let body_for_rules = active.policy.needs_body().then_some(body.as_slice());
        let action = self.decide(&active, body_for_rules);
        if self.answered_locally || !active.policy.bundle().pii.scrub_requests {
            return action;
        }
        if !self.scrub_request(body_size, &body) {
            self.record.scrub_note = Some("pii_blocked_in_request");
            self.metrics.record_pii_block();
            return self.enforce(Decision::deny(Reason::InvalidBody).with_detail("pii_blocked"));
        }
        self.record.publish();
        action
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.answered_locally || (self.scanner.is_none() && self.list_calls.is_empty()) {
            return Action::Continue;
        }
        let content_type = host::header(HeaderMap::Response, "content-type").unwrap_or_default();
        if !scrub::is_textual(&content_type) {
            return Action::Continue;
        }
        let mode = ContentMode::from_content_type(&content_type);
        if mode != ContentMode::Json {
            self.list_calls.clear();
        }
        if let Some(encoding) = host::header(HeaderMap::Response, "content-encoding") {
            if !encoding.eq_ignore_ascii_case("identity") {
                let block = self
                    .settings()
                    .is_some_and(|p| p.on_compressed == Fallback::Block);
                if block && self.scanner.is_some() {
                    self.record.scrub_note = Some("compressed_blocked");
                    self.metrics.record_pii_block();
                    self.record.publish();
                    let body = scrub::refusal_body("compressed_response", &Self::request_id());
                    let headers = [("content-type", "application/json")];
                    let _ = host::send_local_response(502, "mcp_pii_compressed", &headers, &body);
                    self.answered_locally = true;
                    return Action::Pause;
                }
                self.record.scrub_note = Some("compressed_not_scanned");
                self.record.publish();
                return Action::Continue;
            }
        }
        if end_of_stream {
            return Action::Continue;
        }
        let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, "content-length");
        match (mode, self.scanner.clone()) {
            (ContentMode::Sse, Some(scanner)) => {
                self.response =
                    BodyScrub::Streaming(Box::new(StreamScrubber::new(scanner, ContentMode::Sse)));
                Action::Continue
            }
            (ContentMode::Sse, None) => Action::Continue,
            _ => {
                // Hold the headers: a refused body must be able to change
                // the status.
                self.response = BodyScrub::Buffered(mode);
                Action::Pause
            }
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let redactions_before = self.record.redactions.total();
        let blocked_before = matches!(self.response, BodyScrub::Blocked);
        match &self.response {
            BodyScrub::Off => {}
            BodyScrub::Blocked => {
                let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, &[]);
            }
            BodyScrub::Streaming(_) => self.stream_chunk(body_size, end_of_stream),
            BodyScrub::Buffered(mode) => {
                let mode = *mode;
                let limit = self.settings().map_or(0, |p| p.max_body_bytes);
                if body_size > limit {
                    let stream = self
                        .settings()
                        .is_some_and(|p| p.on_overflow == Fallback::Stream);
                    match self.scanner.clone() {
                        Some(scanner) if stream => {
                            self.record.scrub_note = Some("over_limit_streamed");
                            self.list_calls.clear();
                            self.response =
                                BodyScrub::Streaming(Box::new(StreamScrubber::new(scanner, mode)));
                            self.stream_chunk(body_size, end_of_stream);
                        }
                        _ => self.refuse_buffered(body_size, "response_too_large"),
                    }
                } else if !end_of_stream {
                    return Action::Pause;
                } else {
                    self.finish_buffered(body_size, mode);
                }
            }
        }
        // Published again whenever the counts move, so a stream reset
        // half-way still logs what was replaced; not on every chunk of a
        // long stream (serialising the record costs more than scrubbing
        // a chat delta).
        if end_of_stream
            || self.record.redactions.total() != redactions_before
            || (!blocked_before && matches!(self.response, BodyScrub::Blocked))
        {
            self.record.publish();
        }
        Action::Continue
    }
}
