//! Per-request context: a thin shim that forwards every proxy-wasm
//! callback to the host-independent exchange state machine
//! ([`mcp_guard_flow::Exchange`]), with the proxy as its [`Host`].

use std::sync::Arc;
use std::time::Duration;

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

use mcp_guard_engine::pii::PiiReport;
use mcp_guard_engine::pins::ToolDigest;
use mcp_guard_engine::Decision;
use mcp_guard_flow::fallback::MAX_CALLOUT_ANSWER_BYTES;
use mcp_guard_flow::host::{PeerCertificate, RateLimitEvent, SharedWrite};
use mcp_guard_flow::record::DECISION_KEY;
use mcp_guard_flow::timing::Durations;
use mcp_guard_flow::token_exchange::CalloutAnswer;
use mcp_guard_flow::{ActivePolicy, Exchange, Host, Level, Next, Side};

use crate::chain::SharedChain;
use crate::host::{self, Buffer, HeaderMap, LogLevel};
use crate::metrics::Metrics;

/// Shared-data key prefix of remembered tool digests. Shared data is seen
/// by every VM of this plugin on every Envoy worker, so what one worker's
/// list answer advertised holds for a call on another. Only pinned tools
/// are stored (one fixed-size key per bundle and pinned tool), so an
/// upstream listing thousands of names adds nothing.
const TOOL_KEY_PREFIX: &str = "mcp_guard.tool_pin.";

/// The proxy, as the exchange sees it: every call through the
/// non-panicking imports in [`crate::host`].
struct ProxyHost<'a> {
    metrics: &'a Metrics,
    /// This stream's context id (restored after a call sent for the
    /// root context).
    stream_id: u32,
}

