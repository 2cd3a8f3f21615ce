//! One whole request/response exchange driven through a plugin, as the
//! replay CLI does for each input line.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::HostError;
use crate::http_calls::HttpCall;
use crate::log::LogEntry;
use crate::plugin::Plugin;
use crate::state::LocalReply;
use crate::stream::{ClientResponse, Stream, UpstreamRequest};

/// Bound on HTTP-call failure rounds in one exchange (a filter that keeps
/// dispatching new calls from failure callbacks must not hang the host).
const MAX_CALL_ROUNDS: usize = 100;

/// The client side of an exchange.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestSpec {
    /// Headers including pseudo-headers (`:method`, `:path`, `:authority`).
    pub headers: Vec<(String, String)>,
    /// Body chunks; empty means no body (end of stream on the headers
    /// unless there are trailers).
    pub chunks: Vec<Vec<u8>>,
    /// Trailers ending the request (HTTP/2); empty means none.
    pub trailers: Vec<(String, String)>,
}

/// The upstream side of an exchange.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseSpec {
    /// Headers including `:status` (200 is added when absent).
    pub headers: Vec<(String, String)>,
    /// Body chunks; empty means no body.
    pub chunks: Vec<Vec<u8>>,
    /// Trailers ending the response; empty means none.
    pub trailers: Vec<(String, String)>,
}

/// Everything needed to replay one exchange.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exchange {
    /// `(metadata key, claims)` stored as `jwt_authn` would.
    pub jwt_payload: Option<(String, Value)>,
    /// Stream properties: path segments and value (strings are raw bytes,
    /// other JSON values use the Envoy encoding).
    pub properties: Vec<(Vec<String>, Value)>,
    /// What the client sends.
    pub request: RequestSpec,
    /// What upstream answers if the request reaches it; `None` means
    /// status 200, no headers, no body.
    pub response: Option<ResponseSpec>,
}

/// Everything observable after an exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeResult {
    /// The local reply the filter sent, if any.
    pub local_reply: Option<LocalReply>,
    /// What reached upstream; `None` if the request never left the filter.
    pub upstream_request: Option<UpstreamRequest>,
    /// What reached the client; `None` if nothing did (stalled).
    pub response: Option<ClientResponse>,
    /// Filter state written by the filter (`wasm.*` keys).
    pub filter_state: BTreeMap<String, String>,
    /// All metric values of the VM after the exchange (they accumulate).
    pub metrics: BTreeMap<String, u64>,
    /// Log lines produced during this exchange.
    pub logs: Vec<LogEntry>,
    /// Data ended up held at the filter with nothing to resume it.
    pub stalled: bool,
    /// HTTP calls dispatched during the exchange. Nothing answers them in an
    /// exchange, so they are failed (as an Envoy timeout would) before the
    /// exchange moves on.
    pub http_calls: Vec<HttpCall>,
}

fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// Fails every pending call of the stream, repeatedly, since failure
/// callbacks may dispatch more.
fn fail_pending(stream: &Stream) -> Result<(), HostError> {
    for _ in 0..MAX_CALL_ROUNDS {
        let pending = stream.pending_http_calls();
        if pending.is_empty() {
            break;
        }
        for call in pending {
            stream.fail_http_call(call.token)?;
        }
    }
    Ok(())
}

impl Plugin {
    /// Drives one exchange on a new stream: request headers, body chunks
    /// and trailers; then, if the request reached upstream whole and no local
    /// reply was sent, the response headers, chunks and trailers; then the stream is
    /// finished. HTTP calls the filter dispatches are failed (nothing can
    /// answer them here). Errors are traps and misuse; the filter's own
    /// decisions are in the result.
    pub fn run_exchange(&self, exchange: &Exchange) -> Result<ExchangeResult, HostError> {
        let log_mark = self.log_count();
        let call_mark = self.http_call_history().len();
        let stream = self.stream()?;
        let result = self.drive(&stream, exchange);
        let stalled = stream.stalled();
        let finished = stream.finish();
        let outcome = result.and(finished).map(|()| ExchangeResult {
            local_reply: stream.local_reply(),
            upstream_request: stream.upstream_request(),
            response: stream.client_response(),
            filter_state: stream.filter_state(),
            metrics: self.metrics(),
            logs: self.logs_since(log_mark),
            stalled,
            http_calls: self.http_call_history().split_off(call_mark),
        });
        stream.forget();
        outcome
    }

    fn drive(&self, stream: &Stream, exchange: &Exchange) -> Result<(), HostError> {
        if let Some((key, payload)) = &exchange.jwt_payload {
            stream.set_jwt_payload(key, payload.clone());
        }
        for (path, value) in &exchange.properties {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            match value {
                Value::String(s) => stream.set_property(&path, s.as_bytes()),
                other => stream.set_property_json(&path, other.clone()),
            }
        }
        let request = &exchange.request;
        let ends = request.trailers.is_empty();
        stream.request_headers(&pairs(&request.headers), ends && request.chunks.is_empty())?;
        send_chunks(&request.chunks, ends, |chunk, end| {
            stream.request_body(chunk, end)
        })?;
        if !ends {
            stream.request_trailers(&pairs(&request.trailers))?;
        }
        fail_pending(stream)?;
        let reached_upstream = stream.upstream_request().is_some_and(|r| r.complete);
        if stream.local_reply().is_some() || !reached_upstream {
            return Ok(());
        }
        let default = ResponseSpec::default();
        let response = exchange.response.as_ref().unwrap_or(&default);
        let ends = response.trailers.is_empty();
        stream.response_headers(
            &pairs(&response.headers),
            ends && response.chunks.is_empty(),
        )?;
        send_chunks(&response.chunks, ends, |chunk, end| {
            stream.response_body(chunk, end)
        })?;
        if !ends {
            stream.response_trailers(&pairs(&response.trailers))?;
        }
        fail_pending(stream)?;
        Ok(())
    }
}

/// Sends the chunks; the last one carries the end of stream only when
/// `ends` (no trailers follow).
fn send_chunks(
    chunks: &[Vec<u8>],
    ends: bool,
    mut send: impl FnMut(&[u8], bool) -> Result<crate::stream::Action, HostError>,
) -> Result<(), HostError> {
    for (i, chunk) in chunks.iter().enumerate() {
        send(chunk, ends && i + 1 == chunks.len())?;
    }
    Ok(())
}
