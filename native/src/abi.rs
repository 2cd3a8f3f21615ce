//! The slice of Envoy's dynamic-module ABI (`source/extensions/dynamic_modules/abi/abi.h`)
//! this module uses: types, and the callbacks Envoy exports to modules.
//! The event hooks Envoy calls are defined in [`crate::filter`].
//!
//! Hand-written rather than generated: Envoy's Rust SDK is not published as
//! a crate (it lives in Envoy's tree and tracks Envoy's main branch), and we
//! need about twenty functions of the ~800 Envoy exports. Each declaration
//! was checked against the symbols Envoy 1.40's binary exports
//! (`readelf --dyn-syms`) and exercised by the end-to-end tests against the
//! real Envoy; a wrong declaration shows there at once.
//!
//! C enums are `int`-sized, so they cross as `u32`; `bool` is C's `_Bool`.

use std::ffi::c_void;

/// Envoy's `DynamicModuleHttpFilterConfig` (owned by Envoy).
pub type ConfigEnvoyPtr = *mut c_void;
/// Envoy's `DynamicModuleHttpFilter` of one stream (owned by Envoy, valid
/// until the filter's destroy hook).
pub type FilterEnvoyPtr = *mut c_void;
/// A scheduler that posts events to the main thread (owned by the module).
pub type ConfigSchedulerPtr = *mut c_void;

/// Bytes owned by Envoy, valid until the end of the current hook (or the
/// next setter call on the same map or body).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyBuffer {
    /// First byte (may be null when `length` is 0).
    pub ptr: *const u8,
    /// Length in bytes.
    pub length: usize,
}

impl EnvoyBuffer {
    /// An empty buffer for Envoy to fill.
    pub const EMPTY: Self = Self {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes, copied out.
    ///
    /// # Safety
    /// `ptr` must be null or point to `length` readable bytes.
    pub unsafe fn to_vec(self) -> Vec<u8> {
        if self.ptr.is_null() || self.length == 0 {
            Vec::new()
        } else {
            std::slice::from_raw_parts(self.ptr, self.length).to_vec()
        }
    }
}

/// Bytes owned by the module, lent to Envoy for one call.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleBuffer {
    /// First byte.
    pub ptr: *const u8,
    /// Length in bytes.
    pub length: usize,
}

