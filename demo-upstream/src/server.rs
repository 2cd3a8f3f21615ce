//! The accept loop: HTTP/1.1 connections served until shutdown, then a
//! bounded drain of the requests in flight.

use std::future::Future;
use std::io;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::router;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shutdown waits for requests in flight before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after an accept error that is not the client's doing (e.g. out of
/// file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves connections from `listener` until `shutdown` completes.
pub(crate) async fn run(
    listener: TcpListener,
    instance: router::Instance,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let instance = std::sync::Arc::new(instance);
    // Fails only if the socket is unusable; better to say so up front.
    listener.local_addr()?;
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    if !is_per_connection(&e) {
                        eprintln!("mcp-guard-demo-upstream: accept failed: {e}");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
        };
        let served = std::sync::Arc::clone(&instance);
        let service = service_fn(move |request| {
            let instance = std::sync::Arc::clone(&served);
            async move { router::handle(&instance, request).await }
        });
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away mid-request is not this server's error.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!("mcp-guard-demo-upstream: gave up waiting for open connections");
    }
    Ok(())
}

/// Errors that concern one connection only; the next accept may succeed.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::TimedOut
    )
}
