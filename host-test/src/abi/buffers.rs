//! `proxy_get_buffer_bytes` / `proxy_set_buffer_bytes`.
//!
//! Bodies are the bytes currently held at the filter for the effective
//! stream (the whole buffered body while the filter buffers), reachable only
//! during a body callback or while the filter buffers, as in Envoy: at
//! trailers after streaming bodies a read finds nothing (NotFound) and a
//! write answers BadArgument. Configuration
//! buffers are visible when Envoy shows them: the VM configuration always,
//! the plugin configuration only during `proxy_on_configure`. The HTTP call
//! response body only during `proxy_on_http_call_response`.

use wasmtime::{Caller, Linker};

use super::memory::{read, return_bytes, u};
use super::status::Status;
use super::types::BufferType;
use super::{code, code_or_trap};
use crate::state::{Direction, HostState};

type C<'a> = Caller<'a, HostState>;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, max: i32, ptr_ptr: i32, size_ptr: i32| {
            let data = match slice_of(c.data(), kind, u(start), u(max)) {
                Ok(Some(data)) => data,
                // Envoy returns Ok without touching the out-parameters when
                // the requested range is empty.
                Ok(None) => return Ok(Status::Ok.code()),
                Err(status) => return Ok(status.code()),
            };
            code_or_trap(return_bytes(&mut c, &data, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: C<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
            code(read(&c, ptr, len).and_then(|data| {
                let body = body_mut(c.data_mut(), kind)?;
                splice(body, u(start) as usize, u(size) as usize, &data)
            }))
        },
    )?;
    Ok(())
}

/// Copies `[start, start + max)` of a buffer, clamped to its length.
fn slice_of(state: &HostState, kind: i32, start: u32, max: u32) -> Result<Option<Vec<u8>>, Status> {
    let kind = BufferType::from_i32(kind).ok_or(Status::BadArgument)?;
    let buffer: &[u8] = match kind {
        BufferType::HttpRequestBody => body_of(&state.stream().ok_or(Status::NotFound)?.request)?,
        BufferType::HttpResponseBody => body_of(&state.stream().ok_or(Status::NotFound)?.response)?,
        BufferType::HttpCallResponseBody => {
            &state.http.active.as_ref().ok_or(Status::NotFound)?.body
        }
        BufferType::VmConfiguration => &state.vm_config,
        BufferType::PluginConfiguration => {
            state.plugin_config.as_deref().ok_or(Status::NotFound)?
        }
        BufferType::DownstreamData
        | BufferType::UpstreamData
        | BufferType::GrpcReceiveBuffer
        | BufferType::CallData => return Err(Status::NotFound),
    };
    // Envoy computes in 64 bits, so `start + max` never overflows for
    // 32-bit arguments (the SDK passes `usize::MAX` as "everything").
    let start = start as usize;
    if start >= buffer.len() || max == 0 {
        return Ok(None);
    }
    let end = buffer.len().min(start.saturating_add(max as usize));
    Ok(Some(buffer[start..end].to_vec()))
}

/// A direction's body when Envoy exposes it now.
fn body_of(d: &Direction) -> Result<&[u8], Status> {
    if d.body_available() {
        Ok(&d.body)
    } else {
        Err(Status::NotFound)
    }
}

/// The mutable body buffers; every other buffer is read-only in Envoy.
fn body_mut(state: &mut HostState, kind: i32) -> Result<&mut Vec<u8>, Status> {
    let kind = BufferType::from_i32(kind).ok_or(Status::BadArgument)?;
    let d = match (kind, state.stream_mut()) {
        (BufferType::HttpRequestBody, Some(s)) => &mut s.request,
        (BufferType::HttpResponseBody, Some(s)) => &mut s.response,
        _ => return Err(Status::BadArgument),
    };
    if !d.body_available() {
        return Err(Status::BadArgument);
    }
    Ok(&mut d.body)
}

/// Envoy's buffer replacement rule: at `start == 0` drop the first `size`
/// bytes and prepend `data`; at or past the end append; anything in the
/// middle is refused.
pub(crate) fn splice(
    body: &mut Vec<u8>,
    start: usize,
    size: usize,
    data: &[u8],
) -> Result<(), Status> {
    if start == 0 {
        let drop = size.min(body.len());
        body.splice(..drop, data.iter().copied());
        Ok(())
    } else if start >= body.len() {
        body.extend_from_slice(data);
        Ok(())
    } else {
        Err(Status::BadArgument)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_follows_envoy() {
        let mut body = b"hello world".to_vec();
        splice(&mut body, 0, usize::MAX, b"bye").unwrap();
        assert_eq!(body, b"bye");
        splice(&mut body, 0, 0, b">").unwrap();
        assert_eq!(body, b">bye");
        splice(&mut body, 0, 1, b"").unwrap();
        assert_eq!(body, b"bye");
        splice(&mut body, 3, 0, b"!").unwrap();
        assert_eq!(body, b"bye!");
        splice(&mut body, 100, 0, b"?").unwrap();
        assert_eq!(body, b"bye!?");
        assert_eq!(splice(&mut body, 2, 1, b"x"), Err(Status::BadArgument));
    }
}
