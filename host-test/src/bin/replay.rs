//! `replay`: run JSON-lines exchanges through the filter without Envoy.
//!
//! ```text
//! replay --wasm FILE --config PLUGIN_CONFIG.json [--jwt-key KEY]
//!        [--vm-config FILE] [--log-level LEVEL] < exchanges.jsonl > results.jsonl
//! ```
//!
//! One VM serves the whole input, like one Envoy worker: metrics accumulate
//! from line to line. A line that cannot be run produces an error line and
//! the run goes on; the exit code is 0 unless the module or configuration
//! cannot be loaded (2) or the command line is wrong (2, from clap).

use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use mcp_guard_host_test::replay::{self, ReplayOptions, DEFAULT_JWT_KEY};
use mcp_guard_host_test::{default_wasm_path, Host, LogLevel, PluginOptions};

/// Runs JSON-lines exchanges (stdin) through the mcp-guard filter module in
/// a wasmtime host, without Envoy, and writes one result line per exchange
/// (stdout).
#[derive(Debug, Parser)]
#[command(name = "replay", version = env!("MCP_GUARD_VERSION"))]
#[command(override_usage = "replay [OPTIONS] --config <FILE> < exchanges.jsonl > results.jsonl")]
struct Args {
    /// Filter module [default: target/wasm32-wasip1/release/mcp_guard.wasm]
    #[arg(long, value_name = "FILE", env = "MCP_GUARD_WASM")]
    wasm: Option<PathBuf>,
    /// Plugin configuration passed to proxy_on_configure.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Metadata key the exchanges' "jwt_payload" is stored under.
    #[arg(long, value_name = "KEY", default_value = DEFAULT_JWT_KEY)]
    jwt_key: String,
    /// VM configuration passed to proxy_on_vm_start.
    #[arg(long, value_name = "FILE")]
    vm_config: Option<PathBuf>,
    /// Level returned by proxy_get_log_level.
    #[arg(long, value_name = "LEVEL", value_enum, default_value_t = LogLevel::Trace)]
    log_level: LogLevel,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let wasm = args.wasm.clone().unwrap_or_else(default_wasm_path);
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let setup = || -> Result<_, String> {
        let config = read(&args.config)?;
        let vm_config = match &args.vm_config {
            Some(path) => read(path)?,
            None => Vec::new(),
        };
        let host = Host::load(&wasm).map_err(|e| e.to_string())?;
        let options = PluginOptions {
            vm_config,
            log_level: args.log_level,
            ..PluginOptions::default()
        };
        host.plugin_with(config, options).map_err(|e| e.to_string())
    };
    let plugin = match setup() {
        Ok(plugin) => plugin,
        Err(message) => {
            eprintln!("replay: {message}");
            return ExitCode::from(2);
        }
    };
    let options = ReplayOptions {
        jwt_key: args.jwt_key,
    };
    let stdin = BufReader::new(io::stdin().lock());
    let stdout = io::BufWriter::new(io::stdout().lock());
    match replay::run(&plugin, &options, stdin, stdout) {
        Ok(summary) => {
            eprintln!(
                "replay: {} exchange(s), {} error line(s)",
                summary.ok, summary.errors
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("replay: I/O error: {e}");
            ExitCode::from(1)
        }
    }
}
