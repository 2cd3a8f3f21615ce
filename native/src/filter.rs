//! The event hooks Envoy calls (`envoy_dynamic_module_on_http_filter_*`),
//! each a thin shim forwarding to the shared [`Exchange`].
//!
//! No hook may unwind into Envoy (undefined behaviour across `extern "C"`).
//! The code below them is written not to panic (workspace lints), and each
//! hook still runs inside [`guard`]: if a panic ever happens, the stream is
//! refused (a 500 if nothing was sent yet, else a reset) and every later
//! hook of it only holds or drops data. The module is built with
//! `panic = "unwind"` (profile `native-release`) for this to work.

use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mcp_guard_flow::fallback::MAX_CALLOUT_ANSWER_BYTES;
use mcp_guard_flow::token_exchange::CalloutAnswer;
use mcp_guard_flow::{Exchange, Next, Side};

use crate::abi::{
    self, body_status, header_type, headers_status, log_level, trailers_status, EnvoyBuffer,
    EnvoyHeader,
};
use crate::config::{ConfigPtr, Shared};
use crate::host::{self, log, Filter, NativeHost};
use crate::identity::{self, Evidence, JWT_AUTHN_NAMESPACE};
use crate::sync::{Answer, EVENT_FETCH};

/// The ABI version this module was written against, returned to Envoy at
/// load (Envoy logs "Dynamic module ABI version ... matched." when it is
/// its own, and only warns otherwise).
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

/// One stream.
struct Stream {
    shared: Arc<Shared>,
    exchange: Exchange,
    /// The verified payload as a `Metadata` message, read at request
    /// headers (see [`crate::identity`]).
    metadata: Result<Option<Vec<u8>>, u32>,
    /// A hook panicked: the stream was refused; hold or drop from now on.
    poisoned: bool,
    /// A local reply or reset was issued by the panic path.
    answered: bool,
}

/// Runs a hook body; a panic refuses the stream instead of unwinding.
fn guard<T>(
    filter: Filter,
    stream: Option<&mut Stream>,
    refused: T,
    body: impl FnOnce(&mut Stream) -> T,
) -> T {
    let Some(stream) = stream else {
        return refused;
    };
    if stream.poisoned {
        return refused;
    }
    match catch_unwind(AssertUnwindSafe(|| body(stream))) {
        Ok(value) => value,
        Err(_) => {
            stream.poisoned = true;
            log(
                log_level::CRITICAL,
                "mcp-guard hook panicked; the request is refused",
            );
            if !stream.answered {
                stream.answered = true;
                let sent = stream.exchange.decided() || stream.exchange.forwarded();
                if sent {
                    host::reset(filter);
                } else {
                    host::send_response(
                        filter,
                        500,
                        "mcp_guard_internal_error",
                        &[("content-type", "application/json")],
                        br#"{"error":"internal_error"}"#,
                    );
                }
            }
            refused
        }
    }
}

/// The stream behind a module pointer Envoy hands back.
///
/// # Safety
/// `ptr` must be null or a pointer returned by [`envoy_dynamic_module_on_http_filter_new`]
/// not yet destroyed; Envoy calls a stream's hooks one at a time.
unsafe fn stream<'a>(ptr: *const c_void) -> Option<&'a mut Stream> {
    (ptr as *mut Stream).as_mut()
}

/// The configuration behind a module pointer.
///
/// # Safety
/// `ptr` must be null or a pointer returned by the config-new hook not yet
/// destroyed.
unsafe fn shared<'a>(ptr: *const c_void) -> Option<&'a Arc<Shared>> {
    (ptr as *const Arc<Shared>).as_ref()
}

