//! Everything the hostcalls read and write: the wasmtime store data.
//!
//! One [`HostState`] per VM. It holds VM-wide state (logs, time, metrics,
//! shared data, HTTP calls, root properties) and one [`StreamState`] per
//! HTTP stream context. Hostcalls act on the *effective* context, which the
//! host sets before every callback and the guest may change with
//! `proxy_set_effective_context`.

use std::collections::{BTreeMap, BTreeSet};

use wasmtime::{Memory, StoreLimits, TypedFunc};

use crate::header_map::HeaderMap;
use crate::http_calls::HttpCalls;
use crate::log::{LogLevel, LogSink};
use crate::metrics::Metrics;
use crate::properties::PropertyTree;
use crate::rng::Rng;
use crate::shared_data::SharedDataHandle;

/// A local reply the filter asked for with `proxy_send_local_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status code.
    pub status: u32,
    /// Extra headers exactly as the filter passed them.
    pub headers: Vec<(String, String)>,
    /// Body text.
    pub body: Vec<u8>,
    /// Response code details (Envoy's `%RESPONSE_CODE_DETAILS%`).
    pub details: String,
    /// gRPC status, `-1` when none.
    pub grpc_status: i32,
}

impl LocalReply {
    /// The body as text (lossy), for assertions.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// First value of one of the filter's headers.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One direction of a stream: the request (towards upstream) or the response
/// (towards the client), as seen at this filter.
#[derive(Debug, Default)]
pub(crate) struct Direction {
    /// Live headers; the filter reads and edits these.
    pub headers: HeaderMap,
    /// Live trailers once delivered; the filter reads and edits these.
    pub trailers: HeaderMap,
    /// The headers callback has been delivered.
    pub headers_received: bool,
    /// The headers callback returned `Continue`: Envoy then drops its
    /// pointer to the map, so the header hostcalls answer BadArgument
    /// (except reads during `proxy_on_log`).
    pub headers_gone: bool,
    /// The trailers callback has been delivered (the end of stream).
    pub trailers_received: bool,
    /// The trailers callback returned `Continue`: the map is gone as for
    /// headers.
    pub trailers_gone: bool,
    /// The last body callback answered StopIterationAndBuffer and the data
    /// has not moved on: the whole buffered body stays visible and
    /// replaceable, e.g. from the trailers callback.
    pub buffering: bool,
    /// A body callback is running: its data is visible even when streaming.
    pub in_body_callback: bool,
    /// Headers are held: the callback paused and nothing resumed them yet.
    pub headers_held: bool,
    /// Body bytes held at this filter; what `get_buffer_bytes` shows.
    pub body: Vec<u8>,
    /// `end_of_stream` has been delivered to the filter.
    pub end_received: bool,
    /// Headers as they left the filter (snapshot at release time).
    pub sent_headers: Option<HeaderMap>,
    /// Body chunks as they left the filter.
    pub sent_chunks: Vec<Vec<u8>>,
    /// Trailers as they left the filter, when the stream ended with some.
    pub sent_trailers: Option<HeaderMap>,
    /// The end of stream has left the filter.
    pub complete: bool,
    /// The filter called `proxy_continue_stream` for this direction.
    pub resume_requested: bool,
    /// Headers paused without `allow_on_headers_stop_iteration`: Envoy
    /// stops the whole direction (StopAllIterationAndWatermark) and
    /// buffers data and trailers without calling the filter.
    pub stopped_all: bool,
}

impl Direction {
    /// Data is held here with nothing left to arrive: without a resume the
    /// stream cannot progress.
    pub fn stalled(&self) -> bool {
        self.end_received && !self.complete
    }

    /// Whether the body hostcalls reach this direction's data now: during a
    /// body callback, or while the filter buffers (Envoy answers NotFound /
    /// BadArgument otherwise, e.g. at trailers after streaming bodies).
    pub fn body_available(&self) -> bool {
        self.in_body_callback || self.buffering
    }
}

/// State of one HTTP stream context.
#[derive(Debug, Default)]
pub(crate) struct StreamState {
    pub request: Direction,
    pub response: Direction,
    /// Properties the test set for this stream (overlay on the root tree).
    pub properties: PropertyTree,
    /// Filter state written by the filter (`wasm.` keys).
    pub filter_state: BTreeMap<String, Vec<u8>>,
    /// The first local reply the filter sent.
    pub local_reply: Option<LocalReply>,
    /// The local reply is recorded but not yet run through the response path.
    pub local_reply_pending: bool,
    /// The local reply has been run through the response path.
    pub local_reply_injected: bool,
    /// The filter reset the stream with `proxy_close_stream`.
    pub reset: bool,
    /// `finish()` ran: `proxy_on_delete` was delivered.
    pub finished: bool,
    /// Times the filter called Envoy's `clear_route_cache` foreign
    /// function on this stream.
    pub route_cache_clears: u32,
}

/// The wasmtime store data of one VM.
pub(crate) struct HostState {
    /// The guest's exported memory, once instantiated.
    pub memory: Option<Memory>,
    /// The guest's `proxy_on_memory_allocate`, once instantiated.
    pub alloc: Option<TypedFunc<i32, i32>>,
    /// Memory/table growth limits so a guest cannot exhaust the host.
    pub limits: StoreLimits,
    /// Id of the root context.
    pub root_id: u32,
    /// VM id used by shared queues.
    pub vm_id: String,
    /// Context the hostcalls act on.
    pub effective: u32,
    /// `proxy_on_log` is running: Envoy shows the access-log copies of the
    /// request headers, response headers and response trailers, read-only.
    pub in_log: bool,
    /// Level returned by `proxy_get_log_level`; lower lines are dropped.
    pub log_level: LogLevel,
    pub logs: LogSink,
    /// Host time in ns since the Unix epoch; moves only when told to.
    pub now_nanos: u64,
    /// Tick period set by the guest, 0 when none.
    pub tick_period_ms: u32,
    pub vm_config: Vec<u8>,
    /// Plugin configuration, visible only during `proxy_on_configure`.
    pub plugin_config: Option<Vec<u8>>,
    pub root_properties: PropertyTree,
    pub root_filter_state: BTreeMap<String, Vec<u8>>,
    pub streams: BTreeMap<u32, StreamState>,
    /// Id the next stream context gets.
    pub next_context_id: u32,
    pub http: HttpCalls,
    /// When set, `proxy_http_call` to any other cluster fails like Envoy's
    /// "cluster not found".
    pub known_clusters: Option<BTreeSet<String>>,
    pub metrics: Metrics,
    pub shared: SharedDataHandle,
    pub rng: Rng,
    /// Envoy's `allow_on_headers_stop_iteration` ([`crate::PluginOptions`]).
    pub headers_stop_iteration: bool,
}

impl HostState {
    /// The live stream the hostcalls currently act on, if the effective
    /// context is one.
    pub fn stream(&self) -> Option<&StreamState> {
        self.streams.get(&self.effective).filter(|s| !s.finished)
    }

    /// Mutable form of [`HostState::stream`].
    pub fn stream_mut(&mut self) -> Option<&mut StreamState> {
        self.streams
            .get_mut(&self.effective)
            .filter(|s| !s.finished)
    }

    /// Whether `id` names a context that exists (root or live stream).
    pub fn context_exists(&self, id: u32) -> bool {
        id == self.root_id || self.streams.get(&id).is_some_and(|s| !s.finished)
    }
}
