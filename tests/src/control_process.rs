//! The control service as a real process (`mcp-guard-control`), for tests
//! that kill it, restart it or run several replicas of it.

use std::path::PathBuf;

use crate::server_process::ServerProcess;

/// The binary: `$MCP_GUARD_CONTROL`, else next to the test binaries
/// (`cargo build -p mcp-guard-control` puts it there).
pub fn control_path() -> PathBuf {
    crate::paths::sibling_binary("MCP_GUARD_CONTROL", "mcp-guard-control")
}

/// A running `mcp-guard-control`; killed on drop.
#[derive(Debug)]
pub struct ControlProcess {
    process: ServerProcess,
}

impl ControlProcess {
    /// Starts the binary with `args` (plus `--listen 127.0.0.1:0`) and
    /// waits for its `listening on ADDR` line. Its JSON log goes to `log`.
    pub fn start(args: &[String], log: PathBuf) -> Result<Self, String> {
        let args = args.iter().map(String::as_str);
        let process = ServerProcess::start(
            &control_path(),
            args.chain(["--listen", "127.0.0.1:0"]),
            &["listening on "],
            log,
            "cargo build -p mcp-guard-control (or set MCP_GUARD_CONTROL)",
        )?;
        Ok(Self { process })
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.process.addr(0))
    }
}

/// `pid`, `log_text` (JSON lines), `terminate`, `kill9`.
impl std::ops::Deref for ControlProcess {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for ControlProcess {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}
