//! The command line: `eval` scores the scanner, `dump` writes the corpus
//! as JSON lines.
//!
//! ```text
//! mcp-guard-pii-corpus eval [--docs N] [--seed S] [--json] [--examples K]
//! mcp-guard-pii-corpus dump [--docs N] [--seed S] [--out FILE]
//! ```

use std::io::Write;

use mcp_guard_engine::pii::{PiiConfig, PiiConfigError, Scanner};
use thiserror::Error;

use crate::corpus::{self, DEFAULT_SEED};
use crate::{eval, report};

/// Default number of documents.
pub const DEFAULT_DOCS: usize = 5000;

/// What went wrong on the command line or while running it.
#[derive(Debug, Error)]
pub enum CliError {
    /// No or an unknown subcommand.
    #[error("usage: mcp-guard-pii-corpus <eval|dump> [--docs N] [--seed S] [--json] [--examples K] [--out FILE]")]
    Usage,
    /// An option that the subcommand does not take.
    #[error("unknown option `{0}`")]
    UnknownOption(String),
    /// An option without its value, or with an unparsable one.
    #[error("option `{0}` needs a number")]
    BadValue(String),
    /// The scanner configuration was rejected.
    #[error(transparent)]
    Config(#[from] PiiConfigError),
    /// Writing the output failed.
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    /// Serialising a document failed.
    #[error("serialise failed: {0}")]
    Json(#[from] serde_json::Error),
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Score the scanner.
    Eval {
        /// Corpus size.
        docs: usize,
        /// Corpus seed.
        seed: u64,
        /// Print JSON instead of a table.
        json: bool,
        /// Errors shown per type and kind.
        examples: usize,
    },
    /// Write the corpus as JSONL.
    Dump {
        /// Corpus size.
        docs: usize,
        /// Corpus seed.
        seed: u64,
        /// Output file (stdout when absent).
        out: Option<String>,
    },
}

fn number<T: std::str::FromStr>(
    it: &mut impl Iterator<Item = String>,
    name: &str,
) -> Result<T, CliError> {
    it.next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CliError::BadValue(name.to_string()))
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, CliError> {
    let mut it = args.into_iter();
    let sub = it.next().ok_or(CliError::Usage)?;
    let (mut docs, mut seed, mut json, mut examples, mut out) =
        (DEFAULT_DOCS, DEFAULT_SEED, false, 3, None);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--docs" => docs = number(&mut it, &a)?,
            "--seed" => seed = number(&mut it, &a)?,
            "--examples" if sub == "eval" => examples = number(&mut it, &a)?,
            "--json" if sub == "eval" => json = true,
            "--out" if sub == "dump" => {
                out = Some(it.next().ok_or_else(|| CliError::BadValue(a.clone()))?)
            }
            _ => return Err(CliError::UnknownOption(a)),
        }
    }
    match sub.as_str() {
        "eval" => Ok(Command::Eval {
            docs,
            seed,
            json,
            examples,
        }),
        "dump" => Ok(Command::Dump { docs, seed, out }),
        _ => Err(CliError::Usage),
    }
}

/// Runs `cmd`, writing to `w`; returns whether the targets were met
/// (always true for `dump`).
pub fn run(cmd: &Command, w: &mut dyn Write) -> Result<bool, CliError> {
    match cmd {
        Command::Eval {
            docs,
            seed,
            json,
            examples,
        } => {
            let scanner = Scanner::new(&PiiConfig::default())?;
            let corpus = corpus::generate(*docs, *seed);
            let ev = eval::evaluate(&scanner, &corpus, *examples);
            if *json {
                writeln!(w, "{}", serde_json::to_string_pretty(&report::json(&ev))?)?;
            } else {
                write!(w, "{}", report::text(&ev))?;
            }
            Ok(ev.failures().is_empty())
        }
        Command::Dump { docs, seed, out } => {
            let mut file;
            let sink: &mut dyn Write = match out {
                Some(path) => {
                    file = std::io::BufWriter::new(std::fs::File::create(path)?);
                    &mut file
                }
                None => w,
            };
            for id in 0..*docs {
                let doc = corpus::document(*seed, id);
                serde_json::to_writer(&mut *sink, &doc)?;
                sink.write_all(b"\n")?;
            }
            sink.flush()?;
            Ok(true)
        }
    }
}
