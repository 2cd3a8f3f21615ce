//! A throwaway PostgreSQL cluster for tests: `initdb` into a temp dir,
//! the server on a free loopback port with its unix socket in the same
//! dir, stopped (and the dir removed) on drop.
//!
//! The binaries are found under `$MCP_GUARD_PG_BIN`, else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout), else on `PATH`. On a
//! machine without them: `apt-get install -y postgresql` (`cargo xtask
//! test` does it). PostgreSQL refuses to run as root: as root, every
//! server command runs as the `postgres` user (`runuser -u postgres --`),
//! which owns the temp dir.
//!
//! [`Postgres::start_tls`] turns TLS on (`ssl = on` with a given server
//! certificate and key) and lets TCP clients in only over TLS
//! (`hostssl` lines in pg_hba.conf).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// How to get the binaries, for error messages.
pub const INSTALL_HINT: &str =
    "PostgreSQL server binaries not found: apt-get install -y postgresql (cargo xtask test installs it), or set MCP_GUARD_PG_BIN to the directory holding initdb and pg_ctl";

/// The directory holding `initdb`, `pg_ctl` and `psql`, if any.
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MCP_GUARD_PG_BIN").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
    })
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres_user: bool,
}

impl Postgres {
    /// Creates and starts a cluster; `Err` says why (missing binaries
    /// first of all, with [`INSTALL_HINT`]).
    pub fn start() -> Result<Self, String> {
        Self::start_with(None)
    }

    /// Like [`Self::start`], with TLS on (`cert_pem`: the server's chain,
    /// `key_pem`: its key) and plaintext TCP connections refused.
    pub fn start_tls(cert_pem: &str, key_pem: &str) -> Result<Self, String> {
        Self::start_with(Some((cert_pem, key_pem)))
    }

    fn start_with(tls: Option<(&str, &str)>) -> Result<Self, String> {
        let bin = bin_dir().ok_or(INSTALL_HINT)?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let as_postgres_user = unsafe { libc::geteuid() } == 0;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("mcp-guard-pg-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let port = free_port()?;
        let pg = Self {
            bin,
            dir,
            port,
            as_postgres_user,
        };
        if as_postgres_user {
            run(Command::new("chown")
                .arg("-R")
                .arg("postgres:")
                .arg(&pg.dir))?;
        }
        let data = pg.data_dir();
        pg.server_command("initdb", |c| {
            c.arg("-D").arg(&data).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ]);
        })?;
        if let Some((cert, key)) = tls {
            pg.install_cert("server", cert, key)?;
            let conf = data.join("postgresql.conf");
            let mut text = std::fs::read_to_string(&conf).map_err(|e| e.to_string())?;
            text.push_str(
                "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            );
            std::fs::write(&conf, text).map_err(|e| e.to_string())?;
            // TCP only over TLS; the unix socket stays for local tools.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
            )
            .map_err(|e| e.to_string())?;
        }
        pg.start_server()?;
        Ok(pg)
    }

    /// Writes `NAME.crt` and `NAME.key` (key 0600) into the data dir,
    /// owned by the server's user.
    fn install_cert(&self, name: &str, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let data = self.data_dir();
        for (file, text, mode) in [
            (format!("{name}.crt"), cert_pem, 0o644),
            (format!("{name}.key"), key_pem, 0o600),
        ] {
            let path = data.join(file);
            std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if self.as_postgres_user {
                run(Command::new("chown").arg("postgres:").arg(&path))?;
            }
        }
        Ok(())
    }

    /// Switches the running TLS server to another certificate and key
    /// (stored as `NAME.crt`/`NAME.key`): reloads the configuration and
    /// waits until new connections use it.
    pub fn switch_cert(&self, name: &str, cert_pem: &str, key_pem: &str) -> Result<(), String> {
        self.install_cert(name, cert_pem, key_pem)?;
        self.psql(&format!("ALTER SYSTEM SET ssl_cert_file = '{name}.crt'"))?;
        self.psql(&format!("ALTER SYSTEM SET ssl_key_file = '{name}.key'"))?;
        self.psql("SELECT pg_reload_conf()")?;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.psql("SHOW ssl_cert_file")? != format!("{name}.crt") {
            if std::time::Instant::now() > deadline {
                return Err(format!("the server did not switch to {name}.crt"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The TCP port it listens on (kept across [`Self::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (`pg_ctl stop -m fast`: clients are disconnected).
    pub fn stop(&self) -> Result<(), String> {
        let data = self.data_dir();
        self.server_command("pg_ctl", |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-m", "fast", "-w", "-t", "20", "stop"]);
        })
        .map(drop)
    }

    /// Starts the stopped server again, same data, same port.
    pub fn start_again(&self) -> Result<(), String> {
        self.start_server()
    }

    /// Runs one SQL script with `psql` (as the superuser); its stdout.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let output = run(Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", "postgres", "-c", sql]))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The server log.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn start_server(&self) -> Result<(), String> {
        let data = self.data_dir();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log");
        self.server_command("pg_ctl", |c| {
            c.arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(&log)
                .arg("-o")
                .arg(&options)
                .args(["-w", "-t", "30", "start"]);
        })
        .map(drop)
        .map_err(|e| format!("{e}\nserver log:\n{}", self.log_text()))
    }

    /// Runs `program` from the bin dir, as `postgres` when we are root.
    fn server_command(
        &self,
        program: &str,
        args: impl FnOnce(&mut Command),
    ) -> Result<Output, String> {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres_user {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            Command::new(&path)
        };
        args(&mut command);
        command.current_dir(&self.dir);
        run(&mut command)
    }

    /// The postmaster's PID, while it runs.
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let stopped = self.server_command("pg_ctl", |c| {
            c.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "-t", "10", "stop"]);
        });
        if stopped.is_err() {
            if let Some(pid) = self.pid() {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command) -> Result<Output, String> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{shown}: {e}"))?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}
