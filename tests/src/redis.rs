//! A throwaway Redis for tests: `redis-server` on a free loopback port,
//! no persistence (`--save "" --appendonly no`), its own temp dir as
//! working directory, stopped by PID (and the dir removed) on drop.
//!
//! The binary is `$MCP_GUARD_REDIS_SERVER`, else `redis-server` on `PATH`
//! (Debian's `redis-server` package; `cargo xtask test` installs it).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to get the binary, for error messages.
pub const INSTALL_HINT: &str = "redis-server not found: apt-get install -y redis-server (cargo xtask test installs it), or set MCP_GUARD_REDIS_SERVER to the binary";

/// The `redis-server` binary, if any.
pub fn server_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MCP_GUARD_REDIS_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

/// A running throwaway Redis.
#[derive(Debug)]
pub struct Redis {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Redis {
    /// Starts a server and waits until it answers PING; `Err` says why
    /// (a missing binary first of all, with [`INSTALL_HINT`]).
    pub fn start() -> Result<Self, String> {
        let bin = server_path().ok_or(INSTALL_HINT)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("mcp-guard-redis-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut redis = Self {
            bin,
            dir,
            port: free_port()?,
            child: None,
        };
        redis.start_again()?;
        Ok(redis)
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The TCP port (kept across [`Self::stop`] and [`Self::start_again`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the server (SIGKILL: as a crash would; the data is lost, as
    /// it would be without persistence).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the stopped server again on the same port (empty).
    pub fn start_again(&mut self) -> Result<(), String> {
        if self.child.is_some() {
            return Ok(());
        }
        let log = self.dir.join("redis.log");
        let child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .args(["--daemonize", "no", "--databases", "1"])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", self.bin.display()))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.command(&["PING"]).as_deref() == Ok("+PONG") {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "redis-server exited ({status}); log:\n{}",
                        self.log_text()
                    ));
                }
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(format!(
                    "redis-server did not answer PING within 20 s; log:\n{}",
                    self.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Sends one command (RESP array of bulk strings) and returns the
    /// first line of the reply (`+PONG`, `:3`, `$1` ...), for checks that
    /// need no client library.
    pub fn command(&self, args: &[&str]) -> Result<String, String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        stream.write_all(&request).map_err(|e| e.to_string())?;
        let mut reply = Vec::new();
        let mut chunk = [0u8; 512];
        while !reply.windows(2).any(|w| w == b"\r\n") && reply.len() < 1 << 16 {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = stream.shutdown(Shutdown::Both);
        let text = String::from_utf8_lossy(&reply);
        text.split("\r\n")
            .next()
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| "no reply".to_string())
    }

    /// The server log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
