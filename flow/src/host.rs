//! What the exchange needs from the proxy, as a trait: the proxy-wasm
//! filter implements it over host calls, tests and the CLI over memory.
//!
//! Every method is infallible from the flow's point of view: a host that
//! cannot do something says so in the return value (`false`, `None`), and
//! the flow decides what that means (usually: refuse).

use mcp_guard_engine::pii::PiiReport;
use mcp_guard_engine::pins::ToolDigest;
use mcp_guard_engine::Decision;

use crate::timing::Durations;

/// One direction of the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Client to upstream.
    Request,
    /// Upstream to client.
    Response,
}

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something the operator should look at.
    Warn,
    /// Routine information.
    Info,
}

/// What the proxy says about the downstream connection's client
/// certificate (validated by the listener's TLS settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The peer presented a certificate (Envoy's `connection.mtls`).
    pub presented: bool,
    /// The certificate's URI SAN (Envoy's
    /// `connection.uri_san_peer_certificate`: the first one only).
    pub uri_san: Option<String>,
}

/// What a compare-and-swap write of a process-wide value did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedWrite {
    /// Written.
    Written,
    /// The value changed since it was read (another worker wrote it):
    /// read again.
    CasMismatch,
    /// The proxy refused the write.
    Failed,
}

/// Rate-limit events counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimitEvent {
    /// A request refused (or, dry run, that would be) over a limit
    /// (`mcp_ratelimit_over_total`).
    Over,
    /// The rate-limit service could not be asked, or the local store
    /// refused (`mcp_ratelimit_errors_total`).
    Error,
    /// LLM tokens charged to budgets (`mcp_tokens_charged_total`, by the
    /// amount).
    TokensCharged,
}

/// The proxy as the exchange sees it.
pub trait Host {
    /// Every header of one side, names lower case as HTTP/2 has them; one
    /// crossing for the whole map.
    fn headers(&mut self, side: Side) -> Vec<(String, String)>;
    /// One header's value.
    fn header(&mut self, side: Side, name: &str) -> Option<String>;
    /// Sets (replaces) a header.
    fn set_header(&mut self, side: Side, name: &str, value: &str);
    /// Removes a header (every value of it).
    fn remove_header(&mut self, side: Side, name: &str);
    /// Every trailer of one side (only inside that side's trailers
    /// callback).
    fn trailers(&mut self, side: Side) -> Vec<(String, String)>;
    /// Removes a trailer (every value of it).
    fn remove_trailer(&mut self, side: Side, name: &str);
    /// The first `len` bytes of the body buffered so far (the current chunk
    /// when streaming); `None` when the host has no body to give.
    fn body(&mut self, side: Side, len: usize) -> Option<Vec<u8>>;
    /// Replaces the first `len` bytes of that body; `false` when refused.
    fn replace_body(&mut self, side: Side, len: usize, bytes: &[u8]) -> bool;
    /// A property (metadata); `Err` for anything but found / not found.
    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, u32>;
    /// Answers the request locally; `false` when the host refused.
    fn send_reply(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> bool;
    /// Resets the exchange (both directions): the last resort when bytes
    /// already on their way cannot be replaced.
    fn reset(&mut self);
    /// Publishes the decision record for the access log.
    fn publish_record(&mut self, json: &str);
    /// Publishes one flat access-log key ([`crate::record::FLAT_KEYS`]).
    fn publish_field(&mut self, key: &str, value: &str);
    /// The HTTP status the proxy answered the stream with and its
    /// response-code details (read when the stream is logged).
    fn logged_response(&mut self) -> (Option<u32>, Option<String>);
    /// The proxy's clock, milliseconds since the Unix epoch.
    fn now_ms(&mut self) -> u64;
    /// A clock for durations, nanoseconds (the proxy's own clock; only
    /// differences between two readings are used).
    fn now_ns(&mut self) -> u64;
    /// Records what one exchange spent in the filter (latency
    /// histograms), once per exchange.
    fn record_durations(&mut self, durations: &Durations);
    /// Counts one decided request.
    fn count_decision(&mut self, decision: &Decision);
    /// Counts replaced values.
    fn count_redactions(&mut self, report: &PiiReport);
    /// Counts a body refused for what it contained or could not show.
    fn count_refusal(&mut self);
    /// Writes a log line.
    fn log(&mut self, level: Level, message: &str);
    /// Sends an HTTP request to an Envoy cluster for this stream (`headers`
    /// include the pseudo-headers); the answer comes back through
    /// [`crate::Exchange::on_callout_answer`] with the returned id. `None`
    /// when the proxy refused to send it.
    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u64>;
    /// Lets a request the flow paused go on (after a callout answered).
    fn resume_request(&mut self);
    /// The downstream connection's client certificate, as far as the
    /// proxy exposes it; default (nothing) when it cannot say.
    fn peer_certificate(&mut self) -> PeerCertificate;
    /// The tool digest last remembered under `key`, process-wide (every
    /// worker of the proxy sees what any worker remembered).
    fn advertised_tool(&mut self, key: &str) -> Option<ToolDigest>;
    /// Remembers the digest a server advertised for a pinned tool under
    /// `key` ([`crate::pins::memory_key`]), process-wide.
    fn remember_advertised_tool(&mut self, key: &str, digest: ToolDigest);
    /// Counts a pinned tool seen changed (a list answer) or a call to it
    /// denied.
    fn count_tool_pin_mismatch(&mut self);
    /// Makes the proxy choose the request's route again after the flow
    /// set the route header (Envoy caches the route; proxy-wasm's
    /// `clear_route_cache` foreign function, the native module's
    /// `clear_route_cache` callback).
    fn clear_route_cache(&mut self);
    /// Counts one request a routing rule sent to a cluster.
    fn count_route(&mut self);
    /// Counts one answer replaced by the route's fallback cluster's.
    fn count_route_fallback(&mut self);
    /// A process-wide value (every worker of the proxy sees the same)
    /// and its version for [`Host::set_shared_value`]: `Ok(None)` when
    /// absent, `Err` when the proxy cannot say.
    fn shared_value(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, u32>;
    /// Writes a process-wide value if its version is still `cas` (0:
    /// unconditionally). A key that does not exist yet is created
    /// whatever `cas` says (proxy-wasm semantics).
    fn set_shared_value(&mut self, key: &str, value: &[u8], cas: u32) -> SharedWrite;
    /// Counts a rate-limit event (`amount`: 1, or the tokens charged).
    fn count_rate_limit(&mut self, event: RateLimitEvent, amount: u64);
    /// Sends an HTTP request whose answer nobody waits for, from a
    /// context that outlives this stream (the plugin's root context), so
    /// the end of the stream does not cancel it. `false` when refused.
    fn http_call_detached(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> bool;
}
