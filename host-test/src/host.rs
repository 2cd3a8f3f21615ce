//! Loading and compiling a filter module once per process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use wasmtime::{Config, Engine, InstancePre, Linker, Module, ProfilingStrategy};

use crate::error::HostError;
use crate::plugin::{Plugin, PluginOptions};
use crate::state::HostState;

/// Environment variable naming the filter `.wasm` for [`Host::from_env`].
pub const WASM_ENV: &str = "MCP_GUARD_WASM";

/// A compiled filter module, ready to start VMs ([`Plugin`]s) from.
///
/// Cheap to clone. Compilation is the slow part (seconds for a release
/// filter), so [`Host::load`] caches compiled modules process-wide: many
/// tests in one binary share one compilation.
#[derive(Clone)]
pub struct Host {
    inner: Arc<Inner>,
}

struct Inner {
    pre: InstancePre<HostState>,
    engine: Engine,
    source: String,
}

/// Cache key: the file, and its size and mtime so a rebuilt filter is
/// recompiled in a long-lived process.
type CacheKey = (PathBuf, u64, Option<SystemTime>);

fn cache() -> &'static Mutex<HashMap<CacheKey, Host>> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Host>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Environment variable that turns fuel metering off (`0`) for benchmarks.
pub const FUEL_ENV: &str = "MCP_GUARD_HOST_FUEL";

/// Environment variable that makes the host write a perf map
/// (`/tmp/perf-<pid>.map`) for profiling the filter with `perf`.
pub const PROFILE_ENV: &str = "MCP_GUARD_HOST_PROFILE";

/// Whether guest calls are metered (the default).
/// Read once per process: it is checked on every guest call.
pub fn fuel_metering() -> bool {
    static METERED: OnceLock<bool> = OnceLock::new();
    *METERED.get_or_init(|| std::env::var(FUEL_ENV).map_or(true, |v| v != "0"))
}

/// One engine for the process: modules compiled by it can share code.
fn engine() -> Result<Engine, HostError> {
    static ENGINE: OnceLock<Result<Engine, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let mut config = Config::new();
            // Fuel bounds every guest call so a looping filter fails a test
            // instead of hanging it. Benchmarks turn it off (Envoy's V8
            // meters nothing, and metering costs the guest a counter update
            // per block).
            config.consume_fuel(fuel_metering());
            // `perf record` can name the filter's functions (build the
            // module unstripped) when the host writes a perf map.
            if std::env::var(PROFILE_ENV).is_ok_and(|v| v == "perfmap") {
                config.profiler(ProfilingStrategy::PerfMap);
            }
            Engine::new(&config).map_err(|e| format!("{e:?}"))
        })
        .clone()
        .map_err(HostError::Compile)
}

impl Host {
    /// Loads and compiles the module at `path` (or reuses the cached
    /// compilation of the same unchanged file).
    pub fn load(path: impl AsRef<Path>) -> Result<Host, HostError> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                HostError::ModuleNotFound(path.to_path_buf())
            } else {
                HostError::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let key = (canonical, meta.len(), meta.modified().ok());
        let mut cache = cache().lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(host) = cache.get(&key) {
            return Ok(host.clone());
        }
        let bytes = std::fs::read(path).map_err(|source| HostError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let host = Self::compile(&bytes, path.display().to_string())?;
        cache.insert(key, host.clone());
        Ok(host)
    }

    /// Loads the filter named by `MCP_GUARD_WASM`, else `$CARGO_TARGET_DIR`
    /// or the workspace `target/` directory's
    /// `wasm32-wasip1/release/mcp_guard.wasm`.
    pub fn from_env() -> Result<Host, HostError> {
        Self::load(default_wasm_path())
    }

    /// Compiles a module from bytes (binary wasm), uncached. For tests that
    /// build small modules on the fly.
    pub fn from_bytes(bytes: &[u8]) -> Result<Host, HostError> {
        Self::compile(bytes, "<bytes>".to_string())
    }

    fn compile(bytes: &[u8], source: String) -> Result<Host, HostError> {
        let engine = engine()?;
        let module =
            Module::new(&engine, bytes).map_err(|e| HostError::Compile(format!("{e:?}")))?;
        let mut linker = Linker::new(&engine);
        crate::abi::add_to_linker(&mut linker)
            .map_err(|e| HostError::Instantiate(format!("{e:?}")))?;
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(|e| HostError::Instantiate(format!("{e:?}")))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| HostError::Instantiate(format!("{e:?}")))?;
        Ok(Host {
            inner: Arc::new(Inner {
                pre,
                engine,
                source,
            }),
        })
    }

    /// Where the module came from (a path, or `<bytes>`).
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// Starts a new VM and configures its root context with
    /// `plugin_config`, using default [`PluginOptions`].
    pub fn plugin(&self, plugin_config: impl AsRef<[u8]>) -> Result<Plugin, HostError> {
        self.plugin_with(plugin_config, PluginOptions::default())
    }

    /// Like [`Host::plugin`] with explicit options (VM configuration, log
    /// level, start time, limits, known clusters).
    pub fn plugin_with(
        &self,
        plugin_config: impl AsRef<[u8]>,
        options: PluginOptions,
    ) -> Result<Plugin, HostError> {
        Plugin::start(
            &self.inner.engine,
            &self.inner.pre,
            plugin_config.as_ref(),
            options,
        )
    }
}

/// The path [`Host::from_env`] loads.
pub fn default_wasm_path() -> PathBuf {
    if let Some(path) = std::env::var_os(WASM_ENV) {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    // A relative CARGO_TARGET_DIR is relative to where cargo ran: the
    // workspace root, not a test's working directory.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    target
        .join("wasm32-wasip1")
        .join("release")
        .join("mcp_guard.wasm")
}
