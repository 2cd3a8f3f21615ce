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
//! cannot be loaded (2) or the command line is wrong (2).

use std::io::{self, BufReader};
use std::path::PathBuf;
use std::process::ExitCode;

use mcp_guard_host_test::replay::{self, ReplayOptions, DEFAULT_JWT_KEY};
use mcp_guard_host_test::{default_wasm_path, Host, LogLevel, PluginOptions};

const USAGE: &str = "usage: replay [--wasm FILE] --config PLUGIN_CONFIG.json [--jwt-key KEY] \
[--vm-config FILE] [--log-level trace|debug|info|warn|error|critical] < exchanges.jsonl > results.jsonl

  --wasm FILE        filter module (default: $MCP_GUARD_WASM, else
                     target/wasm32-wasip1/release/mcp_guard.wasm)
  --config FILE      plugin configuration passed to proxy_on_configure
  --jwt-key KEY      metadata key of \"jwt_payload\" (default: jwt_payload)
  --vm-config FILE   VM configuration passed to proxy_on_vm_start
  --log-level LEVEL  level returned by proxy_get_log_level (default: trace)";

struct Args {
    wasm: PathBuf,
    config: PathBuf,
    vm_config: Option<PathBuf>,
    jwt_key: String,
    log_level: LogLevel,
}

fn parse_level(text: &str) -> Option<LogLevel> {
    (0..=5)
        .filter_map(LogLevel::from_u32)
        .find(|level| level.name() == text)
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut wasm = None;
    let mut config = None;
    let mut vm_config = None;
    let mut jwt_key = DEFAULT_JWT_KEY.to_string();
    let mut log_level = LogLevel::Trace;
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--wasm" => wasm = Some(PathBuf::from(value()?)),
            "--config" => config = Some(PathBuf::from(value()?)),
            "--vm-config" => vm_config = Some(PathBuf::from(value()?)),
            "--jwt-key" => jwt_key = value()?,
            "--log-level" => {
                let text = value()?;
                log_level =
                    parse_level(&text).ok_or_else(|| format!("unknown log level {text:?}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        wasm: wasm.unwrap_or_else(default_wasm_path),
        config: config.ok_or("--config is required")?,
        vm_config,
        jwt_key,
        log_level,
    })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if !message.is_empty() {
                eprintln!("replay: {message}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let setup = || -> Result<_, String> {
        let config = read(&args.config)?;
        let vm_config = match &args.vm_config {
            Some(path) => read(path)?,
            None => Vec::new(),
        };
        let host = Host::load(&args.wasm).map_err(|e| e.to_string())?;
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