thread_local! {
    /// The plugin's root context id in this VM.
    static ROOT_ID: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Remembers the root context id (calls nobody waits for are sent for
/// it, so the end of a stream does not cancel them).
pub fn set_root_id(id: u32) {
    ROOT_ID.with(|r| r.set(Some(id)));
}

fn map(side: Side) -> HeaderMap {
    match side {
        Side::Request => HeaderMap::Request,
        Side::Response => HeaderMap::Response,
    }
}

fn trailer_map(side: Side) -> HeaderMap {
    match side {
        Side::Request => HeaderMap::RequestTrailers,
        Side::Response => HeaderMap::ResponseTrailers,
    }
}

fn buffer(side: Side) -> Buffer {
    match side {
        Side::Request => Buffer::Request,
        Side::Response => Buffer::Response,
    }
}

impl Host for ProxyHost<'_> {
    fn headers(&mut self, side: Side) -> Vec<(String, String)> {
        host::header_pairs(map(side))
    }

    fn header(&mut self, side: Side, name: &str) -> Option<String> {
        host::header(map(side), name)
    }

    fn set_header(&mut self, side: Side, name: &str, value: &str) {
        host::set_header(map(side), name, value);
    }

    fn remove_header(&mut self, side: Side, name: &str) {
        host::remove_header(map(side), name);
    }

    fn trailers(&mut self, side: Side) -> Vec<(String, String)> {
        host::header_pairs(trailer_map(side))
    }

    fn remove_trailer(&mut self, side: Side, name: &str) {
        host::remove_header(trailer_map(side), name);
    }

    fn body(&mut self, side: Side, len: usize) -> Option<Vec<u8>> {
        host::body(buffer(side), len)
    }

    fn replace_body(&mut self, side: Side, len: usize, bytes: &[u8]) -> bool {
        host::replace_body(buffer(side), len, bytes)
    }

    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, u32> {
        host::property(path)
    }

    /// `connection.mtls` (a one-byte bool) must be true before the URI
    /// SAN counts; Envoy reports only the certificate's first URI SAN.
    fn peer_certificate(&mut self) -> PeerCertificate {
        let presented = matches!(
            host::property(&["connection", "mtls"]),
            Ok(Some(b)) if b.as_slice() == [1]
        );
        if !presented {
            return PeerCertificate::default();
        }
        let uri_san = host::property(&["connection", "uri_san_peer_certificate"])
            .ok()
            .flatten()
            .and_then(|b| String::from_utf8(b).ok());
        PeerCertificate { presented, uri_san }
    }

    fn send_reply(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> bool {
        host::send_local_response(status, details, headers, body).is_ok()
    }

    fn reset(&mut self) {
        host::reset_exchange();
    }

    fn publish_record(&mut self, json: &str) {
        host::set_property(DECISION_KEY, json.as_bytes());
    }

    fn publish_field(&mut self, key: &str, value: &str) {
        host::set_property(key, value.as_bytes());
    }

    /// `response.code` comes back as an 8-byte little-endian integer.
    fn logged_response(&mut self) -> (Option<u32>, Option<String>) {
        let status = host::property(&["response", "code"])
            .ok()
            .flatten()
            .and_then(|bytes| <[u8; 8]>::try_from(bytes.as_slice()).ok())
            .and_then(|raw| u32::try_from(u64::from_le_bytes(raw)).ok())
            .filter(|s| *s > 0);
        let details = host::property(&["response", "code_details"])
            .ok()
            .flatten()
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        (status, details)
    }

    fn now_ms(&mut self) -> u64 {
        host::now_ms()
    }

    fn now_ns(&mut self) -> u64 {
        host::now_ns()
    }

    fn record_durations(&mut self, durations: &Durations) {
        self.metrics.record_durations(durations);
    }

    fn count_decision(&mut self, decision: &Decision) {
        self.metrics.record_decision(decision);
    }

    fn count_redactions(&mut self, report: &PiiReport) {
        self.metrics.record_redactions(report);
    }

    fn count_refusal(&mut self) {
        self.metrics.record_pii_block();
    }

    fn log(&mut self, level: Level, message: &str) {
        let level = match level {
            Level::Warn => LogLevel::Warn,
            Level::Info => LogLevel::Info,
        };
        host::log(level, message);
    }

    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u64> {
        crate::calls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            Some(body),
            vec![],
            Duration::from_millis(timeout_ms),
        )
        .ok()
        .map(u64::from)
    }

    fn resume_request(&mut self) {
        if !host::resume_request() {
            host::log(LogLevel::Warn, "request could not be resumed");
        }
    }

    fn advertised_tool(&mut self, key: &str) -> Option<ToolDigest> {
        let (value, _) = crate::calls::get_shared_data(&format!("{TOOL_KEY_PREFIX}{key}")).ok()?;
        let bytes: [u8; 32] = value?.try_into().ok()?;
        Some(ToolDigest(bytes))
    }

    fn remember_advertised_tool(&mut self, key: &str, digest: ToolDigest) {
        let key = format!("{TOOL_KEY_PREFIX}{key}");
        if crate::calls::set_shared_data(&key, Some(&digest.0), None).is_err() {
            host::log(LogLevel::Warn, "could not remember a pinned tool's digest");
        }
    }

    fn count_tool_pin_mismatch(&mut self) {
        self.metrics.record_tool_pin_mismatch();
    }

    fn clear_route_cache(&mut self) {
        if !crate::calls::clear_route_cache() {
            host::log(
                LogLevel::Warn,
                "clear_route_cache refused by the host: the route header may be ignored",
            );
        }
    }

    fn count_route(&mut self) {
        self.metrics.record_route();
    }

    fn count_route_fallback(&mut self) {
        self.metrics.record_route_fallback();
    }

    fn shared_value(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, u32> {
        match crate::calls::get_shared_data(key)? {
            (Some(value), Some(cas)) => Ok(Some((value, cas))),
            // Envoy keeps empty values as empty, with a version.
            (None, Some(cas)) => Ok(Some((Vec::new(), cas))),
            (_, None) => Ok(None),
        }
    }

    fn set_shared_value(&mut self, key: &str, value: &[u8], cas: u32) -> SharedWrite {
        /// proxy-wasm's `CasMismatch` status.
        const CAS_MISMATCH: u32 = 8;
        match crate::calls::set_shared_data(key, Some(value), (cas != 0).then_some(cas)) {
            Ok(()) => SharedWrite::Written,
            Err(CAS_MISMATCH) => SharedWrite::CasMismatch,
            Err(_) => SharedWrite::Failed,
        }
    }

    fn count_rate_limit(&mut self, event: RateLimitEvent, amount: u64) {
        self.metrics.record_rate_limit(event, amount);
    }

    fn http_call_detached(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> bool {
        let Some(root) = ROOT_ID.with(std::cell::Cell::get) else {
            return false;
        };
        if crate::calls::set_effective_context(root).is_err() {
            return false;
        }
        let sent = crate::calls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            Some(body),
            vec![],
            Duration::from_millis(timeout_ms),
        )
        .is_ok();
        // Back to this stream for whatever the callback still does.
        let _ = crate::calls::set_effective_context(self.stream_id);
        sent
    }
}

fn action(next: Next) -> Action {
    match next {
        Next::Continue => Action::Continue,
        Next::Pause => Action::Pause,
    }
}

/// One request/response exchange.
pub struct GuardStream {
    context_id: u32,
    exchange: Exchange,
    metrics: Metrics,
    chain: Option<SharedChain>,
}

impl GuardStream {
    /// A stream bound to the policy active when the request started.
    pub fn new(
        context_id: u32,
        policy: Option<Arc<ActivePolicy>>,
        metrics: Metrics,
        exchange_secret: Option<Arc<str>>,
        held_headers: bool,
        chain: Option<SharedChain>,
    ) -> Self {
        Self {
            context_id,
            exchange: Exchange::new(policy)
                .with_exchange_secret(exchange_secret)
                .with_held_headers(held_headers),
            metrics,
            chain,
        }
    }
}

impl Context for GuardStream {
    /// The token endpoint answered (or the call failed: no `:status`).
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        _num_headers: usize,
        body_size: usize,
        num_trailers: usize,
    ) {
        let status = host::header(host::HeaderMap::HttpCallResponse, ":status");
        // gRPC answers carry their status in trailers, or in the headers
        // of a trailers-only answer.
        let grpc_status = (num_trailers > 0)
            .then(|| host::header(host::HeaderMap::HttpCallResponseTrailers, "grpc-status"))
            .flatten()
            .or_else(|| host::header(host::HeaderMap::HttpCallResponse, "grpc-status"));
        let headers = host::header_pairs(host::HeaderMap::HttpCallResponse);
        // One byte over the limit is enough to refuse it as too large
        // (the flow applies each call's own, smaller limit).
        let body = crate::calls::get_buffer(
            proxy_wasm::types::BufferType::HttpCallResponseBody,
            0,
            body_size.min(MAX_CALLOUT_ANSWER_BYTES + 1),
        )
        .ok()
        .flatten()
        .unwrap_or_default();
        let answer = CalloutAnswer {
            status,
            body,
            headers,
            grpc_status,
        };
        let mut host = ProxyHost {
            metrics: &self.metrics,
            stream_id: self.context_id,
        };
        self.exchange.timed(&mut host, Side::Request, |x, h| {
            x.on_callout_answer(h, u64::from(token_id), &answer)
        });
    }

    /// The stream ended (completed or reset): a pending exchange's answer
    /// is ignored from now on.
    fn on_done(&mut self) -> bool {
        if self.exchange.waited_for_body_in_vain() {
            warn_body_never_came();
        }
        self.exchange.on_stream_done();
        let mut host = ProxyHost {
            metrics: &self.metrics,
            stream_id: self.context_id,
        };
        self.exchange.finish_timing(&mut host);
        true
    }
}

impl HttpContext for GuardStream {
    /// Envoy logs the stream (its filters' log hooks run before the access
    /// loggers): the record is sealed into this VM's chain and published.
    fn on_log(&mut self) {
        let mut host = ProxyHost {
            metrics: &self.metrics,
            stream_id: self.context_id,
        };
        match self.chain.as_ref().map(|c| c.try_borrow_mut()) {
            Some(Ok(mut slot)) => self.exchange.on_log(&mut host, Some(slot.chain())),
            _ => self.exchange.on_log(&mut host, None),
        }
    }

    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let mut host = ProxyHost {
            metrics: &self.metrics,
            stream_id: self.context_id,
        };
        action(self.exchange.timed(&mut host, Side::Request, |x, h| {
            x.on_request_headers(h, end_of_stream)
        }))
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let mut host = ProxyHost {
            metrics: &self.metrics,
            stream_id: self.context_id,
        };
        action(self.exchange.timed(&mut host, Side::Request, |x, h| {
            x.on_request_body(h, body_size, end_of_stream)
        }))
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        let mut host = ProxyHost {
            metrics: &self.metrics,
            stream_id: self.context_id,
        };
        action(
            self.exchange
                .timed(&mut host, Side::Request, |x, h| x.on_request_trailers(h)),
        )
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let mut host = ProxyHost {
            metrics: &self.metrics,
            stream_id: self.context_id,
        };
        action(self.exchange.timed(&mut host, Side::Response, |x, h| {
            x.on_response_headers(h, end_of_stream)
        }))
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let mut host = ProxyHost {
            metrics: &self.metrics,
            stream_id: self.context_id,
        };
        action(self.exchange.timed(&mut host, Side::Response, |x, h| {
            x.on_response_body(h, body_size, end_of_stream)
        }))
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        let mut host = ProxyHost {
            metrics: &self.metrics,
            stream_id: self.context_id,
        };
        action(
            self.exchange
                .timed(&mut host, Side::Response, |x, h| x.on_response_trailers(h)),
        )
    }
}

thread_local! {
    /// When [`warn_body_never_came`] last wrote its line (ns).
    static BODY_WARNED_AT: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Says, at most once a minute per VM, that a request paused at its
/// headers never got its body: the plugin configuration says
/// `headers_stop_iteration` but Envoy does not hold headers (or clients
/// gave up before sending one). Bounded so clients cannot flood the log.
fn warn_body_never_came() {
    const EVERY_NS: u64 = 60_000_000_000;
    let now = host::now_ns();
    let due = BODY_WARNED_AT.with(|at| {
        let due = at
            .get()
            .is_none_or(|last| now.saturating_sub(last) >= EVERY_NS);
        if due {
            at.set(Some(now));
        }
        due
    });
    if due {
        host::log(
            LogLevel::Warn,
            "a request held at its headers ended without its body reaching the filter: if Envoy's allow_on_headers_stop_iteration is off, remove headers_stop_iteration from the plugin configuration",
        );
    }
}
