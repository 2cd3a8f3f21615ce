//! The HTTP side port: `GET /healthz` (the process runs), `GET /readyz`
//! (Redis answers a PING and the service is not shutting down) and
//! `GET /metrics` (Prometheus). Kept off the gRPC port so probes and
//! scrapes never compete with Envoy's connections.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::limiter::Limiter;
use crate::metrics::Metrics;

/// What the HTTP handlers read.
#[derive(Debug)]
pub struct HttpState {
    /// For the readiness PING.
    pub limiter: Arc<Limiter>,
    /// For `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Set when shutdown starts: `/readyz` then answers 503.
    pub draining: AtomicBool,
}

/// Serves until `stop` turns true, on the accept loop the control service
/// and the demo upstream share: 5 s to send the request headers, and at
/// stop the requests in flight get [`DRAIN_TIMEOUT`] to finish.
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, mut stop: watch::Receiver<bool>) {
    let handler = move |request: Request<Incoming>, _lane| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(&state, &request).await) }
    };
    let options = mcp_guard_serve::Options {
        header_read_timeout: Duration::from_secs(5),
        drain_timeout: DRAIN_TIMEOUT,
        ..mcp_guard_serve::Options::default()
    };
    let stopped = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    // An error means an unusable listener; the port was bound and
    // announced already, and the gRPC side keeps serving.
    let _ = mcp_guard_serve::serve(listener, handler, (), options, stopped).await;
}

/// How long a probe or scrape in flight at stop may take to finish (the
/// gRPC calls have drained by then; a `/readyz` PING is bounded by the
/// Redis timeout).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

async fn handle(state: &HttpState, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if state.draining.load(Ordering::Relaxed) {
                return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n");
            }
            match state.limiter.store().ping().await {
                Ok(()) => text(StatusCode::OK, "ready\n"),
                Err(e) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("redis unavailable: {e}\n"),
                ),
            }
        }
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.encode())));
            response.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
