//! Hostcalls about the VM and its contexts: logging, time, ticks, the
//! effective context, and the calls this host does not support (gRPC,
//! foreign functions).

use wasmtime::{Caller, Linker};

use super::code;
use super::memory::{read, u, write_u32, write_u64};
use super::status::Status;
use crate::log::LogLevel;
use crate::state::HostState;

type C<'a> = Caller<'a, HostState>;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: C<'_>, level: i32, ptr: i32, len: i32| match log(&c, level, ptr, len) {
            Ok(Some((level, message))) => {
                let ctx = c.data().effective;
                c.data_mut().logs.log(level, &message, ctx);
                Status::Ok.code()
            }
            Ok(None) => Status::Ok.code(),
            Err(status) => status.code(),
        },
    )?;
    linker.func_wrap("env", "proxy_get_log_level", |mut c: C<'_>, out: i32| {
        let level = c.data().log_level.as_u32();
        code(write_u32(&mut c, out, level))
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: C<'_>, out: i32| {
            let now = c.data().now_nanos;
            code(write_u64(&mut c, out, now))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: C<'_>, period: i32| {
            c.data_mut().tick_period_ms = u(period);
            Status::Ok.code()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: C<'_>, id: i32| {
            if c.data().context_exists(u(id)) {
                c.data_mut().effective = u(id);
                Status::Ok.code()
            } else {
                Status::BadArgument.code()
            }
        },
    )?;
    linker.func_wrap("env", "proxy_done", |_c: C<'_>| Status::Ok.code())?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: C<'_>,
         name: i32,
         name_len: i32,
         args: i32,
         args_len: i32,
         _out: i32,
         _size: i32| {
            let name =
                match read(&c, name, name_len).and_then(|n| read(&c, args, args_len).map(|_| n)) {
                    Ok(name) => name,
                    Err(status) => return status.code(),
                };
            // Envoy registers `clear_route_cache` (it makes the stream choose
            // its route again; nothing to return). Any other name is
            // NotFound, which the SDK maps to an error instead of panicking.
            if name == b"clear_route_cache" {
                if let Some(stream) = c.data_mut().stream_mut() {
                    stream.route_cache_clears += 1;
                }
                return Status::Ok.code();
            }
            Status::NotFound.code()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |_c: C<'_>, _code: i32, _ptr: i32, _size: i32| Status::Unimplemented.code(),
    )?;
    add_grpc_stubs(linker)
}

/// Validates a `proxy_log` call; `None` when the level is filtered out.
fn log(c: &C<'_>, level: i32, ptr: i32, len: i32) -> Result<Option<(LogLevel, Vec<u8>)>, Status> {
    let level = LogLevel::from_u32(u(level)).ok_or(Status::BadArgument)?;
    let message = read(c, ptr, len)?;
    Ok((level >= c.data().log_level).then_some((level, message)))
}

/// gRPC is not simulated: every gRPC hostcall answers Unimplemented.
fn add_grpc_stubs(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let unimplemented = Status::Unimplemented.code();
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        move |_c: C<'_>,
              _a: i32,
              _b: i32,
              _c2: i32,
              _d: i32,
              _e: i32,
              _f: i32,
              _g: i32,
              _h: i32,
              _i: i32,
              _j: i32,
              _k: i32,
              _l: i32| unimplemented,
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        move |_c: C<'_>,
              _a: i32,
              _b: i32,
              _c2: i32,
              _d: i32,
              _e: i32,
              _f: i32,
              _g: i32,
              _h: i32,
              _i: i32| unimplemented,
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        move |_c: C<'_>, _a: i32, _b: i32, _c2: i32, _d: i32| unimplemented,
    )?;
    linker.func_wrap("env", "proxy_grpc_cancel", move |_c: C<'_>, _a: i32| {
        unimplemented
    })?;
    linker.func_wrap("env", "proxy_grpc_close", move |_c: C<'_>, _a: i32| {
        unimplemented
    })?;
    Ok(())
}
