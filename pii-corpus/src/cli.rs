//! The command line: `eval` scores the scanner, `dump` writes the corpus
//! as JSON lines.
//!
//! ```text
//! mcp-guard-pii-corpus eval [--docs N] [--seed S] [--json] [--examples K]
//! mcp-guard-pii-corpus dump [--docs N] [--seed S] [--out FILE]
//! ```

use std::io::Write;

use clap::{Parser, Subcommand};
use mcp_guard_engine::pii::{PiiConfig, PiiConfigError, Scanner};
use thiserror::Error;

use crate::corpus::{self, DEFAULT_SEED};
use crate::{eval, report};

/// Default number of documents.
pub const DEFAULT_DOCS: usize = 5000;

/// What went wrong while running a command (the command line itself is
/// checked by clap, which prints its own message and exits with 2).
#[derive(Debug, Error)]
pub enum CliError {
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

/// Generated, labelled PII corpus and a recall/precision evaluator for the
/// mcp-guard scanner.
#[derive(Debug, Parser)]
#[command(name = "mcp-guard-pii-corpus", version = env!("MCP_GUARD_VERSION"))]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Score the scanner on a generated corpus; exits 1 when a recall or
    /// precision target is missed.
    Eval {
        /// Corpus size (documents).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_DOCS)]
        docs: usize,
        /// Corpus seed (the same seed gives the same corpus).
        #[arg(long, value_name = "S", default_value_t = DEFAULT_SEED)]
        seed: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Errors shown per type and kind.
        #[arg(long, value_name = "K", default_value_t = 3)]
        examples: usize,
    },
    /// Write the corpus as JSON lines (one labelled document a line).
    Dump {
        /// Corpus size (documents).
        #[arg(long, value_name = "N", default_value_t = DEFAULT_DOCS)]
        docs: usize,
        /// Corpus seed (the same seed gives the same corpus).
        #[arg(long, value_name = "S", default_value_t = DEFAULT_SEED)]
        seed: u64,
        /// Output file (stdout when absent).
        #[arg(long, value_name = "FILE")]
        out: Option<String>,
    },
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
