//! Command-line arguments of the binary, parsed by hand: there are two
//! flags.

use std::path::PathBuf;

/// Where to listen when `--listen` is not given: loopback, any free port
/// (the chosen port is printed).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:0";

/// One-screen help, printed for `--help` and after a usage error.
pub const USAGE: &str = "\
usage: mcp-guard-control --bundles DIR [--listen ADDR]

Serves the mcp-guard policy bundles found in DIR (one <name>.json file per
bundle; invalid files are reported and skipped) at GET /v1/bundles/<name>.

options:
  --bundles DIR   directory of bundle files (required)
  --listen ADDR   address to bind, e.g. 127.0.0.1:8090 (default 127.0.0.1:0)
  -h, --help      print this help

Prints `listening on ADDR` once bound; stops on SIGINT or SIGTERM.";

/// The settings of a run.
#[derive(Debug, PartialEq, Eq)]
pub struct Settings {
    /// Address to bind.
    pub listen: String,
    /// Directory of bundle files.
    pub bundles: PathBuf,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Serve with these settings.
    Serve(Settings),
    /// Print [`USAGE`] and exit.
    Help,
}

/// A command line that cannot be run.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// A flag that takes a value was last.
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    /// A required flag is absent.
    #[error("{0} is required")]
    Missing(&'static str),
    /// An argument this program does not know.
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, CliError> {
    let mut listen = DEFAULT_LISTEN.to_owned();
    let mut bundles = None;
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
            "--listen" => listen = value("--listen")?,
            "--bundles" => bundles = Some(PathBuf::from(value("--bundles")?)),
            _ => return Err(CliError::Unexpected(arg)),
        }
    }
    let bundles = bundles.ok_or(CliError::Missing("--bundles"))?;
    Ok(Command::Serve(Settings { listen, bundles }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn parses_flags() {
        let serve = |listen: &str, bundles: &str| {
            Ok(Command::Serve(Settings {
                listen: listen.into(),
                bundles: bundles.into(),
            }))
        };
        assert_eq!(run(&["--bundles", "b"]), serve(DEFAULT_LISTEN, "b"));
        assert_eq!(
            run(&["--listen", "127.0.0.1:9", "--bundles=d"]),
            serve("127.0.0.1:9", "d")
        );
        assert_eq!(run(&["-h"]), Ok(Command::Help));
    }

    #[test]
    fn reports_mistakes() {
        assert_eq!(run(&[]), Err(CliError::Missing("--bundles")));
        assert_eq!(
            run(&["--bundles"]),
            Err(CliError::MissingValue("--bundles"))
        );
        assert_eq!(
            run(&["--bundle=x"]),
            Err(CliError::Unexpected("--bundle=x".into()))
        );
        assert_eq!(run(&["x"]), Err(CliError::Unexpected("x".into())));
    }
}
