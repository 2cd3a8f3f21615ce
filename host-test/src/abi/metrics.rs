//! Metric hostcalls.

use wasmtime::{Caller, Linker};

use super::code;
use super::memory::{read_string, u, write_u32, write_u64};
use super::status::Status;
use crate::metrics::MetricType;
use crate::state::HostState;

type C<'a> = Caller<'a, HostState>;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: C<'_>, kind: i32, name: i32, name_len: i32, id_out: i32| {
            code(read_string(&c, name, name_len).and_then(|name| {
                let kind = MetricType::from_u32(u(kind)).ok_or(Status::BadArgument)?;
                // Check the out-parameter first so a bad pointer defines nothing.
                write_u32(&mut c, id_out, 0)?;
                let id = c.data_mut().metrics.define(kind, &name);
                write_u32(&mut c, id_out, id)
            }))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |mut c: C<'_>, id: i32, offset: i64| c.data_mut().metrics.increment(u(id), offset).code(),
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |mut c: C<'_>, id: i32, value: i64| c.data_mut().metrics.record(u(id), value as u64).code(),
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: C<'_>, id: i32, out: i32| {
            let value = c.data().metrics.get(u(id));
            code(value.and_then(|v| write_u64(&mut c, out, v)))
        },
    )?;
    Ok(())
}
