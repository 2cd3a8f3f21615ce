//! Bounds-checked access to guest memory.
//!
//! Every pointer and length the guest passes is untrusted: ranges are checked
//! with overflow-safe arithmetic and a bad one becomes
//! [`Status::InvalidMemoryAccess`] for the guest, never a host panic. Data
//! returned to the guest is written into memory obtained from the guest's
//! own `proxy_on_memory_allocate`, as Envoy does, and the pointer and size go
//! to out-parameters as little-endian `u32`s.

use std::ops::Range;

use wasmtime::{Caller, Memory};

use super::status::Status;
use crate::state::HostState;

/// Checks that `[ptr, ptr + len)` lies inside a memory of `mem_len` bytes.
pub fn checked_range(mem_len: usize, ptr: u32, len: u32) -> Option<Range<usize>> {
    let start = ptr as usize;
    let end = start.checked_add(len as usize)?;
    (end <= mem_len).then_some(start..end)
}

/// Copies a guest range out of `mem`.
pub fn read_from(mem: &[u8], ptr: u32, len: u32) -> Result<Vec<u8>, Status> {
    checked_range(mem.len(), ptr, len)
        .map(|range| mem[range].to_vec())
        .ok_or(Status::InvalidMemoryAccess)
}

/// Writes `data` at `ptr` into `mem`.
pub fn write_to(mem: &mut [u8], ptr: u32, data: &[u8]) -> Result<(), Status> {
    let len = u32::try_from(data.len()).map_err(|_| Status::InvalidMemoryAccess)?;
    let range = checked_range(mem.len(), ptr, len).ok_or(Status::InvalidMemoryAccess)?;
    mem[range].copy_from_slice(data);
    Ok(())
}

/// Interprets an `i32` wasm argument as the `u32` pointer or size it is.
pub fn u(arg: i32) -> u32 {
    arg as u32
}

fn memory(caller: &Caller<'_, HostState>) -> Result<Memory, Status> {
    caller.data().memory.ok_or(Status::InternalFailure)
}

/// Reads `len` bytes at `ptr` from the calling guest.
pub fn read(caller: &Caller<'_, HostState>, ptr: i32, len: i32) -> Result<Vec<u8>, Status> {
    let mem = memory(caller)?;
    read_from(mem.data(caller), u(ptr), u(len))
}

/// Reads guest bytes as text (lossily: names and keys are text in Envoy).
pub fn read_string(caller: &Caller<'_, HostState>, ptr: i32, len: i32) -> Result<String, Status> {
    read(caller, ptr, len).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
}

/// Writes raw bytes at `ptr` in the calling guest.
pub fn write(caller: &mut Caller<'_, HostState>, ptr: i32, data: &[u8]) -> Result<(), Status> {
    let mem = memory(caller)?;
    write_to(mem.data_mut(caller), u(ptr), data)
}

/// Writes a little-endian `u32` out-parameter.
pub fn write_u32(caller: &mut Caller<'_, HostState>, ptr: i32, value: u32) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Writes a little-endian `u64` out-parameter.
pub fn write_u64(caller: &mut Caller<'_, HostState>, ptr: i32, value: u64) -> Result<(), Status> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Checks that an out-parameter of `size` bytes at `ptr` is writable.
fn check_out(caller: &Caller<'_, HostState>, ptr: i32, size: u32) -> Result<(), Status> {
    let mem = memory(caller)?;
    checked_range(mem.data_size(caller), u(ptr), size)
        .map(|_| ())
        .ok_or(Status::InvalidMemoryAccess)
}

/// Hands `data` to the guest: allocates with `proxy_on_memory_allocate`,
/// copies, and stores pointer and size in the out-parameters. Empty data is
/// returned as a null pointer and size 0 without allocating, like Envoy.
///
/// The outer `Err` is a trap inside the guest allocator, which must
/// propagate; the inner status is what the hostcall returns.
pub fn return_bytes(
    caller: &mut Caller<'_, HostState>,
    data: &[u8],
    ptr_ptr: i32,
    size_ptr: i32,
) -> wasmtime::Result<Result<(), Status>> {
    if let Err(status) = check_out(caller, ptr_ptr, 4).and(check_out(caller, size_ptr, 4)) {
        return Ok(Err(status));
    }
    let Ok(size) = u32::try_from(data.len()) else {
        return Ok(Err(Status::InvalidMemoryAccess));
    };
    let mut pointer = 0u32;
    if size > 0 {
        let Some(alloc) = caller.data().alloc.clone() else {
            return Ok(Err(Status::InternalFailure));
        };
        pointer = u(alloc.call(&mut *caller, size as i32)?);
        if pointer == 0 {
            return Ok(Err(Status::InvalidMemoryAccess));
        }
        if let Err(status) = write(caller, pointer as i32, data) {
            return Ok(Err(status));
        }
    }
    Ok(write_u32(caller, ptr_ptr, pointer).and(write_u32(caller, size_ptr, size)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_checked_without_overflow() {
        assert_eq!(checked_range(10, 0, 10), Some(0..10));
        assert_eq!(checked_range(10, 10, 0), Some(10..10));
        assert_eq!(checked_range(10, 10, 1), None);
        assert_eq!(checked_range(10, 11, 0), None);
        assert_eq!(checked_range(10, u32::MAX, u32::MAX), None);
        assert_eq!(
            checked_range(usize::MAX, u32::MAX, u32::MAX).map(|r| r.len()),
            Some(u32::MAX as usize)
        );
    }

    #[test]
    fn reads_and_writes_stay_in_bounds() {
        let mut mem = vec![0u8; 8];
        assert_eq!(write_to(&mut mem, 4, &[1, 2, 3, 4]), Ok(()));
        assert_eq!(read_from(&mem, 4, 4).unwrap(), vec![1, 2, 3, 4]);
        assert_eq!(
            write_to(&mut mem, 5, &[1, 2, 3, 4]),
            Err(Status::InvalidMemoryAccess)
        );
        assert_eq!(read_from(&mem, 5, 4), Err(Status::InvalidMemoryAccess));
        assert_eq!(
            read_from(&mem, 0xffff_ffff, 2),
            Err(Status::InvalidMemoryAccess)
        );
        assert!(read_from(&mem, 8, 0).unwrap().is_empty());
    }

    #[test]
    fn negative_wasm_arguments_are_large_unsigned_values() {
        assert_eq!(u(-1), u32::MAX);
        assert_eq!(
            read_from(&[0; 4], u(-4), 4),
            Err(Status::InvalidMemoryAccess)
        );
    }
}
