//! The handful of WASI preview1 (`wasi_snapshot_preview1`) calls a Rust
//! `wasm32-wasip1` filter imports, implemented without a filesystem.
//!
//! stdout and stderr are captured into the log (panic messages arrive on
//! stderr); the clocks read the settable host time; `random_get` is
//! deterministic; there are no files, arguments or environment variables.
//! `proc_exit` traps, which kills the VM like any other trap. Any other WASI
//! import a module might have is defined as a trap at instantiation.

use wasmtime::{Caller, Linker};

use super::memory::{read, u, write, write_u32, write_u64};
use crate::log::LogSource;
use crate::state::HostState;

type C<'a> = Caller<'a, HostState>;

const MODULE: &str = "wasi_snapshot_preview1";

/// WASI errno values used here.
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const INVAL: i32 = 28;
    pub const NOSYS: i32 = 52;
    pub const SPIPE: i32 = 70;
}

/// `filetype::character_device`, what stdio descriptors report.
const CHARACTER_DEVICE: u8 = 2;

fn is_stdio(fd: i32) -> bool {
    (0..=2).contains(&fd)
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        MODULE,
        "fd_write",
        |mut c: C<'_>, fd: i32, iovs: i32, iovs_len: i32, nwritten: i32| {
            let source = match fd {
                1 => LogSource::Stdout,
                2 => LogSource::Stderr,
                _ => return errno::BADF,
            };
            let Some(data) = gather(&c, iovs, iovs_len) else {
                return errno::FAULT;
            };
            let Ok(written) = u32::try_from(data.len()) else {
                return errno::INVAL;
            };
            if write_u32(&mut c, nwritten, written).is_err() {
                return errno::FAULT;
            }
            let ctx = c.data().effective;
            c.data_mut().logs.write_fd(source, &data, ctx);
            errno::SUCCESS
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_read",
        |_c: C<'_>, _fd: i32, _iovs: i32, _len: i32, _nread: i32| errno::BADF,
    )?;
    linker.func_wrap(MODULE, "fd_close", |_c: C<'_>, fd: i32| {
        if is_stdio(fd) {
            errno::SUCCESS
        } else {
            errno::BADF
        }
    })?;
    linker.func_wrap(
        MODULE,
        "fd_seek",
        |_c: C<'_>, fd: i32, _offset: i64, _whence: i32, _out: i32| {
            if is_stdio(fd) {
                errno::SPIPE
            } else {
                errno::BADF
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_get",
        |mut c: C<'_>, fd: i32, out: i32| {
            if !is_stdio(fd) {
                return errno::BADF;
            }
            // fdstat: filetype u8, pad, flags u16, pad, rights_base u64,
            // rights_inheriting u64 (24 bytes).
            let mut stat = [0u8; 24];
            stat[0] = CHARACTER_DEVICE;
            stat[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
            match write(&mut c, out, &stat) {
                Ok(()) => errno::SUCCESS,
                Err(_) => errno::FAULT,
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "fd_fdstat_set_flags",
        |_c: C<'_>, _fd: i32, _f: i32| errno::NOSYS,
    )?;
    linker.func_wrap(
        MODULE,
        "fd_prestat_get",
        |_c: C<'_>, _fd: i32, _out: i32| errno::BADF,
    )?;
    linker.func_wrap(
        MODULE,
        "fd_prestat_dir_name",
        |_c: C<'_>, _fd: i32, _ptr: i32, _len: i32| errno::BADF,
    )?;
    linker.func_wrap(
        MODULE,
        "fd_filestat_get",
        |_c: C<'_>, _fd: i32, _out: i32| errno::BADF,
    )?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        linker.func_wrap(
            MODULE,
            name,
            |mut c: C<'_>, count: i32, size: i32| match write_u32(&mut c, count, 0)
                .and(write_u32(&mut c, size, 0))
            {
                Ok(()) => errno::SUCCESS,
                Err(_) => errno::FAULT,
            },
        )?;
    }
    for name in ["environ_get", "args_get"] {
        linker.func_wrap(MODULE, name, |_c: C<'_>, _ptrs: i32, _buf: i32| {
            errno::SUCCESS
        })?;
    }
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        |mut c: C<'_>, _id: i32, _precision: i64, out: i32| {
            let now = c.data().now_nanos;
            match write_u64(&mut c, out, now) {
                Ok(()) => errno::SUCCESS,
                Err(_) => errno::FAULT,
            }
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_res_get",
        |mut c: C<'_>, _id: i32, out: i32| match write_u64(&mut c, out, 1) {
            Ok(()) => errno::SUCCESS,
            Err(_) => errno::FAULT,
        },
    )?;
    linker.func_wrap(MODULE, "random_get", |mut c: C<'_>, buf: i32, len: i32| {
        let mut bytes = vec![0u8; u(len) as usize];
        if super::memory::checked_range(
            c.data().memory.map_or(0, |m| m.data_size(&c)),
            u(buf),
            u(len),
        )
        .is_none()
        {
            return errno::FAULT;
        }
        c.data_mut().rng.fill(&mut bytes);
        match write(&mut c, buf, &bytes) {
            Ok(()) => errno::SUCCESS,
            Err(_) => errno::FAULT,
        }
    })?;
    linker.func_wrap(MODULE, "sched_yield", |_c: C<'_>| errno::SUCCESS)?;
    linker.func_wrap(
        MODULE,
        "poll_oneoff",
        |_c: C<'_>, _in: i32, _out: i32, _n: i32, _events: i32| errno::NOSYS,
    )?;
    linker.func_wrap(
        MODULE,
        "proc_exit",
        |_c: C<'_>, status: i32| -> wasmtime::Result<()> {
            Err(wasmtime::Error::msg(format!(
                "guest called proc_exit({status})"
            )))
        },
    )?;
    Ok(())
}

/// Concatenates the iovec list of an `fd_write`; `None` on a bad pointer.
fn gather(c: &C<'_>, iovs: i32, iovs_len: i32) -> Option<Vec<u8>> {
    let table_len = u(iovs_len).checked_mul(8)?;
    let table = read(c, iovs, table_len as i32).ok()?;
    let mut data = Vec::new();
    for iov in table.chunks_exact(8) {
        let ptr = u32::from_le_bytes(iov[0..4].try_into().ok()?);
        let len = u32::from_le_bytes(iov[4..8].try_into().ok()?);
        data.extend_from_slice(&read(c, ptr as i32, len as i32).ok()?);
    }
    Some(data)
}
