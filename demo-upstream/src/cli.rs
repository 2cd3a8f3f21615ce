//! Command-line arguments of the binary, parsed by hand: there is one flag.

/// Where to listen when `--listen` is not given: loopback, any free port
/// (the chosen port is printed).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// One-screen help, printed for `--help` and after a usage error.
pub const USAGE: &str = "\
usage: mcp-guard-demo-upstream [--listen ADDR]

Serves a fake model pod (OpenAI chat completions and MCP) whose answers
contain PII, for mcp-guard demos and end-to-end tests.

options:
  --listen ADDR   address to bind, e.g. 127.0.0.1:8081 (default 127.0.0.1:0)
  -h, --help      print this help

Prints `listening on ADDR` once bound; stops on SIGINT or SIGTERM.";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve on this address.
    Serve { listen: String },
    /// Print [`USAGE`] and exit.
    Help,
}

/// A command line that cannot be run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// A flag that takes a value was last.
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    /// An argument this program does not know.
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, CliError> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--listen" => listen = args.next().ok_or(CliError::MissingValue("--listen"))?,
            other => match other.strip_prefix("--listen=") {
                Some(value) => listen = value.to_owned(),
                None => return Err(CliError::Unexpected(arg)),
            },
        }
    }
    Ok(Command::Serve { listen })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_listen() {
        let serve = |l: &str| Ok(Command::Serve { listen: l.into() });
        assert_eq!(run(&[]), serve(DEFAULT_LISTEN));
        assert_eq!(run(&["--listen", "127.0.0.1:9"]), serve("127.0.0.1:9"));
        assert_eq!(run(&["--listen=[::1]:9"]), serve("[::1]:9"));
        assert_eq!(run(&["--help"]), Ok(Command::Help));
        assert_eq!(run(&["--listen"]), Err(CliError::MissingValue("--listen")));
        assert_eq!(run(&["-x"]), Err(CliError::Unexpected("-x".into())));
    }
}
