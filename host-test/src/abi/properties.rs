//! `proxy_get_property` / `proxy_set_property`.
//!
//! Reads look, in order, at: the stream's test-set properties, the root
//! (plugin-wide) properties, the request/response attributes Envoy derives
//! from headers (`request.path`, `request.method`, `response.code`, ...),
//! `filter_state.<key>`, and finally filter state `wasm.<name>` for a
//! one-segment path (how Envoy reads back what the filter set). Writes
//! become filter state `wasm.<raw path>`.

use wasmtime::{Caller, Linker};

use super::memory::{read, return_bytes};
use super::status::Status;
use super::{code, code_or_trap};
use crate::envoy_encoding::encode_envoy_int;
use crate::header_map::HeaderMap;
use crate::properties::{filter_state_key, split_path, FILTER_STATE_PREFIX};
use crate::state::{HostState, StreamState};

type C<'a> = Caller<'a, HostState>;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: C<'_>, path: i32, path_len: i32, ptr_ptr: i32, size_ptr: i32| {
            let value = match read(&c, path, path_len)
                .and_then(|raw| lookup(c.data(), &split_path(&raw)).ok_or(Status::NotFound))
            {
                Ok(value) => value,
                Err(status) => return Ok(status.code()),
            };
            code_or_trap(return_bytes(&mut c, &value, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: C<'_>, path: i32, path_len: i32, value: i32, value_len: i32| {
            code(read(&c, path, path_len).and_then(|raw| {
                let value = read(&c, value, value_len)?;
                if split_path(&raw).is_empty() {
                    return Err(Status::BadArgument);
                }
                let key = filter_state_key(&raw);
                let state = c.data_mut();
                match state.stream_mut() {
                    Some(stream) => stream.filter_state.insert(key, value),
                    None => state.root_filter_state.insert(key, value),
                };
                Ok(())
            }))
        },
    )?;
    Ok(())
}

/// Resolves a property path for the effective context.
pub(crate) fn lookup(state: &HostState, path: &[String]) -> Option<Vec<u8>> {
    let stream = state.stream();
    if let Some(value) = stream.and_then(|s| s.properties.get(path)) {
        return Some(value);
    }
    if let Some(value) = state.root_properties.get(path) {
        return Some(value);
    }
    if let Some(value) = stream.and_then(|s| derived(s, path)) {
        return Some(value);
    }
    let filter_state = stream.map_or(&state.root_filter_state, |s| &s.filter_state);
    match path {
        [first, key] if first == "filter_state" => filter_state.get(key).cloned(),
        [name] => filter_state
            .get(&format!("{FILTER_STATE_PREFIX}{name}"))
            .cloned(),
        _ => None,
    }
}

/// Attributes Envoy computes from the stream's headers.
fn derived(stream: &StreamState, path: &[String]) -> Option<Vec<u8>> {
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let request = stream
        .request
        .headers_received
        .then_some(&stream.request.headers);
    let response = stream
        .response
        .headers_received
        .then_some(&stream.response.headers);
    let header =
        |map: Option<&HeaderMap>, name: &str| map?.get(name.as_bytes()).map(<[u8]>::to_vec);
    match segments.as_slice() {
        ["request", "path"] => header(request, ":path"),
        ["request", "url_path"] => header(request, ":path").map(|p| {
            let end = p.iter().position(|&b| b == b'?').unwrap_or(p.len());
            p[..end].to_vec()
        }),
        ["request", "host"] => header(request, ":authority"),
        ["request", "method"] => header(request, ":method"),
        ["request", "scheme"] => header(request, ":scheme"),
        ["request", "id"] => header(request, "x-request-id"),
        ["request", "headers"] => request.map(HeaderMap::encode),
        ["request", "headers", name] => header(request, name),
        ["response", "code"] => {
            let status = header(response, ":status")?;
            let code = String::from_utf8_lossy(&status).parse::<i64>().ok()?;
            Some(encode_envoy_int(code))
        }
        ["response", "headers"] => response.map(HeaderMap::encode),
        ["response", "headers", name] => header(response, name),
        _ => None,
    }
}
