//! Where the build artefacts and tools the stack needs live.

use std::path::PathBuf;

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent().map(PathBuf::from).unwrap_or(here)
}

/// The filter module: `$MCP_GUARD_WASM`, else the release build output.
pub fn wasm_path() -> PathBuf {
    std::env::var_os("MCP_GUARD_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip1/release/mcp_guard.wasm"))
}

/// The native module, `$MCP_GUARD_NATIVE` (a built `libmcp_guard_native.so`),
/// when set: native targets are tested only then.
pub fn native_path() -> Option<PathBuf> {
    std::env::var_os("MCP_GUARD_NATIVE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The Envoy binary: `$MCP_GUARD_ENVOY`, else the project virtualenv's.
pub fn envoy_path() -> PathBuf {
    std::env::var_os("MCP_GUARD_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/envoy"))
}

/// The Envoy configuration template.
pub fn envoy_template() -> PathBuf {
    workspace_root().join("envoy/envoy.yaml.tmpl")
}

/// The Envoy configuration template of the native module.
pub fn envoy_native_template() -> PathBuf {
    workspace_root().join("envoy/envoy-native.yaml.tmpl")
}

/// The `mcp-guard` CLI: `$MCP_GUARD_CLI`, else next to the test binaries
/// (`cargo test --workspace` builds it; `cargo build -p mcp-guard-cli`
/// otherwise).
pub fn cli_path() -> PathBuf {
    if let Some(path) = std::env::var_os("MCP_GUARD_CLI") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("mcp-guard")))
        .unwrap_or_else(|| workspace_root().join("target/debug/mcp-guard"))
}

/// A workspace binary the tests start as a process: `$ENV_VAR` when set,
/// else the first that exists of: beside the test binaries' directory
/// (`target/debug/`, where `cargo build -p <crate>` puts it), beside the
/// running program (xtask), `target/debug/<name>`.
pub fn sibling_binary(env_var: &str, name: &str) -> std::path::PathBuf {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return std::path::PathBuf::from(path);
    }
    let exe = std::env::current_exe().ok();
    let dir = exe.as_deref().and_then(std::path::Path::parent);
    let fallback = workspace_root().join("target/debug").join(name);
    [
        dir.and_then(std::path::Path::parent).map(|d| d.join(name)),
        dir.map(|d| d.join(name)),
    ]
    .into_iter()
    .flatten()
    .find(|p| p.is_file())
    .unwrap_or(fallback)
}
