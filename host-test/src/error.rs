//! Errors the host reports to tests and to the replay CLI.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong while loading or driving a filter.
#[derive(Debug, Error)]
pub enum HostError {
    /// The `.wasm` file does not exist.
    #[error(
        "wasm module not found at {0}: build it with `cargo build -p mcp-guard-filter \
         --target wasm32-wasip1 --release` or point MCP_GUARD_WASM at it"
    )]
    ModuleNotFound(PathBuf),
    /// The `.wasm` file exists but cannot be read.
    #[error("cannot read wasm module {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// wasmtime rejected the module (invalid wasm, unsupported feature).
    #[error("cannot compile wasm module: {0}")]
    Compile(String),
    /// The module could not be instantiated (e.g. an import of the wrong type).
    #[error("cannot instantiate wasm module: {0}")]
    Instantiate(String),
    /// The module is not a proxy-wasm 0.2.1 module.
    #[error("module does not export `proxy_abi_version_0_2_1` (or 0_2_0): not a proxy-wasm filter of a supported ABI")]
    AbiVersion,
    /// A required export is absent.
    #[error("module does not export `{0}`")]
    MissingExport(&'static str),
    /// An export has a signature the ABI does not allow.
    #[error("export `{name}` has the wrong signature: expected {expected}")]
    ExportSignature {
        /// Export name.
        name: &'static str,
        /// Human-readable expected signature.
        expected: String,
    },
    /// `proxy_on_vm_start` returned false.
    #[error("proxy_on_vm_start returned false: the VM refused to start{}", render_logs(.logs))]
    VmStartFailed {
        /// What the guest logged while starting (usually the reason).
        logs: Vec<String>,
    },
    /// `proxy_on_configure` returned false.
    #[error("proxy_on_configure returned false: the plugin configuration was rejected{}", render_logs(.logs))]
    ConfigureFailed {
        /// What the guest logged while configuring (usually the reason).
        logs: Vec<String>,
    },
    /// The guest trapped (panic, unreachable, out of fuel, proc_exit...).
    /// The VM is dead afterwards, as in Envoy.
    #[error("guest trapped in {callback}: {message}")]
    Trap {
        /// The export that was running.
        callback: &'static str,
        /// The trap and any stderr output (e.g. the panic message).
        message: String,
    },
    /// A call on a VM that trapped earlier.
    #[error("the VM is dead after an earlier trap: {0}")]
    VmFailed(String),
    /// The test drove the stream in an order HTTP does not allow.
    #[error("invalid sequence on stream {stream}: {message}")]
    Sequence {
        /// Stream context id.
        stream: u32,
        /// What was wrong.
        message: String,
    },
    /// No pending HTTP call has this token.
    #[error("no pending HTTP call with token {0}")]
    UnknownHttpCall(u32),
}

fn render_logs(logs: &[String]) -> String {
    if logs.is_empty() {
        String::new()
    } else {
        format!(" (guest logs: {})", logs.join(" | "))
    }
}
