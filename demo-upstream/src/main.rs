//! `mcp-guard-demo-upstream [--listen ADDR]`: binds, prints
//! `listening on ADDR`, serves until SIGINT or SIGTERM.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser as _;
use mcp_guard_serve::signals;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    // Exits 2 with the usage on a bad command line, 0 after --help or
    // --version.
    let listen = cli::Args::parse().listen;
    // Registered before the address is printed, so a signal sent as soon as
    // a supervisor sees the line already shuts down gracefully.
    let shutdown = match signals::shutdown() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            eprintln!("mcp-guard-demo-upstream: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("mcp-guard-demo-upstream: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => {
            eprintln!("mcp-guard-demo-upstream: listener has no address: {e}");
            return ExitCode::FAILURE;
        }
    }
    // Whoever reads the line waits for it; a failed flush means nobody is.
    let _ = std::io::stdout().flush();
    match mcp_guard_demo_upstream::serve(listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-guard-demo-upstream: {e}");
            ExitCode::FAILURE
        }
    }
}
