//! Command-line arguments of the binary (clap derive). Every option can
//! also come from an environment variable `MCP_GUARD_CONTROL_<OPTION>`
//! (flags win over the environment), for container manifests.

use std::path::PathBuf;
use std::time::Duration;

use clap::{error::ErrorKind, CommandFactory as _, Parser};

/// Where to listen when `--listen` is not given: loopback, any free port
/// (the chosen port is printed).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// Seconds between issuer key refreshes when `--jwks-refresh` is not given.
pub const DEFAULT_JWKS_REFRESH_SECS: u64 = 300;

/// Stores, signs and serves mcp-guard policy bundles (API: control/README.md).
///
/// Prints `listening on ADDR` once bound; logs JSON lines on stderr; stops
/// on SIGINT or SIGTERM.
#[derive(Debug, Parser)]
#[command(name = "mcp-guard-control", version = env!("MCP_GUARD_VERSION"))]
pub struct Args {
    /// Persistent store: `file:DIR` (every version under DIR/bundles, the
    /// signing key in DIR/keys, generated on first start) or
    /// `postgres://USER@HOST:PORT/DB` (shared by several replicas; tables
    /// created at start; needs --signing-key, the same file on every
    /// replica; password in the URL or $MCP_GUARD_STORE_PASSWORD, never
    /// logged; TLS: ?sslmode=verify-full&sslrootcert=CA.pem, or verify-ca,
    /// require, disable; a host other than loopback needs an explicit
    /// sslmode). Without a store, bundles live in memory only.
    #[arg(
        long,
        value_name = "file:DIR|postgres://…",
        env = "MCP_GUARD_CONTROL_STORE",
        hide_env_values = true,
        conflicts_with = "data"
    )]
    pub store: Option<String>,
    /// The same as --store file:DIR.
    #[arg(
        long,
        value_name = "DIR",
        env = "MCP_GUARD_CONTROL_DATA",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub data: Option<PathBuf>,
    /// Seed: import DIR/<name>.json as version 1 of every bundle the store
    /// does not have yet.
    #[arg(
        long,
        value_name = "DIR",
        env = "MCP_GUARD_CONTROL_BUNDLES",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub bundles: Option<PathBuf>,
    /// Push tokens: {"tokens":[{"id","sha256","bundles":[globs]}]};
    /// without it the service is read-only.
    #[arg(
        long,
        value_name = "FILE",
        env = "MCP_GUARD_CONTROL_TOKENS",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub tokens: Option<PathBuf>,
    /// Ed25519 seed (32 bytes, base64 or hex) to sign versions with.
    #[arg(
        long,
        value_name = "FILE",
        env = "MCP_GUARD_CONTROL_SIGNING_KEY",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub signing_key: Option<PathBuf>,
    /// During a key rotation: the key that will replace the current one;
    /// versions are signed with both.
    #[arg(
        long,
        value_name = "FILE",
        env = "MCP_GUARD_CONTROL_NEXT_SIGNING_KEY",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub next_signing_key: Option<PathBuf>,
    /// Ed25519 seed that countersigns decision-trail checkpoints (default:
    /// DIR/keys/checkpoint.key, generated on first start; without a file
    /// store, per run).
    #[arg(
        long,
        value_name = "FILE",
        env = "MCP_GUARD_CONTROL_CHECKPOINT_KEY",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub checkpoint_key: Option<PathBuf>,
    /// Re-fetch issuer keys behind discovery URLs every SECS (0 disables).
    #[arg(
        long,
        value_name = "SECS",
        env = "MCP_GUARD_CONTROL_JWKS_REFRESH",
        hide_env_values = true,
        default_value_t = DEFAULT_JWKS_REFRESH_SECS
    )]
    pub jwks_refresh: u64,
    /// Connections served at once (each waiting long-poll holds one); past
    /// it new ones get 503 + Retry-After. Default and ceiling: the
    /// open-file limit (raised to the hard limit at start) minus 128 kept
    /// for the store.
    #[arg(
        long,
        value_name = "N",
        env = "MCP_GUARD_CONTROL_MAX_CONNECTIONS",
        hide_env_values = true,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub max_connections: Option<u64>,
    /// Address to bind, e.g. 127.0.0.1:8090 (port 0: any free port).
    #[arg(
        long,
        value_name = "ADDR",
        env = "MCP_GUARD_CONTROL_LISTEN",
        hide_env_values = true,
        default_value = DEFAULT_LISTEN
    )]
    pub listen: String,
    /// Author keys that must sign every push: {"signers":[{"key":"<ed25519
    /// public key, base64>","bundles":["payments-*"]}]}. A push without a
    /// valid signature by a key whose patterns match the bundle name is
    /// refused (403) and nothing is stored.
    #[arg(
        long,
        value_name = "FILE",
        env = "MCP_GUARD_CONTROL_TRUSTED_SIGNERS",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub trusted_signers: Option<PathBuf>,
    /// Extra trusted CA certificates (PEM) for fetching OIDC discovery
    /// documents and JWKS over HTTPS (added to Mozilla's roots).
    #[arg(
        long,
        value_name = "PEM",
        env = "MCP_GUARD_CONTROL_DISCOVERY_CA_FILE",
        hide_env_values = true,
        hide_env_values = true
    )]
    pub discovery_ca_file: Option<PathBuf>,
    /// Fetch discovery documents and JWKS over plain http:// too (keys then
    /// travel unauthenticated: for loopback tests and demos only). Without
    /// it, http:// URLs, and a jwks_uri or redirect to http://, are refused.
    #[arg(
        long,
        env = "MCP_GUARD_CONTROL_ALLOW_PLAIN_HTTP_DISCOVERY",
        hide_env_values = true,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_plain_http_discovery: bool,
    /// Log level filter (tracing syntax, e.g. info, warn or
    /// mcp_guard_control=debug).
    #[arg(
        long,
        value_name = "FILTER",
        env = "MCP_GUARD_LOG",
        hide_env_values = true,
        default_value = "info"
    )]
    pub log: String,
}

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
    /// Trusted author signers file.
    pub trusted_signers: Option<PathBuf>,
    /// Extra CA file for discovery over HTTPS.
    pub discovery_ca_file: Option<PathBuf>,
    /// Whether discovery may use plain HTTP.
    pub allow_plain_http_discovery: bool,
    /// Log filter.
    pub log: String,
}

