//! The exchange's [`Host`] over the dynamic-module ABI: one stream's
//! headers, bodies and local replies, read and written through Envoy's
//! callbacks for the duration of one hook.

use mcp_guard_engine::pii::PiiReport;
use mcp_guard_engine::pins::ToolDigest;
use mcp_guard_engine::Decision;
use mcp_guard_flow::host::{PeerCertificate, RateLimitEvent, SharedWrite};
use mcp_guard_flow::memory::SharedStore;
use mcp_guard_flow::{Host, Level, Side};

use crate::abi::{self, body_type, header_type, EnvoyBuffer, EnvoyHeader, ModuleBuffer};
use crate::metrics::Metrics;
use mcp_guard_flow::timing::Durations;

/// Filter-state key of the decision record
/// (`%FILTER_STATE(mcp_guard.decision:PLAIN)%` in the access log).
pub const RECORD_KEY: &str = "mcp_guard.decision";

/// Details Envoy logs for a stream this module resets.
const RESET_DETAILS: &str = "mcp_guard_reset";

/// Envoy's filter object of one stream, as a value the module can pass
/// around; made only from the pointer Envoy hands to a hook.
#[derive(Debug, Clone, Copy)]
pub struct Filter(pub(crate) abi::FilterEnvoyPtr);

impl Filter {
    /// Wraps the pointer of the current hook.
    ///
    /// # Safety
    /// `ptr` must be the filter pointer Envoy passed to the running hook;
    /// the value must not be used after that hook returns.
    pub unsafe fn from_raw(ptr: abi::FilterEnvoyPtr) -> Self {
        Self(ptr)
    }
}

/// One stream's view of Envoy during one hook.
pub struct NativeHost<'a> {
    /// Envoy's filter object of this stream.
    pub filter: Filter,
    /// Counter ids of this configuration.
    pub metrics: &'a Metrics,
    /// What `property(["metadata"])` answers: the verified `jwt_authn`
    /// payload as a `Metadata` message (see [`crate::identity`]).
    pub metadata: &'a Result<Option<Vec<u8>>, u32>,
    /// Inside a body hook (the received chunk exists only there).
    pub in_body_hook: bool,
}

fn headers_of(side: Side) -> u32 {
    match side {
        Side::Request => header_type::REQUEST_HEADER,
        Side::Response => header_type::RESPONSE_HEADER,
    }
}

fn trailers_of(side: Side) -> u32 {
    match side {
        Side::Request => header_type::REQUEST_TRAILER,
        Side::Response => header_type::RESPONSE_TRAILER,
    }
}

fn bodies_of(side: Side) -> (u32, u32) {
    match side {
        Side::Request => (body_type::BUFFERED_REQUEST, body_type::RECEIVED_REQUEST),
        Side::Response => (body_type::BUFFERED_RESPONSE, body_type::RECEIVED_RESPONSE),
    }
}

/// Every entry of one map in one crossing (names lower case, values read
/// lossily when not UTF-8); empty when Envoy has none.
pub fn header_pairs(filter: Filter, map: u32) -> Vec<(String, String)> {
    // SAFETY: `filter` is the live stream of the current hook.
    let size = unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(filter.0, map) };
    if size == 0 {
        return Vec::new();
    }
    let mut slots = vec![EnvoyHeader::EMPTY; size];
    // SAFETY: `slots` has room for `size` entries, as the ABI requires.
    let ok = unsafe {
        abi::envoy_dynamic_module_callback_http_get_headers(filter.0, map, slots.as_mut_ptr())
    };
    if !ok {
        return Vec::new();
    }
    slots
        .into_iter()
        // SAFETY: Envoy filled each slot with bytes valid for this hook.
        .map(|h| unsafe { h.to_pair() })
        .collect()
}