/// Runs `f` with the stream's exchange and a host for this hook.
fn with_host<T>(
    filter: Filter,
    stream: &mut Stream,
    in_body_hook: bool,
    f: impl FnOnce(&mut Exchange, &mut NativeHost<'_>) -> T,
) -> T {
    let mut host = NativeHost {
        filter,
        metrics: &stream.shared.metrics,
        metadata: &stream.metadata,
        in_body_hook,
    };
    f(&mut stream.exchange, &mut host)
}

/// Reads the verified-payload evidence and strips the payload header so
/// the upstream sees the request as the wasm filter forwards it.
fn read_identity(filter: Filter, payload_header: &str) -> Result<Option<Vec<u8>>, u32> {
    let namespace = JWT_AUTHN_NAMESPACE.as_bytes();
    // SAFETY: the live stream of the current hook; buffers outlive calls.
    let count = unsafe {
        abi::envoy_dynamic_module_callback_http_get_metadata_keys_count(
            filter.0,
            abi::METADATA_SOURCE_DYNAMIC,
            abi::ModuleBuffer::of(namespace),
        )
    };
    let mut keys = vec![EnvoyBuffer::EMPTY; count];
    // SAFETY: room for `count` keys.
    let ok = count == 0
        || unsafe {
            abi::envoy_dynamic_module_callback_http_get_metadata_keys(
                filter.0,
                abi::METADATA_SOURCE_DYNAMIC,
                abi::ModuleBuffer::of(namespace),
                keys.as_mut_ptr(),
            )
        };
    if !ok {
        return Err(identity::REFUSED);
    }
    let payloads = host::header_values(filter, header_type::REQUEST_HEADER, payload_header);
    if !payloads.is_empty() {
        host::set_header(filter, header_type::REQUEST_HEADER, payload_header, None);
    }
    let authorization: Vec<String> =
        host::header_values(filter, header_type::REQUEST_HEADER, "authorization")
            .into_iter()
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .collect();
    identity::metadata(&Evidence {
        // SAFETY: Envoy's key bytes, valid for this hook.
        keys: keys
            .into_iter()
            .map(|k| String::from_utf8_lossy(&unsafe { k.to_vec() }).into_owned())
            .collect(),
        payloads,
        authorization: authorization.iter().map(String::as_str).collect(),
    })
}

fn headers_status(next: Next) -> u32 {
    match next {
        Next::Continue => headers_status::CONTINUE,
        Next::Pause => headers_status::STOP_ITERATION,
    }
}

fn body_status(next: Next) -> u32 {
    match next {
        Next::Continue => body_status::CONTINUE,
        Next::Pause => body_status::STOP_ITERATION_AND_BUFFER,
    }
}

fn trailers_status(next: Next) -> u32 {
    match next {
        Next::Continue => trailers_status::CONTINUE,
        Next::Pause => trailers_status::STOP_ITERATION,
    }
}

/// Size of the body so far: what earlier hooks buffered plus this chunk.
fn body_size(filter: Filter, buffered: u32, received: u32) -> usize {
    // SAFETY: the live stream of the current hook.
    unsafe {
        abi::envoy_dynamic_module_callback_http_get_body_size(filter.0, buffered).saturating_add(
            abi::envoy_dynamic_module_callback_http_get_body_size(filter.0, received),
        )
    }
}

/// Module load: returns the ABI version (null would unload the module).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION.as_ptr().cast()
}

/// A filter configuration (main thread): parses the plugin configuration
/// (a `StringValue` in `filter_config`); null refuses it.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: abi::ConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let made = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: Envoy's config bytes, valid for this hook.
        let bytes = unsafe { config.to_vec() };
        let envoy = ConfigPtr(config_envoy);
        let mut shared = match Shared::new(envoy, &bytes) {
            Ok(shared) => shared,
            Err(e) => {
                log(log_level::CRITICAL, &e.to_string());
                return std::ptr::null();
            }
        };
        if let Some(sync) = &mut shared.sync {
            if let Err(e) = sync.start(envoy) {
                log(
                    log_level::CRITICAL,
                    &format!("bundle sync timer not started: {e}"),
                );
                sync.stop();
                return std::ptr::null();
            }
        }
        Box::into_raw(Box::new(Arc::new(shared))) as *const c_void
    }));
    made.unwrap_or(std::ptr::null())
}

/// The configuration goes (main thread, after its last stream).
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    if config.is_null() {
        return;
    }
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: made by `Box::into_raw` in config-new; destroyed once.
        let shared = unsafe { Box::from_raw(config as *mut Arc<Shared>) };
        if let Some(sync) = &shared.sync {
            sync.stop();
        }
    }));
}

/// The timer says a fetch is due (main thread).
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    _config_envoy: abi::ConfigEnvoyPtr,
    config: *const c_void,
    event_id: u64,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a live config pointer from config-new.
        let Some(shared) = (unsafe { shared(config) }) else {
            return;
        };
        if let (Some(sync), EVENT_FETCH) = (&shared.sync, event_id) {
            sync.on_due(shared);
        }
    }));
}

