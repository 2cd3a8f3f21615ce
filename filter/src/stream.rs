//! Per-request context: decide at request headers, scrub the response.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use mcp_guard_engine::envoy_pairs::decode_claim_map;
use mcp_guard_engine::{Claims, Decision, Effect, Reason, RequestAttrs, Scrubber};

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

/// How the response body is being scrubbed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ScrubMode {
    /// Not scrubbed (denied, not text, or scrubbing off).
    Off,
    /// Buffered until the end, then scrubbed whole.
    Buffered,
    /// Scrubbed chunk by chunk as it passes (event streams, oversize bodies).
    PerChunk,
}

/// One request/response exchange.
pub struct GuardStream {
    policy: Option<Rc<ActivePolicy>>,
    metrics: Metrics,
    record: AuditRecord,
    answered_locally: bool,
    scrub: ScrubMode,
    scratch: Vec<u8>,
}

/// Why claims could not be obtained.
enum IdentityError {
    Missing,
    Unreadable,
}

fn read_claims(metadata_key: &str) -> Result<Claims, IdentityError> {
    let path = [
        JWT_AUTHN_METADATA[0],
        JWT_AUTHN_METADATA[1],
        JWT_AUTHN_METADATA[2],
        metadata_key,
    ];
    match host::property(&path) {
        Ok(Some(bytes)) => decode_claim_map(&bytes)
            .map(Claims::new)
            .map_err(|_| IdentityError::Unreadable),
        Ok(None) => Err(IdentityError::Missing),
        Err(_) => Err(IdentityError::Unreadable),
    }
}

fn is_scrubbable(content_type: &str) -> bool {
    let ct = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ct.starts_with("text/")
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct == "application/x-ndjson"
        || ct == "application/jsonl"
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
            scrub: ScrubMode::Off,
            scratch: Vec::new(),
        }
    }

    fn decide(&mut self) -> Decision {
        let Some(active) = self.policy.clone() else {
            return Decision::deny(Reason::NoPolicy);
        };
        let bundle = active.policy.bundle();
        self.record.policy = Some((bundle.name.clone(), bundle.version));
        let claims = match read_claims(&bundle.identity.jwt_authn_metadata) {
            Ok(claims) => claims,
            Err(IdentityError::Missing) => return Decision::deny(Reason::MissingToken),
            Err(IdentityError::Unreadable) => return Decision::deny(Reason::InvalidToken),
        };
        self.record.subject = claims
            .get_str(&bundle.identity.subject_claim)
            .map(str::to_owned);
        let method = host::header(HeaderMap::Request, ":method").unwrap_or_default();
        let path = host::header(HeaderMap::Request, ":path").unwrap_or_default();
        let authority = host::header(HeaderMap::Request, ":authority").unwrap_or_default();
        active
            .policy
            .decide(&claims, &RequestAttrs::new(&method, &path, &authority))
    }

    fn scrubber(&self) -> Option<Scrubber> {
        let pii = &self.policy.as_ref()?.policy.bundle().pii;
        pii.email.then_some(Scrubber { email: pii.email })
    }

    fn max_body(&self) -> usize {
        self.policy
            .as_ref()
            .map_or(0, |p| p.policy.bundle().pii.max_body_bytes)
    }

    /// Scrubs `size` bytes of the response body buffer in place.
    fn scrub_buffer(&mut self, size: usize) {
        let Some(scrubber) = self.scrubber() else {
            return;
        };
        let Ok(Some(body)) = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, size) else {
            return;
        };
        let report = scrubber.scrub(&body, &mut self.scratch);
        if report.total() > 0 {
            let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, size, &self.scratch);
            self.record.redactions.emails += report.emails;
            self.metrics.record_redactions(report.total());
        }
    }
}

impl Context for GuardStream {}

impl HttpContext for GuardStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let decision = self.decide();
        self.metrics.record_decision(&decision);
        self.record.decision = Some(decision.clone());
        self.record.publish();
        if decision.effect == Effect::Deny {
            let request_id = host::header(HeaderMap::Request, "x-request-id").unwrap_or_default();
            self.answered_locally = true;
            reply::send_denial(&decision, &request_id);
            return Action::Pause;
        }
        if self.scrubber().is_some() {
            // Ask for an uncompressed answer so it can be scrubbed.
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "accept-encoding");
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.answered_locally || self.scrubber().is_none() {
            return Action::Continue;
        }
        let content_type = host::header(HeaderMap::Response, "content-type").unwrap_or_default();
        if !is_scrubbable(&content_type) {
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
        self.scrub = if content_type.starts_with("text/event-stream") {
            ScrubMode::PerChunk
        } else {
            ScrubMode::Buffered
        };
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.scrub {
            ScrubMode::Off => return Action::Continue,
            ScrubMode::Buffered if !end_of_stream => {
                if body_size <= self.max_body() {
                    return Action::Pause;
                }
                self.scrub = ScrubMode::PerChunk;
                self.record.scrub_note = Some("over_limit_per_chunk");
            }
            _ => {}
        }
        let before = self.record.redactions;
        self.scrub_buffer(body_size);
        if end_of_stream || self.record.redactions != before {
            self.record.publish();
        }
        Action::Continue
    }
}
