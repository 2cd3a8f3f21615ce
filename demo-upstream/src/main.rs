//! `mcp-guard-demo-upstream [--listen ADDR]`: binds, prints
//! `listening on ADDR`, serves until SIGINT or SIGTERM.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let listen = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Serve { listen }) => listen,
        Ok(cli::Command::Help) => {
            println!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mcp-guard-demo-upstream: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
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

mod signals {
    //! The shutdown trigger: SIGINT or SIGTERM.

    use std::future::Future;

    /// Installs the handlers now and returns a future that completes on the
    /// first SIGINT or SIGTERM.
    #[cfg(unix)]
    pub fn shutdown() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }

    /// Completes on Ctrl-C where there are no Unix signals.
    #[cfg(not(unix))]
    pub fn shutdown() -> std::io::Result<impl Future<Output = ()> + Send + 'static> {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