impl ModuleBuffer {
    /// Lends a byte slice (it must outlive the call).
    pub fn of(bytes: &[u8]) -> Self {
        Self {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    /// The null buffer (`set_header` removes the header when given it).
    pub const NULL: Self = Self {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// Bytes Envoy handed over, as text (lossily when not UTF-8; no copy when
/// they are).
pub fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// A header owned by Envoy (`envoy_dynamic_module_type_envoy_http_header`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct EnvoyHeader {
    /// Name bytes.
    pub key_ptr: *const u8,
    /// Name length.
    pub key_length: usize,
    /// Value bytes.
    pub value_ptr: *const u8,
    /// Value length.
    pub value_length: usize,
}

impl EnvoyHeader {
    /// An empty slot for Envoy to fill.
    pub const EMPTY: Self = Self {
        key_ptr: std::ptr::null(),
        key_length: 0,
        value_ptr: std::ptr::null(),
        value_length: 0,
    };

    /// The name and the value, copied out (read lossily when not UTF-8).
    ///
    /// # Safety
    /// Both pointers must be null or point to their lengths of readable
    /// bytes (Envoy's header, during the hook that handed it over).
    pub unsafe fn to_pair(&self) -> (String, String) {
        // SAFETY: the caller's promise, for each half.
        let (key, value) = unsafe {
            (
                EnvoyBuffer {
                    ptr: self.key_ptr,
                    length: self.key_length,
                }
                .to_vec(),
                EnvoyBuffer {
                    ptr: self.value_ptr,
                    length: self.value_length,
                }
                .to_vec(),
            )
        };
        (text(key), text(value))
    }
}

/// A header owned by the module (`envoy_dynamic_module_type_module_http_header`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ModuleHeader {
    /// Name bytes.
    pub key_ptr: *const u8,
    /// Name length.
    pub key_length: usize,
    /// Value bytes.
    pub value_ptr: *const u8,
    /// Value length.
    pub value_length: usize,
}

impl ModuleHeader {
    /// Lends a name and a value (they must outlive the call).
    pub fn of(key: &str, value: &str) -> Self {
        Self {
            key_ptr: key.as_ptr(),
            key_length: key.len(),
            value_ptr: value.as_ptr(),
            value_length: value.len(),
        }
    }
}

/// `envoy_dynamic_module_type_http_header_type`.
pub mod header_type {
    /// Request headers.
    pub const REQUEST_HEADER: u32 = 0;
    /// Request trailers.
    pub const REQUEST_TRAILER: u32 = 1;
    /// Response headers.
    pub const RESPONSE_HEADER: u32 = 2;
    /// Response trailers.
    pub const RESPONSE_TRAILER: u32 = 3;
}

/// `envoy_dynamic_module_type_http_body_type`.
pub mod body_type {
    /// The request chunk of the current body hook.
    pub const RECEIVED_REQUEST: u32 = 0;
    /// What earlier body hooks buffered of the request.
    pub const BUFFERED_REQUEST: u32 = 1;
    /// The response chunk of the current body hook.
    pub const RECEIVED_RESPONSE: u32 = 2;
    /// What earlier body hooks buffered of the response.
    pub const BUFFERED_RESPONSE: u32 = 3;
}

/// Statuses the header hooks return (`FilterHeadersStatus`).
pub mod headers_status {
    /// Go on to the next filter.
    pub const CONTINUE: u32 = 0;
    /// Hold the headers; body and trailers still reach this filter.
    pub const STOP_ITERATION: u32 = 1;
}

/// Statuses the body hooks return (`FilterDataStatus`).
pub mod body_status {
    /// Pass this chunk (and anything buffered) on.
    pub const CONTINUE: u32 = 0;
    /// Keep the chunk in Envoy's buffer and hold it.
    pub const STOP_ITERATION_AND_BUFFER: u32 = 1;
}

/// Statuses the trailer hooks return (`FilterTrailersStatus`).
pub mod trailers_status {
    /// Go on.
    pub const CONTINUE: u32 = 0;
    /// Hold.
    pub const STOP_ITERATION: u32 = 1;
}

/// `envoy_dynamic_module_type_log_level`.
pub mod log_level {
    /// Detail for debugging.
    pub const DEBUG: u32 = 1;
    /// Routine information.
    pub const INFO: u32 = 2;
    /// Something to look at.
    pub const WARN: u32 = 3;
    /// A failure.
    pub const ERROR: u32 = 4;
    /// A failure that stops the module from working.
    pub const CRITICAL: u32 = 5;
}

/// `envoy_dynamic_module_type_metadata_source_Dynamic`: the stream's
/// dynamic metadata (where `jwt_authn` writes).
pub const METADATA_SOURCE_DYNAMIC: u32 = 0;

/// `envoy_dynamic_module_type_http_filter_stream_reset_reason_LocalReset`.
pub const RESET_REASON_LOCAL: u32 = 0;

/// `envoy_dynamic_module_type_metrics_result_Success`.
pub const METRICS_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_http_callout_init_result_Success`.
pub const CALLOUT_INIT_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_http_callout_result_Success`.
pub const CALLOUT_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_attribute_id_ResponseCode` (`response.code`).
pub const ATTRIBUTE_RESPONSE_CODE: u32 = 15;

/// `envoy_dynamic_module_type_attribute_id_ResponseCodeDetails`
/// (`response.code_details`).
pub const ATTRIBUTE_RESPONSE_CODE_DETAILS: u32 = 16;

/// `envoy_dynamic_module_type_attribute_id_ConnectionMtls`
/// (`connection.mtls`: the downstream peer presented a certificate).
pub const ATTRIBUTE_CONNECTION_MTLS: u32 = 29;

/// `envoy_dynamic_module_type_attribute_id_ConnectionUriSanPeerCertificate`
/// (`connection.uri_san_peer_certificate`: its first URI SAN).
pub const ATTRIBUTE_CONNECTION_URI_SAN_PEER_CERTIFICATE: u32 = 37;

extern "C" {
    /// A string attribute of the stream (borrowed from Envoy until the
    /// end of the hook); `false` when absent or not a string.
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: FilterEnvoyPtr,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;

    /// An integer attribute of the stream; `false` when absent.
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_int(
        filter: FilterEnvoyPtr,
        attribute_id: u32,
        result: *mut u64,
    ) -> bool;

    /// A boolean attribute of the stream; `false` when absent.
    pub fn envoy_dynamic_module_callback_http_filter_get_attribute_bool(
        filter: FilterEnvoyPtr,
        attribute_id: u32,
        result: *mut bool,
    ) -> bool;

    /// Writes a line to Envoy's log under the `dynamic_modules` logger.
    pub fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);

    /// Number of entries in one header or trailer map.
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: FilterEnvoyPtr,
        header_type: u32,
    ) -> usize;

    /// Every entry of one map in one crossing; `out` must have room for
    /// `get_headers_size` entries.
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter: FilterEnvoyPtr,
        header_type: u32,
        out: *mut EnvoyHeader,
    ) -> bool;

    /// One value of one header (`index`-th), and how many it has.
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        out: *mut EnvoyBuffer,
        index: usize,
        count: *mut usize,
    ) -> bool;

    /// Replaces every value of a header; a null value removes it.
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    /// Answers locally (Envoy's `sendLocalReply`), with response-code
    /// details for `%RESPONSE_CODE_DETAILS%`.
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status: u32,
        headers: *mut ModuleHeader,
        headers_len: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );

    /// Bytes in a body buffer.
    pub fn envoy_dynamic_module_callback_http_get_body_size(
        filter: FilterEnvoyPtr,
        body_type: u32,
    ) -> usize;

    /// Number of slices of a body buffer.
    pub fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body_type: u32,
    ) -> usize;

    /// The slices of a body buffer; `out` must have room for them all.
    pub fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body_type: u32,
        out: *mut EnvoyBuffer,
    ) -> bool;

    /// Drops `len` bytes from the front of a body buffer.
    pub fn envoy_dynamic_module_callback_http_drain_body(
        filter: FilterEnvoyPtr,
        body_type: u32,
        len: usize,
    ) -> bool;

    /// Appends bytes to a body buffer.
    pub fn envoy_dynamic_module_callback_http_append_body(
        filter: FilterEnvoyPtr,
        body_type: u32,
        data: ModuleBuffer,
    ) -> bool;

    /// Number of keys in one dynamic-metadata namespace.
    pub fn envoy_dynamic_module_callback_http_get_metadata_keys_count(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
    ) -> usize;

    /// The keys of one namespace; `out` must have room for them all.
    pub fn envoy_dynamic_module_callback_http_get_metadata_keys(
        filter: FilterEnvoyPtr,
        source: u32,
        namespace: ModuleBuffer,
        out: *mut EnvoyBuffer,
    ) -> bool;

    /// Stores bytes in the stream's filter state (read by the access log
    /// as `%FILTER_STATE(key:PLAIN)%`).
    pub fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        filter: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;

    /// Resets the stream (both directions).
    pub fn envoy_dynamic_module_callback_http_filter_reset_stream(
        filter: FilterEnvoyPtr,
        reason: u32,
        details: ModuleBuffer,
    );

    /// Defines a counter while the configuration is created (stat
    /// creation is frozen afterwards).
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_len: usize,
        id: *mut usize,
    ) -> u32;

    /// Defines a gauge while the configuration is created.
    pub fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_len: usize,
        id: *mut usize,
    ) -> u32;

    /// Defines a histogram while the configuration is created.
    pub fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_len: usize,
        id: *mut usize,
    ) -> u32;

    /// Records one histogram value from a stream.
    pub fn envoy_dynamic_module_callback_http_filter_record_histogram_value(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> u32;

    /// Makes Envoy choose the stream's route again (after the module set
    /// a header a route reads); a no-op in the wrong phase.
    pub fn envoy_dynamic_module_callback_http_clear_route_cache(filter: FilterEnvoyPtr);

    /// Adds to a counter from a stream.
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> u32;

    /// Adds to a counter outside any stream (bundle sync, main thread).
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> u32;

    /// Sets a gauge outside any stream (bundle sync, main thread).
    pub fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        config: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> u32;

    /// A scheduler that posts events to the main thread from any thread.
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: ConfigEnvoyPtr,
    ) -> ConfigSchedulerPtr;

    /// Posts `event_id` to the main thread (arrives in the config's
    /// scheduled hook).
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: ConfigSchedulerPtr,
        event_id: u64,
    );

    /// Frees a scheduler.
    pub fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(
        scheduler: ConfigSchedulerPtr,
    );

    /// Sends an HTTP request to a cluster from the configuration (main
    /// thread); the answer arrives in the config's callout-done hook.
    pub fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: ConfigEnvoyPtr,
        callout_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_len: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> u32;

    /// Sends an HTTP request to a cluster on behalf of one stream (worker
    /// thread); the answer arrives in the stream's callout-done hook.
    /// Envoy cancels it if the stream goes away first.
    pub fn envoy_dynamic_module_callback_http_filter_http_callout(
        filter: FilterEnvoyPtr,
        callout_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_len: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> u32;

    /// Resumes a request the module stopped (headers, body or trailers).
    pub fn envoy_dynamic_module_callback_http_filter_continue_decoding(filter: FilterEnvoyPtr);
}
