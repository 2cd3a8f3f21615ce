//! An in-memory [`Host`]: what an exchange did, without a proxy. Tests
//! drive the state machine with it; the CLI explains requests with it.
//!
//! Bodies behave as Envoy's do for a filter: while the flow pauses, body
//! chunks accumulate and each callback sees everything buffered so far;
//! once it continues, each callback sees only its own chunk.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use mcp_guard_engine::pii::PiiReport;
use mcp_guard_engine::pins::ToolDigest;
use mcp_guard_engine::{Decision, Effect};

use crate::envoy_proto::metadata_message;
use crate::host::{Host, Level, PeerCertificate, RateLimitEvent, SharedWrite, Side};
use crate::timing::Durations;

/// A local reply the flow sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u32,
    /// Response-code details.
    pub details: String,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Counters the flow bumped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Allowed requests.
    pub allowed: u64,
    /// Denied requests.
    pub denied: u64,
    /// Values replaced.
    pub redactions: u64,
    /// Bodies refused.
    pub refusals: u64,
    /// Pinned tools seen changed (list answers) or calls denied for one.
    pub tool_pin_mismatches: u64,
    /// Requests a routing rule sent to a cluster.
    pub routes: u64,
    /// Answers replaced by a fallback cluster's.
    pub route_fallbacks: u64,
    /// Route-cache clears asked for.
    pub route_cache_clears: u64,
}

/// One direction's live state.
#[derive(Debug, Clone, Default)]
pub struct Direction {
    /// Header map (names lower case).
    pub headers: Vec<(String, String)>,
    /// The body buffer the current callback sees.
    pub body: Vec<u8>,
    /// Trailer map.
    pub trailers: Vec<(String, String)>,
}

/// The in-memory proxy.
#[derive(Debug, Default)]
pub struct MemoryHost {
    /// Request side.
    pub request: Direction,
    /// Response side.
    pub response: Direction,
    /// Properties by NUL-joined path.
    pub properties: BTreeMap<String, Vec<u8>>,
    /// Local replies sent (more than one is a bug the tests look for).
    pub replies: Vec<Reply>,
    /// Every record published, last one current.
    pub records: Vec<String>,
    /// Flat access-log keys published with the sealed record.
    pub fields: BTreeMap<String, String>,
    /// Counters.
    pub counts: Counts,
    /// Log lines.
    pub logs: Vec<String>,
    /// Clock.
    pub now_ms: u64,
    /// Duration clock, nanoseconds; each reading advances it by
    /// `clock_step_ns` so tests see callbacks take time.
    pub clock_ns: u64,
    /// How far each `now_ns` reading moves the duration clock.
    pub clock_step_ns: u64,
    /// Durations recorded, one entry per finished exchange.
    pub durations: Vec<Durations>,
    /// Whether the flow reset the exchange.
    pub reset: bool,
    /// When set, body replacements are refused (hosts that cannot write
    /// at some callback).
    pub refuse_body_writes: bool,
    /// HTTP calls the flow sent, in order.
    pub callouts: Vec<Callout>,
    /// When set, HTTP calls are refused.
    pub refuse_callouts: bool,
    /// How many times the flow resumed a paused request.
    pub resumed: u32,
    /// The downstream client certificate (mTLS), if any.
    pub peer: PeerCertificate,
    /// Tool digests remembered by key: the process-wide memory of a real
    /// proxy; tests carry it from one exchange's host to the next.
    pub advertised_tools: BTreeMap<String, ToolDigest>,
    /// Process-wide values with their versions: clone the handle into
    /// several hosts to play several workers of one proxy.
    pub shared: SharedStore,
    /// Rate-limit events counted: over, errors, tokens charged.
    pub rate_limit_counts: (u64, u64, u64),
    /// Calls sent detached (nobody waits for their answer).
    pub detached: Vec<Callout>,
}

/// Shared data as Envoy keeps it: a version per key, compare-and-swap
/// on writes to existing keys, creation unconditional.
#[derive(Debug, Clone, Default)]
pub struct SharedStore(Arc<Mutex<(SharedMap, u32)>>);

/// Values with their versions, by key.
type SharedMap = BTreeMap<String, (Vec<u8>, u32)>;

