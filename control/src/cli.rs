//! Command-line arguments of the binary, parsed by hand: a handful of
//! flags does not warrant a parser dependency.

use std::path::PathBuf;
use std::time::Duration;

/// Where to listen when `--listen` is not given: loopback, any free port
/// (the chosen port is printed).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// Seconds between issuer key refreshes when `--jwks-refresh` is not given.
pub const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;

/// One-screen help, printed for `--help` and after a usage error.
pub const USAGE: &str = "\
usage: mcp-guard-control [--store file:DIR | --store postgres://USER@HOST:PORT/DB]
                         [--data DIR] [--bundles DIR] [--tokens FILE]
                         [--signing-key FILE] [--next-signing-key FILE]
                         [--checkpoint-key FILE]
                         [--jwks-refresh SECONDS] [--max-connections N]
                         [--listen ADDR]

Stores, signs and serves mcp-guard policy bundles (API: control/README.md).

options:
  --store file:DIR      persistent store: every version under DIR/bundles, the
                        signing key in DIR/keys (generated on first start).
                        Without a store, bundles live in memory only.
  --store postgres://USER@HOST:PORT/DB
                        shared store for several replicas: versions and history
                        in PostgreSQL (tables created at start), pushes to any
                        replica reach every replica's long-polls. Needs
                        --signing-key (the same key file on every replica).
                        Password: in the URL or $MCP_GUARD_STORE_PASSWORD;
                        it is never logged. TLS: ?sslmode=verify-full&
                        sslrootcert=CA.pem (or verify-ca, require, disable;
                        prefer/allow are refused); a host other than
                        loopback needs an explicit sslmode.
  --data DIR            the same as --store file:DIR
  --bundles DIR         seed: import DIR/<name>.json as version 1 of every
                        bundle the store does not have yet
  --tokens FILE         push tokens: {\"tokens\":[{\"id\",\"sha256\",\"bundles\":[globs]}]};
                        without it the service is read-only
  --signing-key FILE    Ed25519 seed (32 bytes, base64 or hex) to sign with
  --next-signing-key FILE
                        during a key rotation: the key that will replace the
                        current one; versions are signed with both
  --checkpoint-key FILE Ed25519 seed that countersigns decision-trail
                        checkpoints (default: DIR/keys/checkpoint.key,
                        generated on first start; without --data, per run)
  --jwks-refresh SECS   re-fetch issuer keys behind discovery URLs every SECS
                        (default 300; 0 disables)
  --max-connections N   connections served at once (each waiting long-poll
                        holds one); past it new ones get 503 + Retry-After.
                        Default and ceiling: the open-file limit (raised to
                        the hard limit at start) minus 128 kept for the store
  --listen ADDR         address to bind, e.g. 127.0.0.1:8090 (default 127.0.0.1:0)
  -h, --help            print this help
  -V, --version         print the version (crate version and git describe)

Prints `listening on ADDR` once bound; logs JSON lines on stderr; stops on
SIGINT or SIGTERM.";

/// The settings of a run.
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    /// Address to bind.
    pub listen: String,
    /// Data directory, for a persistent store.
    pub data: Option<PathBuf>,
    /// PostgreSQL URL of a shared store (`--store postgres://…`).
    pub postgres: Option<StoreUrl>,
    /// Seed directory of bundle files.
    pub bundles: Option<PathBuf>,
    /// Tokens file.
    pub tokens: Option<PathBuf>,
    /// Signing key file.
    pub signing_key: Option<PathBuf>,
    /// Next signing key file, during a rotation.
    pub next_signing_key: Option<PathBuf>,
    /// Checkpoint countersigning key file.
    pub checkpoint_key: Option<PathBuf>,
    /// Key refresh period; `None` when disabled.
    pub jwks_refresh: Option<Duration>,
    /// Connection limit asked for; `None`: from the open-file limit.
    pub max_connections: Option<usize>,
}

/// A database URL, which may hold a password: its `Debug` form hides it.
#[derive(PartialEq, Eq)]
pub struct StoreUrl(pub String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreUrl(<redacted>)")
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve with these settings.
    Serve(Box<Settings>),
    /// Print [`USAGE`] and exit.
    Help,
    /// Print the version (crate version and `git describe`) and exit.
    Version,
}