/// Every value of one header, in order.
pub fn header_values(filter: Filter, map: u32, name: &str) -> Vec<Vec<u8>> {
    let mut first = EnvoyBuffer::EMPTY;
    let mut count = 0usize;
    // SAFETY: out-pointers reference live locals; `name` outlives the call.
    let found = unsafe {
        abi::envoy_dynamic_module_callback_http_get_header(
            filter.0,
            map,
            ModuleBuffer::of(name.as_bytes()),
            &mut first,
            0,
            &mut count,
        )
    };
    if !found || count == 0 {
        return Vec::new();
    }
    // SAFETY: Envoy's bytes, valid for this hook.
    let mut values = vec![unsafe { first.to_vec() }];
    for index in 1..count {
        let mut value = EnvoyBuffer::EMPTY;
        // SAFETY: as above.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_get_header(
                filter.0,
                map,
                ModuleBuffer::of(name.as_bytes()),
                &mut value,
                index,
                std::ptr::null_mut(),
            )
        };
        if ok {
            // SAFETY: as above.
            values.push(unsafe { value.to_vec() });
        }
    }
    values
}

/// Replaces a header; `None` removes it.
pub fn set_header(filter: Filter, map: u32, name: &str, value: Option<&str>) -> bool {
    let value = value.map_or(ModuleBuffer::NULL, |v| ModuleBuffer::of(v.as_bytes()));
    // SAFETY: both buffers outlive the call.
    unsafe {
        abi::envoy_dynamic_module_callback_http_set_header(
            filter.0,
            map,
            ModuleBuffer::of(name.as_bytes()),
            value,
        )
    }
}

/// The bytes of one body buffer, its slices joined.
fn body_bytes(filter: Filter, kind: u32, out: &mut Vec<u8>) -> bool {
    // SAFETY: `filter` is the live stream of the current hook.
    let count =
        unsafe { abi::envoy_dynamic_module_callback_http_get_body_chunks_size(filter.0, kind) };
    if count == 0 {
        return true;
    }
    let mut slices = vec![EnvoyBuffer::EMPTY; count];
    // SAFETY: `slices` has room for `count` entries.
    let ok = unsafe {
        abi::envoy_dynamic_module_callback_http_get_body_chunks(filter.0, kind, slices.as_mut_ptr())
    };
    if !ok {
        return false;
    }
    for slice in slices {
        if !slice.ptr.is_null() && slice.length > 0 {
            // SAFETY: Envoy's slice, valid for this hook.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(slice.ptr, slice.length) });
        }
    }
    true
}

/// The body so far as the proxy-wasm ABI shows it: what earlier hooks
/// buffered, then the chunk of this hook.
fn whole_body(filter: Filter, side: Side, in_body_hook: bool) -> Option<Vec<u8>> {
    let (buffered, received) = bodies_of(side);
    let mut out = Vec::new();
    if !body_bytes(filter, buffered, &mut out) {
        return None;
    }
    if in_body_hook && !body_bytes(filter, received, &mut out) {
        return None;
    }
    Some(out)
}

/// Empties a body buffer.
fn drain_all(filter: Filter, kind: u32) -> bool {
    let mut bytes = Vec::new();
    if !body_bytes(filter, kind, &mut bytes) {
        return false;
    }
    // SAFETY: `filter` is the live stream of the current hook.
    bytes.is_empty()
        || unsafe {
            abi::envoy_dynamic_module_callback_http_drain_body(filter.0, kind, bytes.len())
        }
}