/// A bundle fetch or status report finished (main thread).
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy: abi::ConfigEnvoyPtr,
    config: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_len: usize,
    chunks: *const EnvoyBuffer,
    chunks_len: usize,
) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a live config pointer from config-new.
        let Some(shared) = (unsafe { shared(config) }) else {
            return;
        };
        let Some(sync) = &shared.sync else {
            return;
        };
        // SAFETY: Envoy's arrays (or null), valid for this hook.
        let (headers, chunks) = unsafe { (slice(headers, headers_len), slice(chunks, chunks_len)) };
        let answer = Answer {
            completed: result == abi::CALLOUT_SUCCESS,
            headers: headers
                .iter()
                // SAFETY: as above.
                .map(|h| unsafe { h.to_pair() })
                .collect(),
            // SAFETY: as above.
            body: chunks.iter().flat_map(|c| unsafe { c.to_vec() }).collect(),
        };
        sync.on_answer(shared, callout_id, &answer);
    }));
}

/// A slice over an Envoy array that may be null.
///
/// # Safety
/// `ptr` must be null or point to `len` initialised values valid for `'a`.
unsafe fn slice<'a, T>(ptr: *const T, len: usize) -> &'a [T] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

/// A new stream (worker thread): bound to the policy active now.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter: abi::FilterEnvoyPtr,
) -> *const c_void {
    let made = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: a live config pointer from config-new.
        let Some(shared) = (unsafe { shared(config) }) else {
            return std::ptr::null();
        };
        let stream = Stream {
            exchange: Exchange::new(shared.active())
                .with_exchange_secret(shared.exchange_secret.clone()),
            shared: Arc::clone(shared),
            metadata: Ok(None),
            poisoned: false,
            answered: false,
        };
        Box::into_raw(Box::new(stream)) as *const c_void
    }));
    made.unwrap_or(std::ptr::null())
}

/// The stream's last hook: frees it.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_destroy(stream: *const c_void) {
    if !stream.is_null() {
        // SAFETY: made by `Box::into_raw` in filter-new; destroyed once.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            drop(unsafe { Box::from_raw(stream as *mut Stream) })
        }));
    }
}

/// Request headers.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter: abi::FilterEnvoyPtr,
    stream_ptr: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: Envoy's pointer pair for this stream.
    let (s, filter) = unsafe { (stream(stream_ptr), Filter::from_raw(filter)) };
    guard(filter, s, headers_status::STOP_ITERATION, |s| {
        s.metadata = read_identity(filter, &s.shared.payload_header);
        with_host(filter, s, false, |x, h| {
            headers_status(x.timed(h, Side::Request, |x, h| {
                x.on_request_headers(h, end_of_stream)
            }))
        })
    })
}

/// A request body chunk.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter: abi::FilterEnvoyPtr,
    stream_ptr: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: as above.
    let (s, filter) = unsafe { (stream(stream_ptr), Filter::from_raw(filter)) };
    guard(filter, s, body_status::STOP_ITERATION_AND_BUFFER, |s| {
        let size = body_size(
            filter,
            abi::body_type::BUFFERED_REQUEST,
            abi::body_type::RECEIVED_REQUEST,
        );
        with_host(filter, s, true, |x, h| {
            body_status(x.timed(h, Side::Request, |x, h| {
                x.on_request_body(h, size, end_of_stream)
            }))
        })
    })
}

/// Request trailers.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    filter: abi::FilterEnvoyPtr,
    stream_ptr: *const c_void,
) -> u32 {
    // SAFETY: as above.
    let (s, filter) = unsafe { (stream(stream_ptr), Filter::from_raw(filter)) };
    guard(filter, s, trailers_status::STOP_ITERATION, |s| {
        with_host(filter, s, false, |x, h| {
            trailers_status(x.timed(h, Side::Request, |x, h| x.on_request_trailers(h)))
        })
    })
}

/// Response headers.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter: abi::FilterEnvoyPtr,
    stream_ptr: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: as above.
    let (s, filter) = unsafe { (stream(stream_ptr), Filter::from_raw(filter)) };
    guard(filter, s, headers_status::STOP_ITERATION, |s| {
        with_host(filter, s, false, |x, h| {
            headers_status(x.timed(h, Side::Response, |x, h| {
                x.on_response_headers(h, end_of_stream)
            }))
        })
    })
}

/// A response body chunk.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    filter: abi::FilterEnvoyPtr,
    stream_ptr: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: as above.
    let (s, filter) = unsafe { (stream(stream_ptr), Filter::from_raw(filter)) };
    guard(filter, s, body_status::STOP_ITERATION_AND_BUFFER, |s| {
        let size = body_size(
            filter,
            abi::body_type::BUFFERED_RESPONSE,
            abi::body_type::RECEIVED_RESPONSE,
        );
        with_host(filter, s, true, |x, h| {
            body_status(x.timed(h, Side::Response, |x, h| {
                x.on_response_body(h, size, end_of_stream)
            }))
        })
    })
}

