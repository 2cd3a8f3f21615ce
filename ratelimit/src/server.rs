//! Runs the gRPC service and the HTTP side port until shutdown.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_stream::wrappers::ReceiverStream;

use crate::conn;
use crate::grpc::RateLimitService;
use crate::http::{self, HttpState};
use crate::limiter::Limiter;
use crate::metrics::Metrics;
use crate::plan::{Bounds, Limit};
use crate::store::{Store, StoreError};

/// Everything the service is configured with.
#[derive(Debug, Clone)]
pub struct Config {
    /// `redis://[user:password@]host:port[/db]` (plaintext: inside a mesh
    /// the sidecar adds mTLS).
    pub redis_url: String,
    /// Bound on every Redis call, connecting included.
    pub redis_timeout: Duration,
    /// Per-request bounds.
    pub bounds: Bounds,
    /// The limit of descriptors without an override (none: not counted).
    pub default_limit: Option<Limit>,
    /// Largest request message accepted (bytes, before decoding).
    pub max_request_bytes: usize,
    /// Bound on one call, from its headers to its answer.
    pub request_timeout: Duration,
    /// Open gRPC connections at most; more are closed at once.
    pub max_connections: usize,
    /// Concurrent calls on one connection at most (HTTP/2 streams).
    pub max_streams_per_connection: u32,
    /// A connection on which nothing arrives this long is closed.
    pub idle_timeout: Duration,
    /// How long in-flight calls may finish after SIGTERM.
    pub drain_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            redis_timeout: Duration::from_millis(250),
            bounds: Bounds::default(),
            default_limit: None,
            max_request_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(2),
            max_connections: 1024,
            max_streams_per_connection: 256,
            idle_timeout: Duration::from_secs(60),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the service stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The Redis URL is malformed.
    #[error("--redis-url: {0}")]
    RedisUrl(#[from] StoreError),
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// Serves `ShouldRateLimit` on `grpc` and the probes and metrics on
/// `http` until `shutdown` completes; then `/readyz` turns 503, new
/// connections are refused, and calls in flight get `drain_timeout` to
/// finish.
pub async fn serve(
    config: Config,
    grpc: TcpListener,
    http_listener: Option<TcpListener>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let metrics = Arc::new(Metrics::new());
    let store = Store::new(&config.redis_url, config.redis_timeout)?;
    let limiter = Arc::new(Limiter::new(
        store,
        config.bounds,
        config.default_limit,
        metrics.clone(),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    // The HTTP port outlives the drain, so probes see 503 (not a refused
    // connection) while calls in flight finish.
    let (http_stop, http_stopped) = tokio::sync::watch::channel(false);
    let state = Arc::new(HttpState {
        limiter: limiter.clone(),
        metrics: metrics.clone(),
        draining: false.into(),
    });
    let http_task = http_listener
        .map(|listener| tokio::spawn(http::serve(listener, state.clone(), http_stopped)));
    let incoming = ReceiverStream::new(conn::accept(
        grpc,
        config.max_connections,
        config.idle_timeout,
        metrics.clone(),
        stopped.clone(),
    ));
    let service = RateLimitService::new(limiter, config.max_request_bytes);
    let keepalive = config.idle_timeout / 3;
    let mut drain = stopped.clone();
    let server = tonic::transport::Server::builder()
        .timeout(config.request_timeout)
        .max_concurrent_streams(config.max_streams_per_connection)
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive))
        .http2_max_header_list_size(16 * 1024)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = drain.wait_for(|stopped| *stopped).await;
        });
    tokio::pin!(server);
    let result = tokio::select! {
        result = &mut server => result,
        () = shutdown => {
            tracing::info!("shutting down: draining calls in flight");
            state.draining.store(true, Ordering::Relaxed);
            let _ = stop.send(true);
            match tokio::time::timeout(config.drain_timeout, &mut server).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(drain_timeout = ?config.drain_timeout, "calls still in flight at the drain timeout: closing");
                    Ok(())
                }
            }
        }
    };
    let _ = stop.send(true);
    let _ = http_stop.send(true);
    if let Some(task) = http_task {
        let _ = task.await;
    }
    result.map_err(ServeError::from)
}