/// Writes a line to Envoy's log.
pub fn log(level: u32, message: &str) {
    // SAFETY: the message outlives the call; Envoy's logger is thread-safe.
    unsafe { abi::envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

/// Resets the stream: the last resort when bytes already on their way
/// cannot be replaced or a hook failed.
pub fn reset(filter: Filter) {
    // SAFETY: `filter` is the live stream of the current hook.
    unsafe {
        abi::envoy_dynamic_module_callback_http_filter_reset_stream(
            filter.0,
            abi::RESET_REASON_LOCAL,
            ModuleBuffer::of(RESET_DETAILS.as_bytes()),
        )
    }
}

/// Sends a local reply.
pub fn send_response(
    filter: Filter,
    status: u32,
    details: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut headers: Vec<abi::ModuleHeader> = headers
        .iter()
        .map(|(k, v)| abi::ModuleHeader::of(k, v))
        .collect();
    // SAFETY: every buffer outlives the call.
    unsafe {
        abi::envoy_dynamic_module_callback_http_send_response(
            filter.0,
            status,
            headers.as_mut_ptr(),
            headers.len(),
            ModuleBuffer::of(body),
            ModuleBuffer::of(details.as_bytes()),
        )
    }
}

impl Host for NativeHost<'_> {
    fn headers(&mut self, side: Side) -> Vec<(String, String)> {
        header_pairs(self.filter, headers_of(side))
    }

    fn header(&mut self, side: Side, name: &str) -> Option<String> {
        header_values(self.filter, headers_of(side), name)
            .into_iter()
            .next()
            .map(abi::text)
    }

    fn set_header(&mut self, side: Side, name: &str, value: &str) {
        set_header(self.filter, headers_of(side), name, Some(value));
    }

    fn remove_header(&mut self, side: Side, name: &str) {
        set_header(self.filter, headers_of(side), name, None);
    }

    fn trailers(&mut self, side: Side) -> Vec<(String, String)> {
        header_pairs(self.filter, trailers_of(side))
    }

    fn remove_trailer(&mut self, side: Side, name: &str) {
        set_header(self.filter, trailers_of(side), name, None);
    }

    fn body(&mut self, side: Side, len: usize) -> Option<Vec<u8>> {
        let mut body = whole_body(self.filter, side, self.in_body_hook)?;
        body.truncate(len);
        Some(body)
    }

    fn replace_body(&mut self, side: Side, len: usize, bytes: &[u8]) -> bool {
        // The body lives in two Envoy buffers (earlier hooks' and this
        // hook's chunk); both are emptied and the new body written where
        // Envoy sends it next: the chunk inside a body hook (Envoy moves
        // it behind the now empty buffer), the buffer elsewhere.
        let Some(current) = whole_body(self.filter, side, self.in_body_hook) else {
            return false;
        };
        let mut next = Vec::with_capacity(bytes.len() + current.len().saturating_sub(len));
        next.extend_from_slice(bytes);
        next.extend_from_slice(current.get(len.min(current.len())..).unwrap_or_default());
        let (buffered, received) = bodies_of(side);
        if !drain_all(self.filter, buffered) {
            return false;
        }
        let target = if self.in_body_hook {
            if !drain_all(self.filter, received) {
                return false;
            }
            received
        } else {
            buffered
        };
        // SAFETY: `next` outlives the call.
        next.is_empty()
            || unsafe {
                abi::envoy_dynamic_module_callback_http_append_body(
                    self.filter.0,
                    target,
                    ModuleBuffer::of(&next),
                )
            }
    }

    fn property(&mut self, path: &[&str]) -> Result<Option<Vec<u8>>, u32> {
        match path {
            ["metadata"] => self.metadata.clone(),
            _ => Ok(None),
        }
    }

    fn send_reply(
        &mut self,
        status: u32,
        details: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> bool {
        send_response(self.filter, status, details, headers, body);
        true
    }

    fn reset(&mut self) {
        reset(self.filter);
    }

    fn publish_record(&mut self, json: &str) {
        // SAFETY: both buffers outlive the call.
        let _ = unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.filter.0,
                ModuleBuffer::of(RECORD_KEY.as_bytes()),
                ModuleBuffer::of(json.as_bytes()),
            )
        };
    }

    /// Flat keys go under this module's filter-state prefix
    /// (`mcp_guard.rule`, ...).
    fn publish_field(&mut self, key: &str, value: &str) {
        let name = format!("mcp_guard.{}", key.strip_prefix("mcp_").unwrap_or(key));
        // SAFETY: both buffers outlive the call.
        let _ = unsafe {
            abi::envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.filter.0,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
    }

    fn logged_response(&mut self) -> (Option<u32>, Option<String>) {
        let mut details = EnvoyBuffer::EMPTY;
        // SAFETY: the live stream of the current hook; Envoy's bytes are
        // copied before the hook returns.
        let details = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.filter.0,
                abi::ATTRIBUTE_RESPONSE_CODE_DETAILS,
                &mut details,
            )
        }
        .then(|| String::from_utf8_lossy(&unsafe { details.to_vec() }).into_owned());
        (self.response_status(), details)
    }

    fn now_ms(&mut self) -> u64 {
        now_ms()
    }

    fn now_ns(&mut self) -> u64 {
        now_ns()
    }

    fn record_durations(&mut self, durations: &Durations) {
        self.metrics.record_durations(self.filter, durations);
    }

    fn count_decision(&mut self, decision: &Decision) {
        self.metrics.count_decision(self.filter, decision);
    }

    fn count_redactions(&mut self, report: &PiiReport) {
        self.metrics.count_redactions(self.filter, report);
    }

    fn count_refusal(&mut self) {
        self.metrics.count_pii_blocked(self.filter);
    }

    fn log(&mut self, level: Level, message: &str) {
        let level = match level {
            Level::Warn => abi::log_level::WARN,
            Level::Info => abi::log_level::INFO,
        };
        log(level, message);
    }

    fn http_call(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> Option<u64> {
        let mut headers: Vec<abi::ModuleHeader> = headers
            .iter()
            .map(|(k, v)| abi::ModuleHeader::of(k, v))
            .collect();
        let mut id = 0u64;
        // SAFETY: the live stream of the current hook; every buffer
        // outlives the call (Envoy copies them).
        let code = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_http_callout(
                self.filter.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_mut_ptr(),
                headers.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        (code == abi::CALLOUT_INIT_SUCCESS).then_some(id)
    }

    fn resume_request(&mut self) {
        // SAFETY: the live stream of the current hook.
        unsafe { abi::envoy_dynamic_module_callback_http_filter_continue_decoding(self.filter.0) }
    }

    fn peer_certificate(&mut self) -> PeerCertificate {
        crate::peer::peer_certificate(self.filter)
    }

    fn advertised_tool(&mut self, key: &str) -> Option<ToolDigest> {
        crate::tool_memory::get(key)
    }

    fn remember_advertised_tool(&mut self, key: &str, digest: ToolDigest) {
        crate::tool_memory::set(key, digest);
    }

    fn count_tool_pin_mismatch(&mut self) {
        self.metrics.count_tool_pin_mismatch(self.filter);
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: the live stream of the current hook.
        unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(self.filter.0) }
    }

    fn count_route(&mut self) {
        self.metrics.count_route(self.filter);
    }

    fn count_route_fallback(&mut self) {
        self.metrics.count_route_fallback(self.filter);
    }
    fn shared_value(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, u32> {
        Ok(shared().get(key))
    }

    fn set_shared_value(&mut self, key: &str, value: &[u8], cas: u32) -> SharedWrite {
        shared().set(key, value, cas)
    }

    fn count_rate_limit(&mut self, event: RateLimitEvent, amount: u64) {
        self.metrics.count_rate_limit(self.filter, event, amount);
    }

    /// The module has no root context to send for: the charge goes as
    /// this stream's callout (best effort: Envoy may cancel it when the
    /// stream is destroyed first).
    fn http_call_detached(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        timeout_ms: u64,
    ) -> bool {
        self.http_call(cluster, headers, body, timeout_ms).is_some()
    }
}

/// Process-wide values (rate-limit counters): the module runs in one
/// process, every worker thread shares this map, so a mutex makes the
/// counts exact.
fn shared() -> &'static SharedStore {
    static SHARED: std::sync::OnceLock<SharedStore> = std::sync::OnceLock::new();
    SHARED.get_or_init(SharedStore::default)
}

/// Wall-clock milliseconds since the Unix epoch (Envoy's own clock is the
/// system clock; 0 if it reads before 1970).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl NativeHost<'_> {
    /// `response.code`, when Envoy knows it.
    fn response_status(&mut self) -> Option<u32> {
        let mut code = 0u64;
        // SAFETY: the live stream of the current hook; a local out-param.
        let ok = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_int(
                self.filter.0,
                abi::ATTRIBUTE_RESPONSE_CODE,
                &mut code,
            )
        };
        if ok {
            u32::try_from(code).ok().filter(|c| *c > 0)
        } else {
            None
        }
    }
}

/// The process's monotonic clock in nanoseconds, for durations.
pub fn now_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
}