impl SharedStore {
    /// The value and version under `key`.
    pub fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.0.get(key).cloned()
    }

    /// Writes `value` if `cas` is 0 or the current version.
    pub fn set(&self, key: &str, value: &[u8], cas: u32) -> SharedWrite {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (map, next) = &mut *guard;
        *next = next.wrapping_add(1).max(1);
        let version = *next;
        match map.get_mut(key) {
            Some(entry) if cas != 0 && cas != entry.1 => SharedWrite::CasMismatch,
            Some(entry) => {
                *entry = (value.to_vec(), version);
                SharedWrite::Written
            }
            None => {
                map.insert(key.to_owned(), (value.to_vec(), version));
                SharedWrite::Written
            }
        }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .len()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An HTTP call the flow sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Callout {
    /// Its id (1, 2, ...).
    pub id: u64,
    /// Envoy cluster.
    pub cluster: String,
    /// Headers, pseudo-headers included.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Timeout.
    pub timeout_ms: u64,
}

impl Callout {
    /// One header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn key(path: &[&str]) -> String {
    path.join("\0")
}

impl MemoryHost {
    /// A host whose clock reads `now_ms`.
    pub fn at(now_ms: u64) -> Self {
        Self {
            now_ms,
            ..Self::default()
        }
    }

    /// Sets a property.
    pub fn set_property(&mut self, path: &[&str], value: impl Into<Vec<u8>>) {
        self.properties.insert(key(path), value.into());
    }

    /// Sets the caller's verified claims the way Envoy's `jwt_authn`
    /// exposes them under `payload_key`.
    pub fn set_claims(&mut self, payload_key: &str, claims: &serde_json::Value) {
        let metadata = serde_json::json!({"filter_metadata": {
            "envoy.filters.http.jwt_authn": {payload_key: claims}
        }});
        self.set_property(&["metadata"], metadata_message(&metadata));
    }

    /// Sets the peer as an mTLS client certificate with this URI SAN.
    pub fn set_peer_uri_san(&mut self, uri_san: &str) {
        self.peer = PeerCertificate {
            presented: true,
            uri_san: Some(uri_san.to_owned()),
        };
    }

    /// The current decision record, parsed.
    pub fn record(&self) -> Option<serde_json::Value> {
        serde_json::from_str(self.records.last()?).ok()
    }

    fn side(&mut self, side: Side) -> &mut Direction {
        match side {
            Side::Request => &mut self.request,
            Side::Response => &mut self.response,
        }
    }
}

impl Host for MemoryHost {
    fn headers(&mut self, side: Side) -> Vec<(String, String)> {
        self.side(side).headers.clone()
    }

    fn header(&mut self, side: Side, name: &str) -> Option<String> {
        self.side(side)
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    fn set_header(&mut self, side: Side, name: &str, value: &str) {
        let headers = &mut self.side(side).headers;
        headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        headers.push((name.to_ascii_lowercase(), value.to_owned()));
    }

    fn remove_header(&mut self, side: Side, name: &str) {
        self.side(side)
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    fn trailers(&mut self, side: Side) -> Vec<(String, String)> {
        self.side(side).trailers.clone()
    }

    fn remove_trailer(&mut self, side: Side, name: &str) {
        self.side(side)
            .trailers
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    fn body(&mut self, side: Side, len: usize) -> Option<Vec<u8>> {
        let body = &self.side(side).body;
        body.get(..len.min(body.len())).map(<[u8]>::to_vec)
    }

    fn replace_body(&mut self, side: Side, len: usize, bytes: &[u8]) -> bool {
        if self.refuse_body_writes {
            return false;
        }
        let body = &mut self.side(side).body;
        let end = len.min(body.len());
        body.splice(..end, bytes.iter().copied());
        true
    }

    fn peer_certificate(&mut self) -> PeerCertificate {
        self.peer.clone()
    }

    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, u32> {
        Ok(self.properties.get(&key(path)).cloned())
    }

    fn send_reply(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> bool {
        self.replies.push(Reply {
            status,
            details: details.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
        });
        true
    }

    fn reset(&mut self) {
        self.reset = true;
    }

    fn publish_record(&mut self, json: &str) {
        self.records.push(json.to_owned());
    }

    fn publish_field(&mut self, key: &str, value: &str) {
        self.fields.insert(key.to_owned(), value.to_owned());
    }

    fn logged_response(&mut self) -> (Option<u32>, Option<String>) {
        match self.replies.last() {
            Some(r) => (Some(r.status), Some(r.details.clone())),
            None => (
                self.response
                    .headers
                    .iter()
                    .find(|(k, _)| k == ":status")
                    .and_then(|(_, v)| v.parse().ok()),
                Some("via_upstream".to_owned()),
            ),
        }
    }

    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }

    fn now_ns(&mut self) -> u64 {
        let now = self.clock_ns;
        self.clock_ns = self.clock_ns.saturating_add(self.clock_step_ns);
        now
    }

    fn record_durations(&mut self, durations: &Durations) {
        self.durations.push(*durations);
    }

    fn count_decision(&mut self, decision: &Decision) {
        match decision.effect {
            Effect::Allow => self.counts.allowed += 1,
            Effect::Deny => self.counts.denied += 1,
        }
    }

    fn count_redactions(&mut self, report: &PiiReport) {
        self.counts.redactions += report.total() as u64;
    }

    fn count_refusal(&mut self) {
        self.counts.refusals += 1;
    }

    fn log(&mut self, level: Level, message: &str) {
        self.logs.push(format!("{level:?}: {message}"));
    }

    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u64> {
        if self.refuse_callouts {
            return None;
        }
        let id = self.callouts.len() as u64 + 1;
        self.callouts.push(Callout {
            id,
            cluster: cluster.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
            timeout_ms,
        });
        Some(id)
    }

    fn resume_request(&mut self) {
        self.resumed += 1;
    }

    fn advertised_tool(&mut self, key: &str) -> Option<ToolDigest> {
        self.advertised_tools.get(key).copied()
    }

    fn remember_advertised_tool(&mut self, key: &str, digest: ToolDigest) {
        self.advertised_tools.insert(key.to_owned(), digest);
    }

    fn count_tool_pin_mismatch(&mut self) {
        self.counts.tool_pin_mismatches += 1;
    }

    fn clear_route_cache(&mut self) {
        self.counts.route_cache_clears += 1;
    }

    fn count_route(&mut self) {
        self.counts.routes += 1;
    }

    fn count_route_fallback(&mut self) {
        self.counts.route_fallbacks += 1;
    }

    fn shared_value(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, u32> {
        Ok(self.shared.get(key))
    }

    fn set_shared_value(&mut self, key: &str, value: &[u8], cas: u32) -> SharedWrite {
        self.shared.set(key, value, cas)
    }

    fn count_rate_limit(&mut self, event: RateLimitEvent, amount: u64) {
        let c = &mut self.rate_limit_counts;
        match event {
            RateLimitEvent::Over => c.0 += amount,
            RateLimitEvent::Error => c.1 += amount,
            RateLimitEvent::TokensCharged => c.2 += amount,
        }
    }

    fn http_call_detached(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> bool {
        if self.refuse_callouts {
            return false;
        }
        self.detached.push(Callout {
            id: 0,
            cluster: cluster.to_owned(),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: body.to_vec(),
            timeout_ms,
        });
        true
    }
}

/// Delivers a response body cut at `cuts` (then trailers, when asked) to
/// an exchange as Envoy does — chunks accumulate while the flow pauses,
/// each callback sees only its own chunk once it continues — and returns
/// what reached the client. `paused` is whether the exchange paused at
/// the response headers.
pub fn deliver_response_body(
    ex: &mut crate::Exchange,
    host: &mut MemoryHost,
    body: &[u8],
    cuts: &[usize],
    trailers: bool,
    paused: bool,
) -> Vec<u8> {
    let mut pieces: Vec<&[u8]> = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        if let Some(piece) = body.get(start..cut).filter(|p| !p.is_empty()) {
            pieces.push(piece);
            start = cut;
        }
    }
    pieces.push(body.get(start..).unwrap_or_default());
    let last = pieces.len().saturating_sub(1);
    let mut client = Vec::new();
    let mut paused = paused;
    for (i, piece) in pieces.iter().enumerate() {
        if !paused {
            host.response.body.clear();
        }
        host.response.body.extend_from_slice(piece);
        let eos = i == last && !trailers;
        let size = host.response.body.len();
        paused = ex.on_response_body(host, size, eos) == crate::Next::Pause;
        if !paused {
            client.extend_from_slice(&host.response.body);
            host.response.body.clear();
        }
    }
    if trailers {
        if !paused {
            host.response.body.clear();
        }
        ex.on_response_trailers(host);
        client.extend_from_slice(&host.response.body);
    }
    client
}
