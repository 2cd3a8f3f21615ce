//! `mcp-guard-pii-corpus eval|dump`: see [`mcp_guard_pii_corpus::cli`].

use std::process::ExitCode;

use mcp_guard_pii_corpus::cli;

fn main() -> ExitCode {
    let result = cli::parse(std::env::args().skip(1))
        .and_then(|cmd| cli::run(&cmd, &mut std::io::stdout().lock()));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
