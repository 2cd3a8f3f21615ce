//! The accept loop: HTTP/1.1 connections served until shutdown, then a
//! bounded drain of the requests in flight.

use std::future::Future;
use std::io;
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::overflow::OverflowLane;
use crate::throttle::Throttle;
use crate::{Handler, Hooks, Lane, Options};

/// Serves `handler` on `listener` until `shutdown` completes; then stops
/// accepting, calls [`Hooks::shutting_down`] and waits up to
/// [`Options::drain_timeout`] for the connections in flight.
///
/// `handler` answers one request and is told the [`Lane`] it came in on.
/// With [`Options::max_connections`], a connection past the cap is served
/// in the overflow lane: one request, short timeouts, then close. Every
/// long-lived request (a long-poll) holds one connection, and without a
/// cap they would take the last descriptors the service needs for
/// anything else.
///
/// The caller binds the listener, so it can print the address (or a test
/// can learn the port) first. Errors of single connections are not
/// returned; an `Err` means the listener itself is unusable.
pub async fn serve(
    listener: TcpListener,
    handler: impl Handler,
    hooks: impl Hooks,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    // Fails only if the socket is unusable; better to say so up front.
    listener.local_addr()?;
    let handler = Arc::new(handler);
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let capacity = options.max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let overflow = OverflowLane::new(&options.overflow);
    let mut limit_log = Throttle::new(options.log_period);
    let mut accept_log = Throttle::new(options.log_period);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    if !is_per_connection(&e) {
                        if let Some(not_reported) = accept_log.admit() {
                            hooks.accept_failed(&e, not_reported);
                        }
                        tokio::time::sleep(options.accept_backoff).await;
                    }
                    continue;
                }
            },
        };
        let permit = match (&capacity, options.max_connections) {
            (Some(capacity), Some(max)) => match Arc::clone(capacity).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    if limit_log.admit().is_some() {
                        hooks.limit_reached(max);
                    }
                    if !overflow.serve(stream, &handler) {
                        hooks.overflow_full();
                    }
                    continue;
                }
            },
            _ => None,
        };
        let open = hooks.connection_opened();
        let served = Arc::clone(&handler);
        let service = service_fn(move |request| served.call(request, Lane::Regular));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away mid-request is not this server's error.
            let _ = connection.await;
            drop((permit, open));
        });
    }
    drop(listener);
    hooks.shutting_down();
    if tokio::time::timeout(options.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        hooks.drain_gave_up();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_connections_errors_skip_the_backoff() {
        for kind in [
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::Interrupted,
        ] {
            assert!(is_per_connection(&io::Error::from(kind)), "{kind:?}");
        }
        // EMFILE / ENFILE / ENOBUFS: the process's trouble, not a client's.
        for errno in [24, 23, 105] {
            assert!(!is_per_connection(&io::Error::from_raw_os_error(errno)));
        }
    }
}
