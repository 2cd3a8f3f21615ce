//! The accept loop: HTTP/1.1 connections served until shutdown, then a
//! bounded drain of the requests in flight.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderValue, CONNECTION, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::http::{self, App};
use crate::log;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shutdown waits for requests in flight before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after an accept error that is not the client's doing (e.g. out of
/// file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Connections past the limit served at once in the overflow lane (one
/// request each: a push, a scrape, a probe is answered, a long-poll gets
/// `503`); more than this many (a flood, or slow clients) are closed
/// unanswered, so the lane never costs more than a few descriptors.
const OVERFLOW_IN_FLIGHT: usize = 64;

/// How long a client in the overflow lane may take to send its headers.
const OVERFLOW_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one overflow-lane connection may last in all.
const OVERFLOW_DEADLINE: Duration = Duration::from_secs(10);

/// Seconds a refused client is asked to wait before it retries.
const REFUSAL_RETRY_AFTER: &str = "5";

/// At most one "connection limit reached" (or "accept failed") line per
/// this period.
const FULL_LOG_PERIOD: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes; then stops
/// accepting, answers waiting long-polls with 304 and drains.
///
/// With `max_connections`, a connection past the limit goes to the
/// overflow lane: one request, then close; a long-poll there is answered
/// `503` with `Retry-After`, anything else (a push, a scrape, a probe) is
/// served. Every waiting long-poll holds one connection, and without a
/// cap they would take the last descriptors the store needs to write the
/// very push they wait for.
pub(crate) async fn run(
    listener: TcpListener,
    app: Arc<App>,
    max_connections: Option<usize>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    // Fails only if the socket is unusable; better to say so up front.
    listener.local_addr()?;
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let capacity = max_connections.map(|n| Arc::new(Semaphore::new(n)));
    let overflow = Arc::new(Semaphore::new(OVERFLOW_IN_FLIGHT));
    let mut last_full_log: Option<tokio::time::Instant> = None;
    let mut last_accept_log: Option<tokio::time::Instant> = None;
    let mut accept_failures_unlogged: u64 = 0;
    if let Some(n) = max_connections {
        app.metrics.set_max_connections(n);
    }
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    if !is_per_connection(&e) {
                        // Out of descriptors this repeats every backoff:
                        // one line per period, with how many were not logged.
                        if last_accept_log.is_none_or(|at| at.elapsed() >= FULL_LOG_PERIOD) {
                            last_accept_log = Some(tokio::time::Instant::now());
                            log::error(
                                "accept failed",
                                serde_json::json!({
                                    "error": e.to_string(),
                                    "failures_not_logged": accept_failures_unlogged,
                                }),
                            );
                            accept_failures_unlogged = 0;
                        } else {
                            accept_failures_unlogged += 1;
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
        };
        let permit = match &capacity {
            None => None,
            Some(capacity) => match Arc::clone(capacity).try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    if last_full_log.is_none_or(|at| at.elapsed() >= FULL_LOG_PERIOD) {
                        last_full_log = Some(tokio::time::Instant::now());
                        log::warn(
                            "connection limit reached: new long-polls get 503",
                            serde_json::json!({"max_connections": max_connections}),
                        );
                    }
                    overflow_lane(stream, &overflow, &app);
                    continue;
                }
            },
        };
        let open = app.metrics.connection();
        let app = Arc::clone(&app);
        let service = service_fn(move |request| http::handle(Arc::clone(&app), request));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            // A client that goes away mid-request is not this server's error.
            let _ = connection.await;
            drop((permit, open));
        });
    }
    drop(listener);
    app.ready.store(false, std::sync::atomic::Ordering::Relaxed);
    app.store.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        log::warn(
            "gave up waiting for open connections",
            serde_json::Value::Null,
        );
    }
    Ok(())
}

/// Serves one request of a connection past the limit, then closes it:
/// a long-poll is refused with `503`, anything else is answered. When the
/// lane is full the connection is closed unanswered.
fn overflow_lane(stream: TcpStream, lane: &Arc<Semaphore>, app: &Arc<App>) {
    let Ok(permit): Result<OwnedSemaphorePermit, _> = Arc::clone(lane).try_acquire_owned() else {
        app.metrics.refuse_connection();
        return;
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(OVERFLOW_READ_TIMEOUT)
        .keep_alive(false);
    let app = Arc::clone(app);
    let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let app = Arc::clone(&app);
        async move {
            if http::asks_to_wait(&request) {
                app.metrics.refuse_connection();
                Ok(over_capacity())
            } else {
                http::handle(app, request).await
            }
        }
    });
    tokio::spawn(async move {
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let _ = tokio::time::timeout(OVERFLOW_DEADLINE, connection).await;
        drop(permit);
    });
}

/// `503 {"error":"over_capacity"}` with `Retry-After` and `Connection: close`.
fn over_capacity() -> hyper::Response<http::Body> {
    let mut response = http::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "over_capacity",
        Some("this replica holds as many connections as it may; retry later"),
    );
    let headers = response.headers_mut();
    headers.insert(RETRY_AFTER, HeaderValue::from_static(REFUSAL_RETRY_AFTER));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    response
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
