//! Which build of mcp-guard the stack runs in Envoy: the proxy-wasm filter
//! or the native dynamic module. The end-to-end tests run the same
//! assertions against every target that is available.

use std::path::PathBuf;

use crate::paths;

/// A build of mcp-guard Envoy can load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The proxy-wasm filter (`mcp_guard.wasm`), run by Envoy's V8.
    Wasm(PathBuf),
    /// The dynamic module (`libmcp_guard_native.so`).
    Native(PathBuf),
}

impl Target {
    /// The wasm filter at its usual place (`$MCP_GUARD_WASM`).
    pub fn wasm() -> Self {
        Self::Wasm(paths::wasm_path())
    }

    /// Short name for test output.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Wasm(_) => "wasm",
            Self::Native(_) => "native",
        }
    }

    /// The built module file.
    pub fn module(&self) -> &PathBuf {
        match self {
            Self::Wasm(path) | Self::Native(path) => path,
        }
    }

    /// The Envoy configuration template for this target.
    pub fn template(&self) -> PathBuf {
        match self {
            Self::Wasm(_) => paths::envoy_template(),
            Self::Native(_) => paths::envoy_native_template(),
        }
    }

    /// The full stats name of one of the filter's metrics (`mcp_*`):
    /// Envoy prefixes wasm metrics with `wasmcustom.` and dynamic-module
    /// metrics with the filter's metrics namespace.
    pub fn stat(&self, name: &str) -> String {
        match self {
            Self::Wasm(_) => format!("wasmcustom.{name}"),
            Self::Native(_) => format!("dynamicmodulescustom.{name}"),
        }
    }

    /// How many activation log lines one bundle version produces: one per
    /// VM for wasm (every worker plus the main thread), one per filter
    /// configuration for the native module (its policy is shared).
    pub fn enforcers(&self, concurrency: u32) -> usize {
        match self {
            Self::Wasm(_) => concurrency as usize + 1,
            Self::Native(_) => 1,
        }
    }
}

/// Every target to test: the wasm filter always, and the native module when
/// `$MCP_GUARD_NATIVE` names a built `libmcp_guard_native.so`; `$MCP_GUARD_TARGETS`
/// (e.g. `native`, `wasm,native`) narrows the list while working on one.
pub fn available() -> Vec<Target> {
    let mut targets = vec![Target::wasm()];
    if let Some(native) = paths::native_path() {
        targets.push(Target::Native(native));
    }
    if let Ok(only) = std::env::var("MCP_GUARD_TARGETS") {
        let wanted: Vec<&str> = only.split(',').map(str::trim).collect();
        targets.retain(|t| wanted.contains(&t.name()));
    }
    targets
}
