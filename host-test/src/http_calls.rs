//! HTTP calls dispatched by the guest (`proxy_http_call`) and their answers.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::header_map::HeaderMap;

/// A call the guest dispatched and the test has not answered yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Token returned to the guest; pass it to `respond_http_call`.
    pub token: u32,
    /// Context that dispatched it; the answer is delivered there.
    pub context_id: u32,
    /// Upstream cluster name.
    pub upstream: String,
    /// Request headers, including `:method`, `:path`, `:authority`.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Vec<u8>,
    /// Request trailers.
    pub trailers: Vec<(String, String)>,
    /// Timeout the guest asked for.
    pub timeout: Duration,
    /// Host time (ns since the epoch) when the call was dispatched.
    pub dispatched_at_nanos: u64,
}

impl HttpCall {
    /// First value of a request header (names are lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Host time (ns) after which Envoy would fail the call with a timeout.
    pub fn deadline_nanos(&self) -> u64 {
        let timeout = u64::try_from(self.timeout.as_nanos()).unwrap_or(u64::MAX);
        self.dispatched_at_nanos.saturating_add(timeout)
    }
}

/// The answer a test gives to an [`HttpCall`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpCallResponse {
    /// HTTP status, delivered as the `:status` header.
    pub status: u16,
    /// Response headers (without `:status`, which is added).
    pub headers: Vec<(String, String)>,
    /// Response body.
    pub body: Vec<u8>,
    /// Response trailers.
    pub trailers: Vec<(String, String)>,
}

impl HttpCallResponse {
    /// A response with a status and body and no extra headers.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
            ..Self::default()
        }
    }

    /// Adds a header (builder style).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// The call answer visible to the guest during `proxy_on_http_call_response`.
#[derive(Debug, Default)]
pub(crate) struct ActiveResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// Pending calls of one VM and the answer being delivered, if any.
#[derive(Debug, Default)]
pub(crate) struct HttpCalls {
    pub pending: BTreeMap<u32, HttpCall>,
    last_token: u32,
    pub active: Option<ActiveResponse>,
    /// Every call ever dispatched, in order, for reports.
    pub history: Vec<HttpCall>,
}

impl HttpCalls {
    /// Records a new call and returns its token (tokens start at 1).
    pub fn dispatch(&mut self, mut call: HttpCall) -> u32 {
        self.last_token = self.last_token.wrapping_add(1).max(1);
        call.token = self.last_token;
        self.history.push(call.clone());
        self.pending.insert(call.token, call);
        self.last_token
    }

    /// Drops the pending calls of a context that went away (Envoy cancels
    /// them when the stream is destroyed).
    pub fn cancel_for(&mut self, context_id: u32) {
        self.pending.retain(|_, call| call.context_id != context_id);
    }
}
