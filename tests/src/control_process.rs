//! The control service as a real process (`mcp-guard-control`), for tests
//! that kill it, restart it or run several replicas of it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary: `$MCP_GUARD_CONTROL`, else next to the test binaries
/// (`cargo build -p mcp-guard-control` puts it there).
pub fn control_path() -> PathBuf {
    crate::paths::sibling_binary("MCP_GUARD_CONTROL", "mcp-guard-control")
}

/// A running `mcp-guard-control`; killed on drop.
#[derive(Debug)]
pub struct ControlProcess {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl ControlProcess {
    /// Starts the binary with `args` (plus `--listen 127.0.0.1:0`) and
    /// waits for its `listening on ADDR` line. Its JSON log goes to `log`.
    pub fn start(args: &[String], log: PathBuf) -> Result<Self, String> {
        let bin = control_path();
        if !bin.is_file() {
            return Err(format!(
                "{} missing: cargo build -p mcp-guard-control (or set MCP_GUARD_CONTROL)",
                bin.display()
            ));
        }
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(&bin)
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = sender.send(first);
            // Keep draining so the process never blocks on a full pipe.
            for _ in lines {}
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten();
        let addr = line
            .as_deref()
            .and_then(|l| l.strip_prefix("listening on "));
        match addr {
            Some(addr) => Ok(Self {
                addr: addr.trim().to_owned(),
                child,
                log,
            }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "control service did not start (first line {line:?}); log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ))
            }
        }
    }

    /// `http://ADDR` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far (JSON lines).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL, as a crash or an OOM kill would: no shutdown at all.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ControlProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
