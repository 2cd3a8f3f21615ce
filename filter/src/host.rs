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
    /// Response headers.
    Response = 2,
    /// Headers of a `dispatch_http_call` response.
    HttpCallResponse = 6,
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
    proxy_wasm::hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64)
}
