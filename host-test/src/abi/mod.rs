//! The proxy-wasm ABI 0.2.1 imports (module `env`) and the WASI preview1
//! subset the filter needs, registered on a wasmtime [`Linker`].
//!
//! Each submodule owns one family of hostcalls. Every hostcall validates
//! its arguments and returns a [`status::Status`]; only a trap raised by the
//! guest itself (e.g. inside `proxy_on_memory_allocate`) or `proc_exit`
//! makes a hostcall fail.

pub mod buffers;
pub mod context;
pub mod headers;
pub mod memory;
pub mod metrics;
pub mod properties;
pub mod shared;
pub mod status;
pub mod stream_control;
pub mod types;
pub mod wasi;

use wasmtime::Linker;

use crate::state::HostState;
use status::Status;

/// Registers every hostcall this host provides.
pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    context::add_to_linker(linker)?;
    buffers::add_to_linker(linker)?;
    headers::add_to_linker(linker)?;
    properties::add_to_linker(linker)?;
    shared::add_to_linker(linker)?;
    stream_control::add_to_linker(linker)?;
    metrics::add_to_linker(linker)?;
    wasi::add_to_linker(linker)?;
    Ok(())
}

/// Collapses a hostcall outcome into the status code the guest receives.
pub(crate) fn code(result: Result<(), Status>) -> i32 {
    match result {
        Ok(()) => Status::Ok.code(),
        Err(status) => status.code(),
    }
}

/// Like [`code`] for hostcalls that may propagate a guest trap.
pub(crate) fn code_or_trap(result: wasmtime::Result<Result<(), Status>>) -> wasmtime::Result<i32> {
    result.map(code)
}
