//! The shutdown trigger of every binary: SIGINT or SIGTERM (Ctrl-C where
//! there are no Unix signals).

use std::future::Future;

/// Installs the handlers now and returns a future that completes on the
/// first SIGINT or SIGTERM.
///
/// Call it before announcing the listening address: a supervisor that
/// signals as soon as it sees the address then gets a graceful shutdown,
/// not the default action (the process killed mid-request).
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
