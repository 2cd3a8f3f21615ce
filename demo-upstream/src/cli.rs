//! Command-line arguments of the binary (clap derive).

use clap::Parser;

/// Where to listen when `--listen` is not given: loopback, any free port
/// (the chosen port is printed).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// Serves a fake model pod (OpenAI chat completions and MCP) whose answers
/// contain PII, for mcp-guard demos and end-to-end tests.
#[derive(Debug, Parser)]
#[command(
    name = "mcp-guard-demo-upstream",
    version = env!("MCP_GUARD_VERSION"),
    after_help = "Prints `listening on ADDR` once bound; stops on SIGINT or SIGTERM."
)]
pub struct Args {
    /// Address to bind, e.g. 127.0.0.1:8081 (port 0: any free port, the
    /// address bound is printed).
    #[arg(
        long,
        value_name = "ADDR",
        env = "MCP_GUARD_DEMO_UPSTREAM_LISTEN",
        default_value = DEFAULT_LISTEN
    )]
    pub listen: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    fn run(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("mcp-guard-demo-upstream").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn parses_listen() {
        let listen = |args: &[&str]| run(args).map(|a| a.listen).ok();
        if std::env::var_os("MCP_GUARD_DEMO_UPSTREAM_LISTEN").is_none() {
            assert_eq!(listen(&[]).as_deref(), Some(DEFAULT_LISTEN));
        }
        assert_eq!(
            listen(&["--listen", "127.0.0.1:9"]).as_deref(),
            Some("127.0.0.1:9")
        );
        assert_eq!(listen(&["--listen=[::1]:9"]).as_deref(), Some("[::1]:9"));
        let kind = |args: &[&str]| run(args).map(|_| ()).map_err(|e| e.kind());
        assert_eq!(kind(&["--help"]), Err(clap::error::ErrorKind::DisplayHelp));
        assert_eq!(
            kind(&["--version"]),
            Err(clap::error::ErrorKind::DisplayVersion)
        );
        assert_eq!(
            kind(&["--listen"]),
            Err(clap::error::ErrorKind::InvalidValue)
        );
        assert_eq!(kind(&["-x"]), Err(clap::error::ErrorKind::UnknownArgument));
    }
}
