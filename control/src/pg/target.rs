//! Which database a `--store postgres://…` URL names, and how it is shown
//! in logs: user, hosts, ports and database only. A password in the URL
//! (or in `MCP_GUARD_STORE_PASSWORD`) never appears in a log line or an
//! error message. The TLS parameters (`sslmode`, `sslrootcert`) are
//! taken out of the URL here and decided in [`super::tls`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

use super::tls::{Roots, SslMode, Tls, TlsError};

/// Environment variable read for the database password, so it need not be
/// in the URL (where `ps` and shell history would show it).
pub const PASSWORD_ENV: &str = "MCP_GUARD_STORE_PASSWORD";

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a whole connection set-up (TCP, TLS handshake, start-up and
/// authentication) may take: tokio-postgres bounds only the TCP connect,
/// and a server (or something in between) that accepts and then stays
/// silent would otherwise hold a start or a reconnect forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// Idle time before TCP keepalives probe a silent connection, so a
/// database that vanished without closing is noticed.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);

/// Between keepalive probes, and how many go unanswered before the
/// connection counts as lost: a silent partition is noticed within about
/// 10 + 5 × 3 = 25 s.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const KEEPALIVE_RETRIES: u32 = 3;

/// A URL that does not name a PostgreSQL database.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not `postgres://` or `postgresql://`.
    #[error("a PostgreSQL store URL starts with postgres:// or postgresql://")]
    Scheme,
    /// The URL does not parse; the URL itself is not repeated (it may
    /// hold a password).
    #[error("the PostgreSQL store URL does not parse: {0}")]
    Syntax(String),
    /// The TLS parameters cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// A parsed PostgreSQL store URL.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    tls: Tls,
    handshake_timeout: Duration,
    shown: String,
}

impl Target {
    /// Parses `url`; `password` (from [`PASSWORD_ENV`]) overrides one in
    /// the URL.
    pub fn parse(url: &str, password: Option<&str>) -> Result<Self, TargetError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(TargetError::Scheme);
        }
        let (rest, mode, roots) = take_tls_params(url)?;
        let mut config = tokio_postgres::Config::from_str(&rest)
            // The error text of the parser names the offending key, not
            // the value, but a password can be a value: keep only the kind.
            .map_err(|e| TargetError::Syntax(scrub(&e.to_string(), url)))?;
        let unix = config
            .get_hosts()
            .iter()
            .any(|h| matches!(h, Host::Unix(_)));
        let local = config.get_hosts().iter().all(|h| match h {
            Host::Tcp(name) => is_loopback(name),
            Host::Unix(_) => true,
        }) && config.get_hostaddrs().iter().all(|a| a.is_loopback());
        let tls = Tls::new(mode, roots, local, unix)?;
        config.ssl_mode(match tls.mode() {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            _ => tokio_postgres::config::SslMode::Require,
        });
        if let Some(password) = password {
            config.password(password);
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives(true)
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES)
            .application_name("mcp-guard-control");
        let shown = format!("{}?sslmode={}", show(&config), tls.mode());
        Ok(Self {
            config,
            tls,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            shown,
        })
    }

    /// The connection settings.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// Longest a connection set-up may take.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The same target with another set-up limit (tests: a silent server).
    pub fn with_handshake_timeout(mut self, limit: Duration) -> Self {
        self.handshake_timeout = limit;
        self
    }

    /// The TLS settings (mode, connector, error explanations).
    pub fn tls(&self) -> &Tls {
        &self.tls
    }
}

/// Never the password: the `Debug` form is the redacted URL too.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `postgres://user@host:port/db?sslmode=MODE`, without password or other
/// options.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

fn show(config: &tokio_postgres::Config) -> String {
    let mut out = String::from("postgres://");
    if let Some(user) = config.get_user() {
        out.push_str(user);
        out.push('@');
    }
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match ports.get(i).or(ports.first()) {
                Some(port) => format!("{host}:{port}"),
                None => host,
            }
        })
        .collect();
    out.push_str(&hosts.join(","));
    out.push('/');
    out.push_str(config.get_dbname().unwrap_or_default());
    out
}

