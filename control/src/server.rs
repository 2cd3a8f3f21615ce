//! The control service on the shared accept loop ([`mcp_guard_serve`]):
//! the loop's timeouts, cap, overflow lane and drain are shared with the
//! demo upstream; what is the control service's own is here: which
//! requests the overflow lane refuses (long-polls, with `503` and
//! `Retry-After`), its metrics and log lines, and what shutdown wakes.

use std::future::Future;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use hyper::header::{HeaderValue, CONNECTION, RETRY_AFTER};
use hyper::StatusCode;
use mcp_guard_serve::{Hooks, Lane};

use crate::http::{self, App};
use crate::metrics::Open;

/// Seconds a refused client is asked to wait before it retries.
const REFUSAL_RETRY_AFTER: &str = "5";

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
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    max_connections: Option<usize>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    if let Some(n) = max_connections {
        app.metrics.set_max_connections(n);
    }
    let options = mcp_guard_serve::Options {
        max_connections,
        ..mcp_guard_serve::Options::default()
    };
    let served = Arc::clone(&app);
    let handler = move |request: hyper::Request<hyper::body::Incoming>, lane| {
        let app = Arc::clone(&served);
        async move {
            if lane == Lane::Overflow && http::asks_to_wait(&request) {
                app.metrics.refuse_connection();
                return Ok(over_capacity());
            }
            http::handle(app, request).await
        }
    };
    mcp_guard_serve::serve(listener, handler, ControlHooks(app), options, shutdown).await
}

/// The control service's side of the loop: metrics, log lines, shutdown.
struct ControlHooks(Arc<App>);

impl Hooks for ControlHooks {
    type Connection = Open;

    fn connection_opened(&self) -> Open {
        self.0.metrics.connection()
    }

    fn accept_failed(&self, error: &io::Error, not_reported: u64) {
        tracing::error!(
            error = %error,
            failures_not_logged = not_reported,
            "accept failed"
        );
    }

    fn limit_reached(&self, max_connections: usize) {
        tracing::warn!(
            max_connections,
            "connection limit reached: new long-polls get 503"
        );
    }

    fn overflow_full(&self) {
        self.0.metrics.refuse_connection();
    }

    /// `/readyz` fails from now on, and waiting long-polls are answered
    /// 304 (the store is closed), so the drain does not wait for them.
    fn shutting_down(&self) {
        self.0.ready.store(false, Ordering::Relaxed);
        self.0.store.close();
    }

    fn drain_gave_up(&self) {
        tracing::warn!("gave up waiting for open connections");
    }
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
