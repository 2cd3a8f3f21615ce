//! `mcp-guard-pii-corpus eval|dump`: see [`mcp_guard_pii_corpus::cli`].

use std::process::ExitCode;

use clap::Parser;
use mcp_guard_pii_corpus::cli;

fn main() -> ExitCode {
    let command = cli::Cli::parse().command;
    match cli::run(&command, &mut std::io::stdout().lock()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("mcp-guard-pii-corpus: {e}");
            ExitCode::from(2)
        }
    }
}
