//! Shared data and shared queue hostcalls.

use wasmtime::{Caller, Linker};

use super::memory::{read, read_string, return_bytes, u, write_u32};
use super::status::Status;
use super::{code, code_or_trap};
use crate::state::HostState;

type C<'a> = Caller<'a, HostState>;

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: C<'_>, key: i32, key_len: i32, ptr_ptr: i32, size_ptr: i32, cas_ptr: i32| {
            let found = read_string(&c, key, key_len).and_then(|key| {
                c.data()
                    .shared
                    .borrow()
                    .get(&key)
                    .map(|(value, cas)| (value.to_vec(), cas))
                    .ok_or(Status::NotFound)
            });
            let (value, cas) = match found {
                Ok(found) => found,
                Err(status) => return Ok(status.code()),
            };
            if let Err(status) = write_u32(&mut c, cas_ptr, cas) {
                return Ok(status.code());
            }
            code_or_trap(return_bytes(&mut c, &value, ptr_ptr, size_ptr))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |c: C<'_>, key: i32, key_len: i32, value: i32, value_len: i32, cas: i32| {
            code(read_string(&c, key, key_len).and_then(|key| {
                let value = read(&c, value, value_len)?;
                match c.data().shared.borrow_mut().set(&key, value, u(cas)) {
                    Status::Ok => Ok(()),
                    status => Err(status),
                }
            }))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: C<'_>, name: i32, name_len: i32, id_out: i32| {
            code(read_string(&c, name, name_len).and_then(|name| {
                let state = c.data_mut();
                let (vm_id, owner) = (state.vm_id.clone(), state.root_id);
                let id = state
                    .shared
                    .borrow_mut()
                    .register_queue(&vm_id, &name, owner);
                write_u32(&mut c, id_out, id)
            }))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: C<'_>, vm: i32, vm_len: i32, name: i32, name_len: i32, id_out: i32| {
            code(
                read_string(&c, vm, vm_len)
                    .and_then(|vm_id| Ok((vm_id, read_string(&c, name, name_len)?)))
                    .and_then(|(vm_id, name)| {
                        let id = c
                            .data()
                            .shared
                            .borrow()
                            .find_queue(&vm_id, &name)
                            .ok_or(Status::NotFound)?;
                        write_u32(&mut c, id_out, id)
                    }),
            )
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |c: C<'_>, id: i32, value: i32, value_len: i32| {
            code(read(&c, value, value_len).and_then(|value| {
                match c.data().shared.borrow_mut().enqueue(u(id), value) {
                    Status::Ok => Ok(()),
                    status => Err(status),
                }
            }))
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: C<'_>, id: i32, ptr_ptr: i32, size_ptr: i32| {
            let value = match c.data().shared.borrow_mut().dequeue(u(id)) {
                Ok(value) => value,
                Err(status) => return Ok(status.code()),
            };
            code_or_trap(return_bytes(&mut c, &value, ptr_ptr, size_ptr))
        },
    )?;
    Ok(())
}