/// Response trailers.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    filter: abi::FilterEnvoyPtr,
    stream_ptr: *const c_void,
) -> u32 {
    // SAFETY: as above.
    let (s, filter) = unsafe { (stream(stream_ptr), Filter::from_raw(filter)) };
    guard(filter, s, trailers_status::STOP_ITERATION, |s| {
        with_host(filter, s, false, |x, h| {
            trailers_status(x.timed(h, Side::Response, |x, h| x.on_response_trailers(h)))
        })
    })
}

/// The stream completed (before the access log is written): a pending
/// token exchange is abandoned, and the record is completed, sealed into
/// this worker's decision chain and published for the access log.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter: abi::FilterEnvoyPtr,
    stream_ptr: *const c_void,
) {
    // SAFETY: as above.
    let (s, filter) = unsafe { (stream(stream_ptr), Filter::from_raw(filter)) };
    guard(filter, s, (), |s| {
        s.exchange.on_stream_done();
        let node = s.shared.chain_node.clone();
        with_host(filter, s, false, |exchange, host| {
            exchange.finish_timing(host);
            crate::trail::with_chain(&node, |chain| exchange.on_log(host, Some(chain)));
        });
    });
}

// Hooks Envoy 1.40 requires every HTTP module to export (its loader refuses
// a module missing any of them) but which this module never triggers: it
// starts no per-stream HTTP streams or schedulers, and is not a terminal
// filter.

/// A stream's callout (the RFC 8693 token exchange) finished: its answer
/// goes to the exchange, which resumes or refuses the held request.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    filter: abi::FilterEnvoyPtr,
    stream_ptr: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_len: usize,
    chunks: *const EnvoyBuffer,
    chunks_len: usize,
) {
    // SAFETY: as above.
    let (s, filter) = unsafe { (stream(stream_ptr), Filter::from_raw(filter)) };
    guard(filter, s, (), |s| {
        let answer = if result == abi::CALLOUT_SUCCESS {
            // SAFETY: Envoy's arrays (or null), valid for this hook.
            let (headers, chunks) =
                unsafe { (slice(headers, headers_len), slice(chunks, chunks_len)) };
            // SAFETY: as above.
            let pairs: Vec<(String, String)> =
                headers.iter().map(|h| unsafe { h.to_pair() }).collect();
            let find = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let status = find(":status");
            let mut body = Vec::new();
            for chunk in chunks {
                if body.len() > MAX_CALLOUT_ANSWER_BYTES {
                    break;
                }
                // SAFETY: as above.
                body.extend_from_slice(&unsafe { chunk.to_vec() });
            }
            // The module sees no trailers of a callout: a gRPC failure
            // comes trailers-only (`grpc-status` in these headers), a
            // success carries its message in the body.
            let grpc_status = headers
                .iter()
                // SAFETY: as above.
                .map(|h| unsafe { h.to_pair() })
                .find(|(k, _)| k == "grpc-status")
                .map(|(_, v)| v)
                .or_else(|| (!body.is_empty()).then(|| "0".to_owned()));
            CalloutAnswer {
                status,
                body,
                headers: pairs,
                grpc_status,
            }
        } else {
            CalloutAnswer::default()
        };
        with_host(filter, s, false, |x, h| {
            x.timed(h, Side::Request, |x, h| {
                x.on_callout_answer(h, callout_id, &answer)
            })
        });
    });
}

/// Required; unused (no per-stream HTTP streams).
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter: abi::FilterEnvoyPtr,
    _stream: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHeader,
    _headers_len: usize,
    _end_stream: bool,
) {
}

/// Required; unused.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter: abi::FilterEnvoyPtr,
    _stream: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_len: usize,
    _end_stream: bool,
) {
}

/// Required; unused.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter: abi::FilterEnvoyPtr,
    _stream: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHeader,
    _trailers_len: usize,
) {
}

/// Required; unused.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter: abi::FilterEnvoyPtr,
    _stream: *const c_void,
    _stream_id: u64,
) {
}

/// Required; unused.
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter: abi::FilterEnvoyPtr,
    _stream: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

/// Required; unused (no per-stream scheduler).
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter: abi::FilterEnvoyPtr,
    _stream: *const c_void,
    _event_id: u64,
) {
}

/// Required; unused (not a terminal filter).
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter: abi::FilterEnvoyPtr,
    _stream: *const c_void,
) {
}

/// Required; unused (not a terminal filter).
///
/// # Safety
/// Called by Envoy only, with the pointers the ABI documents for this hook.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter: abi::FilterEnvoyPtr,
    _stream: *const c_void,
) {
}
