//! The test-facing handle on one HTTP stream.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::Value;

use crate::error::HostError;
use crate::flow::Side;
use crate::header_map::HeaderMap;
use crate::http_calls::{HttpCall, HttpCallResponse};
use crate::properties::{PropertyValue, JWT_AUTHN_METADATA};
use crate::state::{Direction, LocalReply, StreamState};
use crate::vm::Vm;

/// What a header or body callback returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 0: let the data go on. Also reported when the module does not export
    /// the callback (Envoy then continues).
    Continue,
    /// 1: StopIteration for headers, StopIterationAndBuffer for bodies.
    Pause,
    /// Any other value; the host holds the data as for `Pause`.
    Other(u32),
    /// The callback was not delivered: the stream had already been answered
    /// by a local reply, reset, or finished (Envoy stops calling the filter).
    NotCalled,
}

impl Action {
    pub(crate) fn from_raw(raw: Option<i32>) -> Action {
        match raw {
            None | Some(0) => Action::Continue,
            Some(1) => Action::Pause,
            Some(other) => Action::Other(other as u32),
        }
    }
}

/// What reached upstream: headers as the filter left them and the body
/// chunks it released.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRequest {
    /// Headers, pseudo-headers included.
    pub headers: Vec<(String, String)>,
    /// All released chunks concatenated.
    pub body: Vec<u8>,
    /// Chunks in the order they were released.
    pub chunks: Vec<Vec<u8>>,
    /// Trailers as the filter left them; empty when the request had none.
    pub trailers: Vec<(String, String)>,
    /// The end of stream was released too.
    pub complete: bool,
}

/// What reached the client: the upstream response or the local reply, after
/// the filter's response callbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// `:status`, or 0 when missing or not a number.
    pub status: u16,
    /// Headers, `:status` included.
    pub headers: Vec<(String, String)>,
    /// All released chunks concatenated.
    pub body: Vec<u8>,
    /// Chunks in the order they were released.
    pub chunks: Vec<Vec<u8>>,
    /// Trailers as the filter left them; empty when the response had none.
    pub trailers: Vec<(String, String)>,
    /// The end of stream was released too.
    pub complete: bool,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
}

/// `(declared, actual)` when a complete message carries a `content-length`
/// that its body does not match. Envoy forwards such a message unchanged
/// (it does not fix `content-length` when a filter replaces a body) and the
/// peer rejects it: an h2 upstream resets the stream, an h2 client flags a
/// protocol error.
fn length_mismatch(
    headers: &[(String, String)],
    body: &[u8],
    complete: bool,
) -> Option<(String, usize)> {
    let declared = header(headers, "content-length")?;
    let matches = declared.trim().parse::<usize>().ok() == Some(body.len());
    (complete && !matches).then(|| (declared.to_string(), body.len()))
}

impl UpstreamRequest {
    /// First value of a header (names are lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// First value of a trailer (names are lower-case).
    pub fn trailer(&self, name: &str) -> Option<&str> {
        header(&self.trailers, name)
    }

