//! proxy-wasm status codes returned by every hostcall.

/// The `WasmResult` codes of the proxy-wasm ABI. The Rust SDK 0.2.5 knows
/// only some of them and panics on the others, so the host uses the exotic
/// ones only where Envoy does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// The call succeeded.
    Ok = 0,
    /// The key, header, property, metric or queue does not exist.
    NotFound = 1,
    /// An argument is out of range or refers to something unavailable now.
    BadArgument = 2,
    /// A value could not be serialised.
    SerializationFailure = 3,
    /// Guest-provided data could not be parsed.
    ParseFailure = 4,
    /// A shared queue is empty.
    Empty = 7,
    /// Shared data compare-and-swap lost.
    CasMismatch = 8,
    /// The host failed internally.
    InternalFailure = 10,
    /// A guest pointer or length falls outside its memory.
    InvalidMemoryAccess = 11,
    /// The hostcall is not supported by this host.
    Unimplemented = 12,
}

impl Status {
    /// The value returned to the guest.
    pub fn code(self) -> i32 {
        self as i32
    }
}