/// A command line that cannot be run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// A flag that takes a value was last.
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    /// A flag's value is not of the right kind.
    #[error("{0} needs {1}")]
    BadValue(&'static str, &'static str),
    /// An argument this program does not know.
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
    /// Two flags that cannot go together.
    #[error("{0}")]
    Conflict(&'static str),
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, CliError> {
    let mut settings = Settings {
        listen: DEFAULT_LISTEN.to_owned(),
        data: None,
        postgres: None,
        bundles: None,
        tokens: None,
        signing_key: None,
        next_signing_key: None,
        checkpoint_key: None,
        jwks_refresh: Some(Duration::from_secs(DEFAULT_JWKS_REFRESH_SECS)),
        max_connections: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = |name: &'static str| match inline.clone() {
            Some(value) => Ok(value),
            None => args.next().ok_or(CliError::MissingValue(name)),
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--listen" => settings.listen = value("--listen")?,
            "--data" => {
                if settings.data.is_some() || settings.postgres.is_some() {
                    return Err(CliError::Conflict("give one --store (or --data)"));
                }
                settings.data = Some(value("--data")?.into());
            }
            "--store" => {
                if settings.data.is_some() || settings.postgres.is_some() {
                    return Err(CliError::Conflict("give one --store (or --data)"));
                }
                // The value is never echoed: it may hold a password.
                let store = value("--store")?;
                if let Some(dir) = store.strip_prefix("file:") {
                    if dir.is_empty() {
                        return Err(CliError::BadValue("--store", "file:DIR with a directory"));
                    }
                    settings.data = Some(dir.into());
                } else if store.starts_with("postgres://") || store.starts_with("postgresql://") {
                    settings.postgres = Some(StoreUrl(store));
                } else {
                    return Err(CliError::BadValue(
                        "--store",
                        "file:DIR or postgres://USER@HOST:PORT/DB",
                    ));
                }
            }
            "--bundles" => settings.bundles = Some(value("--bundles")?.into()),
            "--tokens" => settings.tokens = Some(value("--tokens")?.into()),
            "--signing-key" => settings.signing_key = Some(value("--signing-key")?.into()),
            "--next-signing-key" => {
                settings.next_signing_key = Some(value("--next-signing-key")?.into());
            }
            "--checkpoint-key" => {
                settings.checkpoint_key = Some(value("--checkpoint-key")?.into());
            }
            "--jwks-refresh" => {
                let secs: u64 = value("--jwks-refresh")?
                    .parse()
                    .map_err(|_| CliError::BadValue("--jwks-refresh", "a number of seconds"))?;
                settings.jwks_refresh = (secs > 0).then(|| Duration::from_secs(secs));
            }
            "--max-connections" => {
                let n: usize = value("--max-connections")?
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(CliError::BadValue("--max-connections", "a positive number"))?;
                settings.max_connections = Some(n);
            }
            _ => return Err(CliError::Unexpected(arg)),
        }
    }
    Ok(Command::Serve(Box::new(settings)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags() {
        let Ok(Command::Serve(s)) = run(&[
            "--listen",
            "127.0.0.1:9",
            "--bundles=d",
            "--data",
            "x",
            "--tokens=t.json",
            "--signing-key",
            "k",
            "--next-signing-key=n",
            "--checkpoint-key=c",
            "--jwks-refresh=0",
            "--max-connections=500",
        ]) else {
            panic!("parses");
        };
        assert_eq!(s.listen, "127.0.0.1:9");
        assert_eq!(s.bundles, Some("d".into()));
        assert_eq!(s.data, Some("x".into()));
        assert_eq!(s.tokens, Some("t.json".into()));
        assert_eq!(s.signing_key, Some("k".into()));
        assert_eq!(s.next_signing_key, Some("n".into()));
        assert_eq!(s.checkpoint_key, Some("c".into()));
        assert_eq!(s.jwks_refresh, None);
        assert_eq!(s.max_connections, Some(500));
        let Ok(Command::Serve(s)) = run(&[]) else {
            panic!("parses");
        };
        assert_eq!(s.listen, DEFAULT_LISTEN);
        assert_eq!(s.jwks_refresh, Some(Duration::from_secs(300)));
        assert_eq!(s.max_connections, None);
        assert_eq!(run(&["-h"]), Ok(Command::Help));
        assert_eq!(run(&["--version"]), Ok(Command::Version));
    }

    #[test]
    fn reports_mistakes() {
        assert_eq!(
            run(&["--bundles"]),
            Err(CliError::MissingValue("--bundles"))
        );
        assert_eq!(
            run(&["--bundle=x"]),
            Err(CliError::Unexpected("--bundle=x".into()))
        );
        assert_eq!(run(&["x"]), Err(CliError::Unexpected("x".into())));
        assert!(matches!(
            run(&["--jwks-refresh", "soon"]),
            Err(CliError::BadValue(..))
        ));
        for bad in ["0", "-1", "many"] {
            assert!(matches!(
                run(&["--max-connections", bad]),
                Err(CliError::BadValue("--max-connections", _))
            ));
        }
    }

    #[test]
    fn store_urls() {
        let Ok(Command::Serve(s)) = run(&["--store", "file:/var/lib/g"]) else {
            panic!("parses");
        };
        assert_eq!(s.data, Some("/var/lib/g".into()));
        assert_eq!(s.postgres, None);
        let Ok(Command::Serve(s)) = run(&["--store=postgres://u:pw@h:5432/d"]) else {
            panic!("parses");
        };
        assert_eq!(
            s.postgres,
            Some(StoreUrl("postgres://u:pw@h:5432/d".into()))
        );
        assert_eq!(s.data, None);
        assert!(!format!("{s:?}").contains("pw"), "Debug hides the URL");
        assert_eq!(
            run(&["--data", "x", "--store", "file:y"]),
            Err(CliError::Conflict("give one --store (or --data)"))
        );
        assert!(matches!(
            run(&["--store", "postgres://a@h/d", "--data=x"]),
            Err(CliError::Conflict(_))
        ));
        let bad = run(&["--store", "mysql://u:hunter2@h/d"]);
        assert!(matches!(bad, Err(CliError::BadValue("--store", _))));
        assert!(!format!("{bad:?}").contains("hunter2"));
        assert!(matches!(
            run(&["--store", "file:"]),
            Err(CliError::BadValue(..))
        ));
    }
}
