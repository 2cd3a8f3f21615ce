//! The global rate limit service as a real process
//! (`mcp-guard-ratelimit`), started against a [`crate::redis::Redis`] (or
//! any Redis URL) on free loopback ports and stopped by PID on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary: `$MCP_GUARD_RATELIMIT`, else next to the test binaries
/// (`cargo build -p mcp-guard-ratelimit` puts it there; `cargo xtask test`
/// builds it).
pub fn ratelimit_path() -> PathBuf {
    crate::paths::sibling_binary("MCP_GUARD_RATELIMIT", "mcp-guard-ratelimit")
}

/// A running `mcp-guard-ratelimit`; killed on drop.
#[derive(Debug)]
pub struct RateLimitProcess {
    child: Child,
    grpc: String,
    http: String,
    log: PathBuf,
}

impl RateLimitProcess {
    /// Starts [`ratelimit_path`] against `redis_url` with `args` (plus
    /// `--listen 127.0.0.1:0 --http-listen 127.0.0.1:0`) and waits for its
    /// `listening on ADDR` and `http on ADDR` lines. Its log goes to `log`.
    pub fn start(redis_url: &str, args: &[&str], log: PathBuf) -> Result<Self, String> {
        Self::start_binary(&ratelimit_path(), redis_url, args, log)
    }

    /// Like [`Self::start`] with a given binary (a crate's own tests pass
    /// `env!("CARGO_BIN_EXE_mcp-guard-ratelimit")`).
    pub fn start_binary(
        bin: &std::path::Path,
        redis_url: &str,
        args: &[&str],
        log: PathBuf,
    ) -> Result<Self, String> {
        if !bin.is_file() {
            return Err(format!(
                "{} missing: cargo build -p mcp-guard-ratelimit (or set MCP_GUARD_RATELIMIT)",
                bin.display()
            ));
        }
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(bin)
            .args(["--redis-url", redis_url])
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for _ in 0..2 {
                let _ = sender.send(lines.next().and_then(Result::ok));
            }
            // Keep draining so the process never blocks on a full pipe.
            for _ in lines {}
        });
        let read = |prefix: &str| {
            receiver
                .recv_timeout(Duration::from_secs(30))
                .ok()
                .flatten()
                .and_then(|line| line.strip_prefix(prefix).map(|a| a.trim().to_owned()))
        };
        let grpc = read("listening on ");
        let http = read("http on ");
        match (grpc, http) {
            (Some(grpc), Some(http)) => Ok(Self {
                child,
                grpc,
                http,
                log,
            }),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                Err(format!(
                    "rate limit service did not start; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ))
            }
        }
    }

    /// The gRPC address, `127.0.0.1:PORT`.
    pub fn grpc_addr(&self) -> &str {
        &self.grpc
    }

    /// The gRPC port.
    pub fn grpc_port(&self) -> u16 {
        port_of(&self.grpc)
    }

    /// `http://ADDR` + `path` on the HTTP side port (`/readyz`,
    /// `/metrics` ...).
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far (JSON lines).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `within` for the exit; the exit
    /// status, or `None` when it did not exit (then it is killed).
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).ok()?;
        // SAFETY: kill(2) with our own child's PID and a valid signal.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    /// SIGKILL.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RateLimitProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}
