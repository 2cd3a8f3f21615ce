//! The control replicas under test: started from the release binary on
//! free loopback ports (each prints the port it bound), stopped by PID
//! when dropped, and read through `/proc`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::bench_envoy::procs::{self, Guard};

use super::stats;

/// Where the replicas keep their bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Store {
    /// Today's file store: one `--data` directory, so one replica.
    Files,
    /// A shared store every replica opens (`--store URL`, PostgreSQL with
    /// LISTEN/NOTIFY wake-up).
    Shared(String),
}

impl Store {
    /// The store for `--store URL` (or none), refusing what cannot carry
    /// `replicas`.
    pub fn choose(url: Option<&str>, replicas: usize) -> Result<Self, String> {
        match url {
            None if replicas > 1 => Err(format!(
                "--replicas {replicas} needs a store the replicas share: the file store \
                 (--data) belongs to one process. Pass --store postgres://USER@HOST/DB \
                 (the control service's PostgreSQL store) or use --replicas 1"
            )),
            None => Ok(Store::Files),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Store::Shared(url.to_owned()))
            }
            Some(url) => Err(format!(
                "--store {url:?}: only postgres:// (or postgresql://) URLs are shared stores"
            )),
        }
    }
}

/// One running control process.
pub struct Replica {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its combined stdout/stderr.
    pub log: PathBuf,
    guard: Guard,
}

/// What `/proc` says about a replica at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Reading {
    /// Resident set, KiB.
    pub rss_kib: u64,
    /// Proportional set (shared pages split among sharers), KiB.
    pub pss_kib: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// CPU time used so far, microseconds.
    pub cpu_us: u64,
}

impl Replica {
    /// Starts replica `index` of `binary` over `store`; files go to `dir`.
    /// With `fd_limit`, the process starts with that open-file limit (soft
    /// and hard), as under a tight `ulimit -n`.
    pub fn start(
        binary: &Path,
        index: usize,
        store: &Store,
        credentials: (&Path, &Path),
        dir: &Path,
        fd_limit: Option<u64>,
    ) -> Result<Self, String> {
        let (tokens, key) = credentials;
        let log = dir.join(format!("control-{index}.log"));
        let mut command = Command::new(binary);
        if let Some(limit) = fd_limit {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: setrlimit is async-signal-safe and only changes the
            // child's own limit before it runs the binary.
            unsafe {
                command.pre_exec(move || {
                    let new = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &new) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        command
            .args(["--listen", "127.0.0.1:0", "--jwks-refresh", "0"])
            .arg("--tokens")
            .arg(tokens)
            .arg("--signing-key")
            .arg(key);
        match store {
            Store::Files => {
                command.arg("--data").arg(dir.join(format!("data-{index}")));
            }
            Store::Shared(url) => {
                command.arg("--store").arg(url);
            }
        }
        let mut guard = Guard::spawn(&format!("control replica {index}"), command, &log)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let output = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = stats::listening_addr(&output) {
                return Ok(Self { addr, log, guard });
            }
            if let Err(e) = guard.check_alive() {
                let hint = if output.contains("--store") {
                    " (this control binary has no --store: the PostgreSQL store is not merged yet)"
                } else {
                    ""
                };
                return Err(format!("{e}{hint}; its log:\n{output}"));
            }
            if Instant::now() > deadline {
                return Err(format!("control replica {index} did not print its address"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.guard.pid()
    }

    /// Err when the process has exited.
    pub fn check_alive(&mut self) -> Result<(), String> {
        self.guard.check_alive()
    }

    /// Memory, descriptors and CPU now.
    pub fn read(&self) -> Result<Reading, String> {
        let pid = self.pid();
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
            .map_err(|e| format!("/proc/{pid}/smaps_rollup: {e}"))?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| format!("/proc/{pid}/fd: {e}"))?
            .count() as u64;
        Ok(Reading {
            rss_kib: procs::rss_kib(pid)?,
            pss_kib: stats::proc_kib(&rollup, "Pss").ok_or("no Pss in smaps_rollup")?,
            fds,
            cpu_us: procs::cpu_micros(pid)?,
        })
    }

    /// Log lines containing `needle` so far.
    pub fn log_lines_with(&self, needle: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_one_replica_needs_a_shared_store() {
        assert_eq!(Store::choose(None, 1), Ok(Store::Files));
        assert!(Store::choose(None, 2)
            .unwrap_err()
            .contains("--store postgres://"));
        assert_eq!(
            Store::choose(Some("postgres://u@h/db"), 3),
            Ok(Store::Shared("postgres://u@h/db".into()))
        );
        assert!(Store::choose(Some("file:///tmp/x"), 1).is_err());
    }
}
