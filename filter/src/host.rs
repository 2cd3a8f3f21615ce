//! Host calls that must never panic.
//!
//! The proxy-wasm SDK's helpers panic on any status they do not expect (a
//! non-UTF-8 header value, a metadata value Envoy cannot serialise), and a
//! panic kills the worker's VM. The calls that see client-controlled input
//! go through these raw imports instead, which turn every status into a
//! `Result`.

use std::ptr::{null, null_mut};

use mcp_guard_engine::envoy_pairs::encode_pairs;

/// Raw status code returned by the host (`0` is OK).
pub type RawStatus = u32;

const STATUS_OK: RawStatus = 0;
const STATUS_NOT_FOUND: RawStatus = 1;

/// Header maps as numbered by the proxy-wasm ABI.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum HeaderMap {
    /// Request headers.
    Request = 0,
    /// Request trailers.
    RequestTrailers = 1,
    /// Response headers.
    Response = 2,
    /// Response trailers.
    ResponseTrailers = 3,
    /// Headers of a `dispatch_http_call` response.
    HttpCallResponse = 6,
    /// Trailers of a `dispatch_http_call` response (gRPC status).
    HttpCallResponseTrailers = 7,
}

/// Body buffers as numbered by the proxy-wasm ABI.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    /// The request body (buffered so far, or the current chunk).
    Request = 0,
    /// The response body.
    Response = 1,
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> RawStatus;

    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> RawStatus;

    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> RawStatus;

    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> RawStatus;

    fn proxy_remove_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
    ) -> RawStatus;

    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> RawStatus;

    fn proxy_set_buffer_bytes(
        buffer_type: u32,
        start: usize,
        size: usize,
        buffer_data: *const u8,
        buffer_size: usize,
    ) -> RawStatus;

    fn proxy_set_property(
        path_data: *const u8,
        path_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> RawStatus;

    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> RawStatus;

    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> RawStatus;

    fn proxy_increment_metric(metric_id: u32, offset: i64) -> RawStatus;

    fn proxy_record_metric(metric_id: u32, value: u64) -> RawStatus;

    fn proxy_send_local_response(
        status_code: u32,
        details_data: *const u8,
        details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> RawStatus;
}

/// Takes ownership of a buffer the host allocated through
/// `proxy_on_memory_allocate` (the SDK's allocator).
///
/// # Safety
/// `data` must be null or a `size`-byte allocation made by that allocator.
unsafe fn take_host_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// Reads a property; `Ok(None)` when it does not exist, `Err(status)` for
/// anything else the host reports (e.g. a value it cannot serialise).
pub fn property(path: &[&str]) -> Result<Option<Vec<u8>>, RawStatus> {
    let mut encoded = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for part in path {
        encoded.extend_from_slice(part.as_bytes());
        encoded.push(0);
    }
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: pointers reference live locals; the host writes an allocation
    // it made with our allocator into `data`/`size`.
    let status =
        unsafe { proxy_get_property(encoded.as_ptr(), encoded.len(), &mut data, &mut size) };
    match status {
        STATUS_OK => Ok(Some(unsafe { take_host_buffer(data, size) })),
        STATUS_NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Reads a header value as bytes; `None` when absent or unreadable.
pub fn header_bytes(map: HeaderMap, name: &str) -> Option<Vec<u8>> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: as in `property`.
    let status = unsafe {
        proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
    };
    (status == STATUS_OK).then(|| unsafe { take_host_buffer(data, size) })
}

/// Reads a header as text, replacing invalid UTF-8 rather than failing.
pub fn header(map: HeaderMap, name: &str) -> Option<String> {
    header_bytes(map, name).map(|b| {
        String::from_utf8(b).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    })
}

/// Sends a local reply with response-code details (shown by Envoy as
/// `%RESPONSE_CODE_DETAILS%`), which the SDK's helper cannot set.
pub fn send_local_response(
    status: u32,
    details: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), RawStatus> {
    let pairs: Vec<(&[u8], &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    let encoded = encode_pairs(&pairs);
    // SAFETY: all pointers reference live buffers for the duration of the call.
    let result = unsafe {
        proxy_send_local_response(
            status,
            if details.is_empty() {
                null()
            } else {
                details.as_ptr()
            },
            details.len(),
            body.as_ptr(),
            body.len(),
            encoded.as_ptr(),
            encoded.len(),
            -1,
        )
    };
    if result == STATUS_OK {
        Ok(())
    } else {
        Err(result)
    }
}

/// The proxy's clock in milliseconds since the Unix epoch (0 if the host
/// cannot tell): time windows, token expiry and fetch scheduling all use
/// the host's time, never the guest's.
pub fn now_ms() -> u64 {
    let mut nanos = 0u64;
    // SAFETY: the pointer references a live local.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    if status == STATUS_OK {
        nanos / 1_000_000
    } else {
        0
    }
}

/// The host clock in nanoseconds, for durations (Envoy's wall clock: only
/// differences are used, and one that goes backwards counts as zero).
pub fn now_ns() -> u64 {
    let mut nanos = 0u64;
    // SAFETY: the pointer references a live local.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut nanos) };
    if status == STATUS_OK {
        nanos
    } else {
        0
    }
}

/// Every header of a map in one crossing; empty when the host has none.
/// Values that are not UTF-8 are read lossily (names are ASCII in Envoy).
pub fn header_pairs(map: HeaderMap) -> Vec<(String, String)> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: as in `property`.
    let status = unsafe { proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    if status != STATUS_OK {
        return Vec::new();
    }
    let bytes = unsafe { take_host_buffer(data, size) };
    mcp_guard_engine::envoy_pairs::parse_pairs(&bytes)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

/// Replaces (or adds) a header; `false` when the host refused.
pub fn set_header(map: HeaderMap, name: &str, value: &str) -> bool {
    // SAFETY: pointers reference live buffers for the duration of the call.
    let status = unsafe {
        proxy_replace_header_map_value(
            map as u32,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
    status == STATUS_OK
}

/// Removes a header; `false` when the host refused.
pub fn remove_header(map: HeaderMap, name: &str) -> bool {
    // SAFETY: as above.
    let status = unsafe { proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) };
    status == STATUS_OK
}

/// The first `len` bytes of a body buffer; `None` when the host has none.
pub fn body(buffer: Buffer, len: usize) -> Option<Vec<u8>> {
    buffer_bytes(buffer as u32, 0, len).ok().flatten()
}

/// Bytes of any buffer the ABI numbers (bodies, HTTP call answers, plugin
/// configuration); `Ok(None)` when the host has none.
pub fn buffer_bytes(kind: u32, start: usize, max: usize) -> Result<Option<Vec<u8>>, RawStatus> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: as in `property`.
    let status = unsafe { proxy_get_buffer_bytes(kind, start, max, &mut data, &mut size) };
    match status {
        STATUS_OK => Ok(Some(unsafe { take_host_buffer(data, size) })),
        STATUS_NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Replaces the first `len` bytes of a body buffer; `false` when refused.
pub fn replace_body(buffer: Buffer, len: usize, bytes: &[u8]) -> bool {
    // SAFETY: as above.
    let status =
        unsafe { proxy_set_buffer_bytes(buffer as u32, 0, len, bytes.as_ptr(), bytes.len()) };
    status == STATUS_OK
}

/// Sets a flat property (filter state `wasm.<name>` in Envoy).
pub fn set_property(name: &str, value: &[u8]) -> bool {
    // SAFETY: as above.
    let status =
        unsafe { proxy_set_property(name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
    status == STATUS_OK
}

/// Log levels as numbered by the proxy-wasm ABI.
#[derive(Debug, Clone, Copy)]
#[repr(u32)]
pub enum LogLevel {
    /// Detail for debugging.
    Debug = 1,
    /// Routine information.
    Info = 2,
    /// Something to look at.
    Warn = 3,
    /// A failure.
    Error = 4,
}

/// Writes a log line; a refusal is ignored.
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: as above.
    let _ = unsafe { proxy_log(level as u32, message.as_ptr(), message.len()) };
}

/// Adds to a counter or gauge; ids the host did not define are ignored.
pub fn increment_metric(id: u32, by: i64) {
    // SAFETY: no pointers.
    let _ = unsafe { proxy_increment_metric(id, by) };
}

/// Sets a gauge or records a histogram value.
pub fn record_metric(id: u32, value: u64) {
    // SAFETY: no pointers.
    let _ = unsafe { proxy_record_metric(id, value) };
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_close_stream(stream_type: u32) -> RawStatus;
    fn proxy_continue_stream(stream_type: u32) -> RawStatus;
}

/// Resumes the paused request (after a callout answered); `false` when
/// the host refused (the stream is gone).
pub fn resume_request() -> bool {
    // SAFETY: no pointers. Stream type 0 is the HTTP request.
    unsafe { proxy_continue_stream(0) == STATUS_OK }
}

/// Resets the HTTP exchange (Envoy resets the stream).
pub fn reset_exchange() {
    // SAFETY: no pointers. Stream type 0 is the HTTP request stream, which
    // Envoy resets as a whole.
    let _ = unsafe { proxy_close_stream(0) };
}