    /// `(content-length value, body length)` when they disagree on a
    /// complete request: a real upstream would reject it.
    pub fn content_length_mismatch(&self) -> Option<(String, usize)> {
        length_mismatch(&self.headers, &self.body, self.complete)
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl ClientResponse {
    /// First value of a header (names are lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// First value of a trailer (names are lower-case).
    pub fn trailer(&self, name: &str) -> Option<&str> {
        header(&self.trailers, name)
    }

    /// `(content-length value, body length)` when they disagree on a
    /// complete response: a real client would see a protocol error.
    pub fn content_length_mismatch(&self) -> Option<(String, usize)> {
        length_mismatch(&self.headers, &self.body, self.complete)
    }

    /// The body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What left the filter in one direction.
struct Sent {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunks: Vec<Vec<u8>>,
    trailers: Vec<(String, String)>,
    complete: bool,
}

/// What left the filter in one direction, or `None` if the headers never did.
fn sent(d: &Direction) -> Option<Sent> {
    Some(Sent {
        headers: d.sent_headers.as_ref()?.to_pairs(),
        body: d.sent_chunks.concat(),
        chunks: d.sent_chunks.clone(),
        trailers: d
            .sent_trailers
            .as_ref()
            .map(HeaderMap::to_pairs)
            .unwrap_or_default(),
        complete: d.complete,
    })
}

/// One HTTP stream context of a [`crate::Plugin`].
///
/// Drive it like Envoy would (request headers, request body, request
/// trailers, response headers, response body, response trailers) and
/// inspect what the filter let through. The
/// handle shares the VM with its plugin, so the plugin stays usable (e.g. to
/// answer HTTP calls) while streams are open, and several streams may be
/// interleaved.
pub struct Stream {
    vm: Rc<RefCell<Vm>>,
    id: u32,
}

impl Stream {
    pub(crate) fn new(vm: Rc<RefCell<Vm>>, id: u32) -> Stream {
        Stream { vm, id }
    }

    /// The context id the filter sees.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn with<R>(&self, f: impl FnOnce(&StreamState) -> R) -> Option<R> {
        self.vm.borrow().state().streams.get(&self.id).map(f)
    }

    fn with_mut<R>(&self, f: impl FnOnce(&mut StreamState) -> R) -> Option<R> {
        self.vm
            .borrow_mut()
            .state_mut()
            .streams
            .get_mut(&self.id)
            .map(f)
    }

    /// Sets a property for this stream only, as raw bytes (e.g.
    /// `["request", "id"]`, `["source", "address"]`). Stream properties take
    /// precedence over root ones.
    pub fn set_property(&self, path: &[&str], value: impl AsRef<[u8]>) {
        let value = PropertyValue::Raw(value.as_ref().to_vec());
        self.with_mut(|s| s.properties.set(path, value));
    }

    /// Sets a property for this stream as a JSON value, encoded the way
    /// Envoy encodes metadata values.
    pub fn set_property_json(&self, path: &[&str], value: Value) {
        self.with_mut(|s| s.properties.set(path, PropertyValue::Json(value)));
    }

    /// Stores a verified JWT payload as `jwt_authn` does, under
    /// `metadata.filter_metadata.envoy.filters.http.jwt_authn.<key>`: the
    /// property `metadata` then reads as the protobuf `Metadata` holding it
    /// (what the filter reads), the map path as the pairs-encoded claims map
    /// and `<key>.<claim>` as one encoded claim.
    pub fn set_jwt_payload(&self, key: &str, payload: Value) {
        let mut path: Vec<&str> = JWT_AUTHN_METADATA.to_vec();
        path.push(key);
        self.set_property_json(&path, payload);
    }

    /// Delivers request headers (`proxy_on_request_headers`). Names are
    /// lower-cased; include pseudo-headers (`:method`, `:path`,
    /// `:authority`) as Envoy would.
    pub fn request_headers(
        &self,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action, HostError> {
        let headers = HeaderMap::from_pairs(headers);
        self.vm
            .borrow_mut()
            .deliver_headers(self.id, Side::Request, headers, end_of_stream)
    }

    /// Delivers a request body chunk (`proxy_on_request_body`).
    pub fn request_body(&self, chunk: &[u8], end_of_stream: bool) -> Result<Action, HostError> {
        self.vm
            .borrow_mut()
            .deliver_body(self.id, Side::Request, chunk, end_of_stream)
    }

    /// Delivers request trailers (`proxy_on_request_trailers`): the end of
    /// the request, as for an HTTP/2 client (or HTTP/1.1 with Envoy's
    /// `enable_trailers`); the last body chunk must then have been sent with
    /// `end_of_stream = false`, and Envoy never sends an end-of-stream body
    /// callback. A buffered (paused) body is visible and replaceable in the
    /// callback; `Continue` releases held headers, body and trailers,
    /// `Pause` holds them until a resume or a local reply.
    pub fn request_trailers(&self, trailers: &[(&str, &str)]) -> Result<Action, HostError> {
        self.vm.borrow_mut().deliver_trailers(
            self.id,
            Side::Request,
            HeaderMap::from_pairs(trailers),
        )
    }

    /// Delivers upstream response headers (`proxy_on_response_headers`).
    /// `:status: 200` is added first when absent. Fails if the request never
    /// reached upstream; not called after a local reply.
    pub fn response_headers(
        &self,
        headers: &[(&str, &str)],
        end_of_stream: bool,
    ) -> Result<Action, HostError> {
        let mut map = HeaderMap::default();
        if !headers.iter().any(|(k, _)| *k == ":status") {
            map.add(b":status", b"200");
        }
        for (k, v) in headers {
            map.add(k.as_bytes(), v.as_bytes());
        }
        self.vm
            .borrow_mut()
            .deliver_headers(self.id, Side::Response, map, end_of_stream)
    }

    /// Delivers an upstream response body chunk (`proxy_on_response_body`).
    pub fn response_body(&self, chunk: &[u8], end_of_stream: bool) -> Result<Action, HostError> {
        self.vm
            .borrow_mut()
            .deliver_body(self.id, Side::Response, chunk, end_of_stream)
    }

    /// Delivers upstream response trailers (`proxy_on_response_trailers`),
    /// the end of the response; same rules as [`Stream::request_trailers`].
    pub fn response_trailers(&self, trailers: &[(&str, &str)]) -> Result<Action, HostError> {
        self.vm.borrow_mut().deliver_trailers(
            self.id,
            Side::Response,
            HeaderMap::from_pairs(trailers),
        )
    }

    /// Times the filter asked Envoy to choose this stream's route again
    /// (`clear_route_cache`).
    pub fn route_cache_clears(&self) -> u32 {
        self.with(|s| s.route_cache_clears).unwrap_or(0)
    }

    /// The local reply the filter sent, if any.
    pub fn local_reply(&self) -> Option<LocalReply> {
        self.with(|s| s.local_reply.clone()).flatten()
    }

    /// What reached upstream, or `None` if the request headers never left
    /// the filter (held, or answered locally).
    pub fn upstream_request(&self) -> Option<UpstreamRequest> {
        let sent = self.with(|s| sent(&s.request)).flatten()?;
        Some(UpstreamRequest {
            headers: sent.headers,
            body: sent.body,
            chunks: sent.chunks,
            trailers: sent.trailers,
            complete: sent.complete,
        })
    }

    /// What reached the client, or `None` if no response headers left the
    /// filter yet.
    pub fn client_response(&self) -> Option<ClientResponse> {
        let sent = self.with(|s| sent(&s.response)).flatten()?;
        let status = header(&sent.headers, ":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Some(ClientResponse {
            status,
            headers: sent.headers,
            body: sent.body,
            chunks: sent.chunks,
            trailers: sent.trailers,
            complete: sent.complete,
        })
    }

    /// The request headers as the filter currently sees them (live map).
    pub fn current_request_headers(&self) -> Vec<(String, String)> {
        self.with(|s| s.request.headers.to_pairs())
            .unwrap_or_default()
    }

    /// The response headers as the filter currently sees them (live map).
    pub fn current_response_headers(&self) -> Vec<(String, String)> {
        self.with(|s| s.response.headers.to_pairs())
            .unwrap_or_default()
    }

    /// The request trailers as the filter currently sees them (live map;
    /// empty before they arrive).
    pub fn current_request_trailers(&self) -> Vec<(String, String)> {
        self.with(|s| s.request.trailers.to_pairs())
            .unwrap_or_default()
    }

    /// The response trailers as the filter currently sees them (live map).
    pub fn current_response_trailers(&self) -> Vec<(String, String)> {
        self.with(|s| s.response.trailers.to_pairs())
            .unwrap_or_default()
    }

    /// Filter state the filter wrote with `set_property`, as text, keyed like
    /// Envoy (`wasm.<name>`).
    pub fn filter_state(&self) -> BTreeMap<String, String> {
        self.filter_state_bytes()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect()
    }

    /// Filter state as raw bytes.
    pub fn filter_state_bytes(&self) -> BTreeMap<String, Vec<u8>> {
        self.with(|s| s.filter_state.clone()).unwrap_or_default()
    }

    /// True when data reached the end of stream at the filter but is still
    /// held there: without a resume (e.g. an HTTP call answer) the stream
    /// would hang in Envoy.
    pub fn stalled(&self) -> bool {
        self.with(|s| {
            !s.reset
                && !s.finished
                && ((s.local_reply.is_none() && s.request.stalled()) || s.response.stalled())
        })
        .unwrap_or(false)
    }

    /// True when the filter reset the stream (`proxy_close_stream`), or a
    /// local reply came after response headers had reached the client.
    pub fn was_reset(&self) -> bool {
        self.with(|s| s.reset).unwrap_or(false)
    }

    /// Pending HTTP calls dispatched by this stream.
    pub fn pending_http_calls(&self) -> Vec<HttpCall> {
        self.vm
            .borrow()
            .state()
            .http
            .pending
            .values()
            .filter(|c| c.context_id == self.id)
            .cloned()
            .collect()
    }

    /// Answers a pending HTTP call (same as [`crate::Plugin::respond_http_call`]).
    pub fn respond_http_call(
        &self,
        token: u32,
        response: &HttpCallResponse,
    ) -> Result<(), HostError> {
        self.vm.borrow_mut().answer_http_call(token, Some(response))
    }

    /// Fails a pending HTTP call (same as [`crate::Plugin::fail_http_call`]).
    pub fn fail_http_call(&self, token: u32) -> Result<(), HostError> {
        self.vm.borrow_mut().answer_http_call(token, None)
    }

    /// Ends the stream: `proxy_on_log`, `proxy_on_done`, `proxy_on_delete`.
    /// Results stay inspectable afterwards. Calling it twice is harmless.
    pub fn finish(&self) -> Result<(), HostError> {
        self.vm.borrow_mut().finish_stream(self.id)
    }

    /// Frees the host-side record of a finished stream (long replays).
    pub(crate) fn forget(&self) {
        self.vm.borrow_mut().state_mut().streams.remove(&self.id);
    }
}

/// Dropping the last handle ends the stream as Envoy would (`on_log`,
/// `on_done`, `on_delete` if not done yet) and frees its record, so long
/// runs (benchmarks, replays) cost the same per stream at the end as at the
/// start.
impl Drop for Stream {
    fn drop(&mut self) {
        if let Ok(mut vm) = self.vm.try_borrow_mut() {
            let _ = vm.finish_stream(self.id);
            vm.state_mut().streams.remove(&self.id);
        }
    }
}