/// A database URL, which may hold a password: its `Debug` form hides it.
#[derive(PartialEq, Eq)]
pub struct StoreUrl(pub String);

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreUrl(<redacted>)")
    }
}

/// Parses the process arguments (and environment); prints help, the
/// version or a usage error and exits as clap does (status 2 for errors).
pub fn parse() -> Settings {
    let args = Args::parse();
    args.settings().unwrap_or_else(|message| {
        Args::command()
            .error(ErrorKind::ValueValidation, message)
            .exit()
    })
}

impl Args {
    /// The settings these arguments ask for. `--store` is checked here
    /// rather than by a clap value parser, whose error would echo the
    /// value (a URL may hold a password).
    pub fn settings(self) -> Result<Settings, String> {
        let mut data = self.data;
        let mut postgres = None;
        if let Some(store) = self.store {
            if let Some(dir) = store.strip_prefix("file:") {
                if dir.is_empty() {
                    return Err("--store needs file:DIR with a directory".into());
                }
                data = Some(dir.into());
            } else if store.starts_with("postgres://") || store.starts_with("postgresql://") {
                postgres = Some(StoreUrl(store));
            } else {
                return Err("--store needs file:DIR or postgres://USER@HOST:PORT/DB".into());
            }
        }
        Ok(Settings {
            listen: self.listen,
            data,
            postgres,
            bundles: self.bundles,
            tokens: self.tokens,
            signing_key: self.signing_key,
            next_signing_key: self.next_signing_key,
            checkpoint_key: self.checkpoint_key,
            jwks_refresh: (self.jwks_refresh > 0).then(|| Duration::from_secs(self.jwks_refresh)),
            max_connections: self
                .max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
            trusted_signers: self.trusted_signers,
            discovery_ca_file: self.discovery_ca_file,
            allow_plain_http_discovery: self.allow_plain_http_discovery,
            log: self.log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Settings, String> {
        let args =
            Args::try_parse_from(std::iter::once("mcp-guard-control").chain(args.iter().copied()))
                .map_err(|e| e.to_string())?;
        args.settings()
    }

    #[test]
    fn clap_definition_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn parses_flags() {
        let s = run(&[
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
        ])
        .expect("parses");
        assert_eq!(s.listen, "127.0.0.1:9");
        assert_eq!(s.bundles, Some("d".into()));
        assert_eq!(s.data, Some("x".into()));
        assert_eq!(s.tokens, Some("t.json".into()));
        assert_eq!(s.signing_key, Some("k".into()));
        assert_eq!(s.next_signing_key, Some("n".into()));
        assert_eq!(s.checkpoint_key, Some("c".into()));
        assert_eq!(s.jwks_refresh, None);
        assert_eq!(s.max_connections, Some(500));
        let s = run(&[]).expect("parses");
        assert_eq!(s.listen, DEFAULT_LISTEN);
        assert_eq!(s.jwks_refresh, Some(Duration::from_secs(300)));
        assert_eq!(s.max_connections, None);
        let help = Args::try_parse_from(["mcp-guard-control", "-h"]).expect_err("help");
        assert_eq!(help.kind(), ErrorKind::DisplayHelp);
        let version = Args::try_parse_from(["mcp-guard-control", "--version"]).expect_err("v");
        assert_eq!(version.kind(), ErrorKind::DisplayVersion);
    }

    #[test]
    fn help_names_every_option_and_its_env_var() {
        let help = Args::command().render_long_help().to_string();
        for (flag, env) in [
            ("--store", "MCP_GUARD_CONTROL_STORE"),
            ("--data", "MCP_GUARD_CONTROL_DATA"),
            ("--tokens", "MCP_GUARD_CONTROL_TOKENS"),
            ("--listen", "MCP_GUARD_CONTROL_LISTEN"),
            ("--max-connections", "MCP_GUARD_CONTROL_MAX_CONNECTIONS"),
        ] {
            assert!(help.contains(flag) && help.contains(env), "{flag} {env}");
        }
    }

    #[test]
    fn reports_mistakes() {
        let missing = run(&["--bundles"]).expect_err("needs a value");
        assert!(missing.contains("--bundles"), "{missing}");
        let unknown = run(&["--bundle=x"]).expect_err("unknown");
        assert!(unknown.contains("--bundle"), "{unknown}");
        assert!(run(&["x"]).is_err());
        assert!(run(&["--jwks-refresh", "soon"]).is_err());
        for bad in ["0", "-1", "many"] {
            let bad = format!("--max-connections={bad}");
            let e = run(&[bad.as_str()]).expect_err("positive");
            assert!(e.contains("--max-connections"), "{e}");
        }
    }

    #[test]
    fn store_urls() {
        let s = run(&["--store", "file:/var/lib/g"]).expect("parses");
        assert_eq!(s.data, Some("/var/lib/g".into()));
        assert_eq!(s.postgres, None);
        let s = run(&["--store=postgres://u:pw@h:5432/d"]).expect("parses");
        assert_eq!(
            s.postgres,
            Some(StoreUrl("postgres://u:pw@h:5432/d".into()))
        );
        assert_eq!(s.data, None);
        assert!(!format!("{s:?}").contains("pw"), "Debug hides the URL");
        let both = run(&["--data", "x", "--store", "file:y"]).expect_err("conflict");
        assert!(both.contains("cannot be used with"), "{both}");
        assert!(run(&["--store", "postgres://a@h/d", "--data=x"]).is_err());
        let bad = run(&["--store", "mysql://u:hunter2@h/d"]).expect_err("bad scheme");
        assert!(bad.contains("--store"), "{bad}");
        assert!(!bad.contains("hunter2"), "{bad}");
        assert!(run(&["--store", "file:"]).is_err());
    }
}
