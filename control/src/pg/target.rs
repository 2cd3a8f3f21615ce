//! Which database a `--store postgres://…` URL names, and how it is shown
//! in logs: user, hosts, ports and database only. A password in the URL
//! (or in `MCP_GUARD_STORE_PASSWORD`) never appears in a log line or an
//! error message.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

/// Environment variable read for the database password, so it need not be
/// in the URL (where `ps` and shell history would show it).
pub const PASSWORD_ENV: &str = "MCP_GUARD_STORE_PASSWORD";

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// TLS was required, which this build does not speak yet.
    #[error("sslmode=require is not supported yet: use a loopback or private network (sslmode=disable or prefer)")]
    TlsRequired,
}

/// A parsed PostgreSQL store URL.
#[derive(Clone)]
pub struct Target {
    config: tokio_postgres::Config,
    shown: String,
}

impl Target {
    /// Parses `url`; `password` (from [`PASSWORD_ENV`]) overrides one in
    /// the URL.
    pub fn parse(url: &str, password: Option<&str>) -> Result<Self, TargetError> {
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(TargetError::Scheme);
        }
        let mut config = tokio_postgres::Config::from_str(url)
            // The error text of the parser names the offending key, not
            // the value, but a password can be a value: keep only the kind.
            .map_err(|e| TargetError::Syntax(scrub(&e.to_string(), url)))?;
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(TargetError::TlsRequired);
        }
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
        let shown = show(&config);
        Ok(Self { config, shown })
    }

    /// The connection settings.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

/// Never the password: the `Debug` form is the redacted URL too.
impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `postgres://user@host:port/db`, without password or options.
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
        let t = Target::parse("postgres://guard:s3cret@db.internal:5433/policies", None)
            .expect("parses");
        assert_eq!(t.to_string(), "postgres://guard@db.internal:5433/policies");
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
            Target::parse("postgres://a@h/d?sslmode=require", None).err(),
            Some(TargetError::TlsRequired)
        );
        let err = Target::parse("postgres://a:topsecret@h:notaport/d", None).expect_err("bad port");
        assert!(matches!(err, TargetError::Syntax(_)));
        assert!(!err.to_string().contains("topsecret"), "{err}");
    }
}
