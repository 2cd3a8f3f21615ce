//! Header map hostcalls.
//!
//! A map is available only when Envoy has it (measured on Envoy 1.40, see
//! `docs/envoy-trailers.md`): headers and trailers from their callback on,
//! until that callback returns `Continue` (Envoy then drops the map); HTTP
//! call response headers and trailers during `proxy_on_http_call_response`.
//! During `proxy_on_log` the request headers, response headers and response
//! trailers that arrived are readable again (Envoy's access-log copies) but
//! not writable. Asking for a map that is not available answers
//! BadArgument, as Envoy does ("requested map type is not currently
//! available").

use wasmtime::{Caller, Linker};

use super::memory::{read, return_bytes};
use super::status::Status;
use super::types::MapType;
use super::{code, code_or_trap};
use crate::header_map::HeaderMap;
use crate::state::{Direction, HostState};

type C<'a> = Caller<'a, HostState>;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: C<'_>, kind: i32, ptr_ptr: i32, size_ptr: i32| {
            let encoded = match map(c.data(), kind) {
                Ok(map) => map.encode(),
                Err(status) => return Ok(status.code()),
            };
            code_or_trap(return_bytes(&mut c, &encoded, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: C<'_>, kind: i32, ptr: i32, len: i32| {
            code(read(&c, ptr, len).and_then(|raw| {
                let pairs = crate::pairs::decode(&raw).map_err(|_| Status::BadArgument)?;
                *map_mut(c.data_mut(), kind)? = HeaderMap::from_raw(pairs);
                Ok(())
            }))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32, ptr_ptr: i32, size_ptr: i32| {
            let value = match read(&c, key, key_len).and_then(|key| {
                map(c.data(), kind)?
                    .get(&key)
                    .map(<[u8]>::to_vec)
                    .ok_or(Status::NotFound)
            }) {
                Ok(value) => value,
                Err(status) => return Ok(status.code()),
            };
            code_or_trap(return_bytes(&mut c, &value, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32, value: i32, value_len: i32| {
            code(
                read_pair(&c, key, key_len, value, value_len).and_then(|(k, v)| {
                    map_mut(c.data_mut(), kind)?.add(&k, &v);
                    Ok(())
                }),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32, value: i32, value_len: i32| {
            code(
                read_pair(&c, key, key_len, value, value_len).and_then(|(k, v)| {
                    map_mut(c.data_mut(), kind)?.replace(&k, &v);
                    Ok(())
                }),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: C<'_>, kind: i32, key: i32, key_len: i32| {
            code(read(&c, key, key_len).and_then(|k| {
                map_mut(c.data_mut(), kind)?.remove(&k);
                Ok(())
            }))
        },
    )?;
    Ok(())
}

fn read_pair(
    c: &C<'_>,
    key: i32,
    key_len: i32,
    value: i32,
    value_len: i32,
) -> Result<(Vec<u8>, Vec<u8>), Status> {
    Ok((read(c, key, key_len)?, read(c, value, value_len)?))
}

/// The map of `kind` as Envoy would expose it now, read-only.
fn map(state: &HostState, kind: i32) -> Result<&HeaderMap, Status> {
    let kind = MapType::from_i32(kind).ok_or(Status::BadArgument)?;
    if let MapType::HttpCallResponseHeaders | MapType::HttpCallResponseTrailers = kind {
        let active = state.http.active.as_ref().ok_or(Status::BadArgument)?;
        return Ok(if kind == MapType::HttpCallResponseHeaders {
            &active.headers
        } else {
            &active.trailers
        });
    }
    let stream = state.stream().ok_or(Status::BadArgument)?;
    let log = state.in_log;
    match kind {
        MapType::RequestHeaders if headers_live(&stream.request, log) => {
            Ok(&stream.request.headers)
        }
        MapType::RequestTrailers if trailers_live(&stream.request, false) => {
            Ok(&stream.request.trailers)
        }
        MapType::ResponseHeaders if headers_live(&stream.response, log) => {
            Ok(&stream.response.headers)
        }
        MapType::ResponseTrailers if trailers_live(&stream.response, log) => {
            Ok(&stream.response.trailers)
        }
        _ => Err(Status::BadArgument),
    }
}

/// Envoy still holds the headers of `d` (or shows its access-log copy).
fn headers_live(d: &Direction, in_log: bool) -> bool {
    d.headers_received && (!d.headers_gone || in_log)
}

/// Envoy still holds the trailers of `d` (or shows its access-log copy).
fn trailers_live(d: &Direction, in_log: bool) -> bool {
    d.trailers_received && (!d.trailers_gone || in_log)
}

/// The map of `kind` for mutation; HTTP call responses are read-only.
fn map_mut(state: &mut HostState, kind: i32) -> Result<&mut HeaderMap, Status> {
    let kind = MapType::from_i32(kind).ok_or(Status::BadArgument)?;
    let stream = state.stream_mut().ok_or(Status::BadArgument)?;
    match kind {
        MapType::RequestHeaders if headers_live(&stream.request, false) => {
            Ok(&mut stream.request.headers)
        }
        MapType::RequestTrailers if trailers_live(&stream.request, false) => {
            Ok(&mut stream.request.trailers)
        }
        MapType::ResponseHeaders if headers_live(&stream.response, false) => {
            Ok(&mut stream.response.headers)
        }
        MapType::ResponseTrailers if trailers_live(&stream.response, false) => {
            Ok(&mut stream.response.trailers)
        }
        _ => Err(Status::BadArgument),
    }
}
