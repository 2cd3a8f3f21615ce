//! The global rate limit service as a real process
//! (`mcp-guard-ratelimit`), started against a [`crate::redis::Redis`] (or
//! any Redis URL) on free loopback ports and stopped by PID on drop.

use std::path::PathBuf;

use crate::server_process::ServerProcess;

/// The binary: `$MCP_GUARD_RATELIMIT`, else next to the test binaries
/// (`cargo build -p mcp-guard-ratelimit` puts it there; `cargo xtask test`
/// builds it).
pub fn ratelimit_path() -> PathBuf {
    crate::paths::sibling_binary("MCP_GUARD_RATELIMIT", "mcp-guard-ratelimit")
}

/// A running `mcp-guard-ratelimit`; killed on drop.
#[derive(Debug)]
pub struct RateLimitProcess {
    process: ServerProcess,
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
        let args = ["--redis-url", redis_url]
            .into_iter()
            .chain(args.iter().copied());
        let process = ServerProcess::start(
            bin,
            args.chain(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]),
            &["listening on ", "http on "],
            log,
            "cargo build -p mcp-guard-ratelimit (or set MCP_GUARD_RATELIMIT)",
        )?;
        Ok(Self { process })
    }

    /// The gRPC address, `127.0.0.1:PORT`.
    pub fn grpc_addr(&self) -> &str {
        self.process.addr(0)
    }

    /// The gRPC port.
    pub fn grpc_port(&self) -> u16 {
        port_of(self.grpc_addr())
    }

    /// `http://ADDR` + `path` on the HTTP side port (`/readyz`,
    /// `/metrics` ...).
    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.process.addr(1))
    }
}

/// `pid`, `log_text` (JSON lines), `terminate`, `kill9`.
impl std::ops::Deref for RateLimitProcess {
    type Target = ServerProcess;

    fn deref(&self) -> &ServerProcess {
        &self.process
    }
}

impl std::ops::DerefMut for RateLimitProcess {
    fn deref_mut(&mut self) -> &mut ServerProcess {
        &mut self.process
    }
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}
