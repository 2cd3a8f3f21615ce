//! Non-panicking versions of the proxy-wasm SDK calls the root context
//! makes (bundle fetches, status reports, shared data, ticks, metrics).
//!
//! proxy-wasm 0.2.5's `hostcalls` panic on any status they do not expect,
//! and a panic kills the worker's VM. These keep the SDK's names and
//! shapes, so callers read the same, but turn every status into a
//! `Result`. Hand-written on purpose: they are thin raw imports (all but
//! `dispatch_http_call`, see there).

use std::ptr::{null, null_mut};
use std::time::Duration;

use proxy_wasm::types::{BufferType, LogLevel, MetricType};

use crate::host::{self, RawStatus};

const STATUS_OK: RawStatus = 0;
const STATUS_NOT_FOUND: RawStatus = 1;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_set_tick_period_milliseconds(period: u32) -> RawStatus;

    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> RawStatus;

    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> RawStatus;

    fn proxy_set_effective_context(context_id: u32) -> RawStatus;

    fn proxy_define_metric(
        metric_type: u32,
        name_data: *const u8,
        name_size: usize,
        return_id: *mut u32,
    ) -> RawStatus;
}

fn status(code: RawStatus) -> Result<(), RawStatus> {
    if code == STATUS_OK {
        Ok(())
    } else {
        Err(code)
    }
}

/// Writes a log line.
pub fn log(level: LogLevel, message: &str) -> Result<(), RawStatus> {
    let level = match level {
        LogLevel::Trace | LogLevel::Debug => host::LogLevel::Debug,
        LogLevel::Info => host::LogLevel::Info,
        LogLevel::Warn => host::LogLevel::Warn,
        LogLevel::Error | LogLevel::Critical => host::LogLevel::Error,
    };
    host::log(level, message);
    Ok(())
}

/// Sends an HTTP request to a cluster; the answer arrives in
/// `on_http_call_response` with the returned token.
///
/// The one call left to the SDK: it must register the token with its
/// dispatcher (crate-private), or the answer would be refused. The SDK
/// panics only on statuses Envoy's `http_call` never returns (it returns
/// Ok, BadArgument or InternalFailure).
pub fn dispatch_http_call(
    upstream: &str,
    headers: Vec<(&str, &str)>,
    body: Option<&[u8]>,
    trailers: Vec<(&str, &str)>,
    timeout: Duration,
) -> Result<u32, RawStatus> {
    proxy_wasm::hostcalls::dispatch_http_call(upstream, headers, body, trailers, timeout)
        .map_err(|status| status as RawStatus)
}

/// Asks Envoy to choose the stream's route again: its `clear_route_cache`
/// foreign function. Envoy 1.36+ no longer clears the route cache on
/// every request-header change for current ABIs, so a filter that sets a
/// header a route reads (`cluster_header`) must ask. Left to the SDK: it
/// panics only on statuses Envoy's foreign-function call never returns
/// (Ok, NotFound when the function is unknown, BadArgument,
/// SerializationFailure, InternalFailure).
pub fn clear_route_cache() -> bool {
    proxy_wasm::hostcalls::call_foreign_function("clear_route_cache", None).is_ok()
}

/// Bytes of a buffer; `Ok(None)` when the host has none.
pub fn get_buffer(
    buffer_type: BufferType,
    start: usize,
    max_size: usize,
) -> Result<Option<Vec<u8>>, RawStatus> {
    host::buffer_bytes(buffer_type as u32, start, max_size)
}

/// Sets the root context's tick period.
pub fn set_tick_period(period: Duration) -> Result<(), RawStatus> {
    let ms = u32::try_from(period.as_millis()).unwrap_or(u32::MAX);
    // SAFETY: no pointers.
    status(unsafe { proxy_set_tick_period_milliseconds(ms) })
}

/// A shared-data value and its CAS; `(None, None)` when absent.
pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, Option<u32>), RawStatus> {
    let mut data = null_mut();
    let mut size = 0usize;
    let mut cas = 0u32;
    // SAFETY: pointers reference live locals; the host writes an
    // allocation it made with our allocator into `data`/`size`.
    let code =
        unsafe { proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
    match code {
        STATUS_OK => {
            let value = if data.is_null() {
                None
            } else {
                // SAFETY: a `size`-byte allocation made by our allocator.
                Some(unsafe { Vec::from_raw_parts(data, size, size) })
            };
            Ok((value, (cas != 0).then_some(cas)))
        }
        STATUS_NOT_FOUND => Ok((None, None)),
        other => Err(other),
    }
}

/// Writes shared data; `Err` on a CAS mismatch or any other refusal.
pub fn set_shared_data(key: &str, value: Option<&[u8]>, cas: Option<u32>) -> Result<(), RawStatus> {
    // SAFETY: every pointer references a live buffer for the call.
    let code = unsafe {
        proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.map_or(null(), <[u8]>::as_ptr),
            value.map_or(0, <[u8]>::len),
            cas.unwrap_or(0),
        )
    };
    status(code)
}

/// Makes `context_id` the context later host calls act for (a call
/// dispatched for the root context outlives the stream that sent it).
pub fn set_effective_context(context_id: u32) -> Result<(), RawStatus> {
    // SAFETY: no pointers.
    status(unsafe { proxy_set_effective_context(context_id) })
}

/// Defines a metric; its id.
pub fn define_metric(kind: MetricType, name: &str) -> Result<u32, RawStatus> {
    let mut id = 0u32;
    // SAFETY: pointers reference live locals.
    let code = unsafe { proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
    status(code).map(|()| id)
}