/// `url` without `sslmode` and `sslrootcert` (which tokio-postgres does
/// not know, or knows with other meanings), and their values.
fn take_tls_params(url: &str) -> Result<(String, Option<SslMode>, Option<Roots>), TargetError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), None, None));
    };
    let mut kept = Vec::new();
    let (mut mode, mut roots) = (None, None);
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match decode(key).as_str() {
            "sslmode" => {
                if mode.is_some() {
                    return Err(TlsError::Repeated("sslmode").into());
                }
                mode = Some(SslMode::parse(&decode(value))?);
            }
            "sslrootcert" => {
                if roots.is_some() {
                    return Err(TlsError::Repeated("sslrootcert").into());
                }
                let value = decode(value);
                roots = Some(if value == "system" {
                    Roots::System
                } else {
                    Roots::File(value)
                });
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, mode, roots))
}

/// Percent-decoding of a URL query part (invalid escapes kept as they are).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(value)) => {
                out.push(value);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `localhost` or a loopback address: nothing on a network to protect.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `text` with every occurrence of a secret-looking part of `url` removed.
fn scrub(text: &str, url: &str) -> String {
    let mut text = text.to_owned();
    let mut secrets: Vec<&str> = Vec::new();
    if let Some((userinfo, _)) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
    {
        if let Some((_, password)) = userinfo.split_once(':') {
            secrets.push(password);
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        secrets.extend(query.split('&').filter_map(|p| p.strip_prefix("password=")));
    }
    for secret in secrets.into_iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret, "***");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_everything_but_the_password() {
        let t = Target::parse(
            "postgres://guard:s3cret@db.internal:5433/policies?sslmode=disable",
            None,
        )
        .expect("parses");
        assert_eq!(
            t.to_string(),
            "postgres://guard@db.internal:5433/policies?sslmode=disable"
        );
        assert_eq!(format!("{t:?}"), t.to_string());
        assert_eq!(t.config().get_password(), Some(&b"s3cret"[..]));
        let t = Target::parse(
            "postgresql://guard@127.0.0.1:1/p?password=hunter2&sslmode=disable",
            Some("fromenv"),
        )
        .expect("parses");
        assert!(!format!("{t} {t:?}").contains("hunter2"));
        assert_eq!(t.config().get_password(), Some(&b"fromenv"[..]));
    }

    #[test]
    fn refuses_what_it_cannot_use_without_echoing_secrets() {
        assert_eq!(
            Target::parse("mysql://a:b@h/d", None).err(),
            Some(TargetError::Scheme)
        );
        assert_eq!(
            Target::parse("postgres://a@h/d?sslmode=prefer", None).err(),
            Some(TargetError::Tls(TlsError::FallsBack))
        );
        let err = Target::parse("postgres://a:topsecret@h:notaport/d", None).expect_err("bad port");
        assert!(matches!(err, TargetError::Syntax(_)));
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }

    fn mode(url: &str) -> Result<SslMode, TargetError> {
        Target::parse(url, None).map(|t| t.tls().mode())
    }

    #[test]
    fn picks_the_tls_mode_like_libpq_but_never_falls_back() {
        let dir = std::env::temp_dir().join(format!("mcp-guard-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let ca = dir.join("ca.pem");
        // A self-signed CA certificate (its key was discarded).
        std::fs::write(&ca, include_str!("testdata/ca.pem")).expect("ca");
        let ca = ca.display().to_string();
        let ca_q = ca.replace('/', "%2F");

        assert_eq!(mode("postgres://a@127.0.0.1/d"), Ok(SslMode::Disable));
        assert_eq!(mode("postgres://a@localhost:5/d"), Ok(SslMode::Disable));
        assert_eq!(mode("postgres://a@[::1]:5/d"), Ok(SslMode::Disable));
        assert_eq!(
            mode("postgres://a@db.example/d").err(),
            Some(TargetError::Tls(TlsError::ModeMissing))
        );
        // A loopback host reached through a remote hostaddr is remote.
        assert_eq!(
            mode("postgres://a@localhost/d?hostaddr=10.1.2.3").err(),
            Some(TargetError::Tls(TlsError::ModeMissing))
        );
        // A remote host in the query counts too.
        assert_eq!(
            mode("postgres://a@localhost/d?host=db.example").err(),
            Some(TargetError::Tls(TlsError::ModeMissing))
        );
        assert_eq!(
            mode("postgres://a@db.example/d?sslmode=disable"),
            Ok(SslMode::Disable)
        );
        assert_eq!(
            mode(&format!("postgres://a@db.example/d?sslrootcert={ca}")),
            Ok(SslMode::VerifyFull)
        );
        assert_eq!(
            mode(&format!(
                "postgres://a@db.example/d?sslrootcert={ca_q}&sslmode=verify-ca"
            )),
            Ok(SslMode::VerifyCa)
        );
        // As libpq: require with a CA file checks the chain.
        assert_eq!(
            mode(&format!(
                "postgres://a@db.example/d?sslmode=require&sslrootcert={ca}"
            )),
            Ok(SslMode::VerifyCa)
        );
        assert_eq!(
            mode("postgres://a@db.example/d?sslmode=require"),
            Ok(SslMode::Require)
        );
        assert_eq!(
            mode("postgres://a@db.example/d?sslmode=verify-full&sslrootcert=system"),
            Ok(SslMode::VerifyFull)
        );
        for (url, want) in [
            ("postgres://a@h/d?sslmode=prefer", TlsError::FallsBack),
            ("postgres://a@h/d?sslmode=allow", TlsError::FallsBack),
            // Percent-encoded key: still ours, not tokio-postgres' prefer.
            ("postgres://a@h/d?ssl%6Dode=prefer", TlsError::FallsBack),
            ("postgres://a@h/d?sslmode=verify", TlsError::UnknownMode),
            (
                "postgres://a@h/d?sslmode=verify-full",
                TlsError::NoRoots(SslMode::VerifyFull),
            ),
            (
                "postgres://a@h/d?sslmode=verify-ca&sslrootcert=system",
                TlsError::SystemNeedsFull,
            ),
            (
                "postgres://a@h/d?sslmode=disable&sslrootcert=system",
                TlsError::RootsUnused,
            ),
            (
                "postgres://a@h/d?sslmode=disable&sslmode=verify-full",
                TlsError::Repeated("sslmode"),
            ),
            (
                "postgres://a@%2Ftmp%2Fsock/d?sslmode=require",
                TlsError::UnixSocket(SslMode::Require),
            ),
        ] {
            assert_eq!(mode(url).err(), Some(TargetError::Tls(want)), "{url}");
        }
        let missing =
            mode("postgres://a@h/d?sslrootcert=/nonexistent/ca.pem").expect_err("no file");
        assert!(
            matches!(&missing, TargetError::Tls(TlsError::RootFile { path, .. }) if path == "/nonexistent/ca.pem"),
            "{missing}"
        );
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "hello").expect("file");
        let err = mode(&format!(
            "postgres://a@h/d?sslrootcert={}",
            not_pem.display()
        ))
        .expect_err("not a CA bundle");
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");

        // The display names the mode, never the password or the CA path's
        // neighbours in the query.
        let t = Target::parse(
            &format!("postgres://u:pw-secret@db.example:6432/d?sslrootcert={ca}&password=pw2"),
            None,
        )
        .expect("parses");
        assert_eq!(
            t.to_string(),
            "postgres://u@db.example:6432/d?sslmode=verify-full"
        );
        assert_eq!(
            t.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
        assert!(t.tls().warning().is_none());
        let t = Target::parse("postgres://u@db.example/d?sslmode=require", None).expect("parses");
        assert!(t
            .tls()
            .warning()
            .is_some_and(|w| w.contains("active attacker")));
        let t = Target::parse("postgres://u@127.0.0.1/d", None).expect("parses");
        assert_eq!(
            t.config().get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
