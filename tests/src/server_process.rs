//! A service binary as a real process, for tests that signal, kill,
//! restart or run several of it: started on free loopback ports, its
//! announced addresses read from stdout, its log kept in a file, stopped by
//! PID (killed on drop). The control service ([`crate::control_process`])
//! and the rate limit service ([`crate::ratelimit`]) are both one of these.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a service may take to announce its addresses.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running service binary; killed on drop.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addrs: Vec<String>,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `bin` with `args`, its stderr (the log) to `log`, and waits
    /// for one stdout line per prefix of `announcements`, in order (such as
    /// `listening on ADDR`). `build_hint` says how to get a missing binary.
    pub fn start<I, S>(
        bin: &Path,
        args: I,
        announcements: &[&str],
        log: PathBuf,
        build_hint: &str,
    ) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        if !bin.is_file() {
            return Err(format!("{} missing: {build_hint}", bin.display()));
        }
        let log_file =
            std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (sender, receiver) = std::sync::mpsc::channel();
        let expected = announcements.len();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            for _ in 0..expected {
                let _ = sender.send(lines.next().and_then(Result::ok));
            }
            // Keep draining so the process never blocks on a full pipe.
            for _ in lines {}
        });
        let mut lines = Vec::new();
        let mut addrs = Vec::new();
        for prefix in announcements {
            let line = receiver.recv_timeout(START_TIMEOUT).ok().flatten();
            let addr = line
                .as_deref()
                .and_then(|l| l.strip_prefix(prefix))
                .map(|a| a.trim().to_owned());
            lines.push(line);
            match addr {
                Some(addr) => addrs.push(addr),
                None => break,
            }
        }
        let mut process = Self { child, addrs, log };
        if process.addrs.len() < expected {
            process.kill9();
            return Err(format!(
                "{} did not start (stdout {lines:?}); log:\n{}",
                bin.display(),
                process.log_text()
            ));
        }
        Ok(process)
    }

    /// The address announced after the `index`-th prefix.
    pub fn addr(&self, index: usize) -> &str {
        self.addrs.get(index).map_or("", String::as_str)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits up to `within` for the exit; the exit
    /// status, or `None` when it did not exit (then it is killed).
    pub fn terminate(&mut self, within: Duration) -> Option<ExitStatus> {
        let pid = libc::pid_t::try_from(self.child.id()).ok()?;
        // SAFETY: kill(2) with our own child's PID and a valid signal.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    /// SIGKILL, as a crash or an OOM kill would: no shutdown at all.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}
