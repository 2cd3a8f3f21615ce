//! Hostcalls that steer a stream: resume, reset, local replies, and HTTP
//! calls to other clusters.
//!
//! As in Envoy these only record what the filter asked for; the host acts on
//! it once the current callback has returned (see `flow`).

use std::time::Duration;

use wasmtime::{Caller, Linker};

use super::code;
use super::memory::{read, read_string, u, write_u32};
use super::status::Status;
use super::types::StreamType;
use crate::header_map::HeaderMap;
use crate::http_calls::HttpCall;
use crate::state::{HostState, LocalReply};

type C<'a> = Caller<'a, HostState>;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap("env", "proxy_continue_stream", |mut c: C<'_>, kind: i32| {
        code(resume(c.data_mut(), kind))
    })?;
    linker.func_wrap("env", "proxy_resume_http_request", |mut c: C<'_>| {
        code(resume(c.data_mut(), 0))
    })?;
    linker.func_wrap("env", "proxy_resume_http_response", |mut c: C<'_>| {
        code(resume(c.data_mut(), 1))
    })?;
    linker.func_wrap("env", "proxy_close_stream", |mut c: C<'_>, kind: i32| {
        code(close(c.data_mut(), kind))
    })?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: C<'_>,
         status: i32,
         details: i32,
         details_len: i32,
         body: i32,
         body_len: i32,
         headers: i32,
         headers_len: i32,
         grpc_status: i32| {
            code(
                read_local_reply(
                    &c,
                    status,
                    (details, details_len),
                    (body, body_len),
                    (headers, headers_len),
                    grpc_status,
                )
                .and_then(|reply| {
                    let stream = c.data_mut().stream_mut().ok_or(Status::BadArgument)?;
                    if stream.local_reply.is_none() {
                        stream.local_reply = Some(reply);
                        stream.local_reply_pending = true;
                    }
                    Ok(())
                }),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: C<'_>,
         upstream: i32,
         upstream_len: i32,
         headers: i32,
         headers_len: i32,
         body: i32,
         body_len: i32,
         trailers: i32,
         trailers_len: i32,
         timeout_ms: i32,
         token_out: i32| {
            let call = read_http_call(
                &c,
                (upstream, upstream_len),
                (headers, headers_len),
                (body, body_len),
                (trailers, trailers_len),
                timeout_ms,
            );
            code(call.and_then(|call| {
                // Validate the out-parameter before the call exists.
                write_u32(&mut c, token_out, 0)?;
                let token = c.data_mut().http.dispatch(call);
                write_u32(&mut c, token_out, token)
            }))
        },
    )?;
    Ok(())
}

fn resume(state: &mut HostState, kind: i32) -> Result<(), Status> {
    let kind = StreamType::from_i32(kind).ok_or(Status::BadArgument)?;
    let stream = state.stream_mut().ok_or(Status::BadArgument)?;
    match kind {
        StreamType::HttpRequest => stream.request.resume_requested = true,
        StreamType::HttpResponse => stream.response.resume_requested = true,
        StreamType::Downstream | StreamType::Upstream => return Err(Status::BadArgument),
    }
    Ok(())
}

fn close(state: &mut HostState, kind: i32) -> Result<(), Status> {
    let kind = StreamType::from_i32(kind).ok_or(Status::BadArgument)?;
    let stream = state.stream_mut().ok_or(Status::BadArgument)?;
    match kind {
        StreamType::HttpRequest | StreamType::HttpResponse => stream.reset = true,
        StreamType::Downstream | StreamType::Upstream => return Err(Status::BadArgument),
    }
    Ok(())
}

fn text_pairs(raw: &[u8]) -> Result<Vec<(String, String)>, Status> {
    let pairs = crate::pairs::decode(raw).map_err(|_| Status::BadArgument)?;
    Ok(HeaderMap::from_raw(pairs).to_pairs())
}

fn read_local_reply(
    c: &C<'_>,
    status: i32,
    details: (i32, i32),
    body: (i32, i32),
    headers: (i32, i32),
    grpc_status: i32,
) -> Result<LocalReply, Status> {
    Ok(LocalReply {
        status: u(status),
        details: read_string(c, details.0, details.1)?,
        body: read(c, body.0, body.1)?,
        headers: text_pairs(&read(c, headers.0, headers.1)?)?,
        grpc_status,
    })
}

fn read_http_call(
    c: &C<'_>,
    upstream: (i32, i32),
    headers: (i32, i32),
    body: (i32, i32),
    trailers: (i32, i32),
    timeout_ms: i32,
) -> Result<HttpCall, Status> {
    let call = HttpCall {
        token: 0,
        context_id: c.data().effective,
        upstream: read_string(c, upstream.0, upstream.1)?,
        headers: text_pairs(&read(c, headers.0, headers.1)?)?,
        body: read(c, body.0, body.1)?,
        trailers: text_pairs(&read(c, trailers.0, trailers.1)?)?,
        timeout: Duration::from_millis(u64::from(u(timeout_ms))),
        dispatched_at_nanos: c.data().now_nanos,
    };
    // Envoy refuses a call without these pseudo-headers, and a call to a
    // cluster it does not know.
    for required in [":method", ":path", ":authority"] {
        if call.header(required).is_none_or(str::is_empty) {
            return Err(Status::BadArgument);
        }
    }
    if let Some(known) = &c.data().known_clusters {
        if !known.contains(&call.upstream) {
            return Err(Status::BadArgument);
        }
    }
    Ok(call)
}
