//! The overflow lane: connections past the cap get one request each,
//! with short timeouts, a bounded number at a time.

use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::{Handler, Lane, Overflow};

/// Serves connections past the cap, [`Overflow::in_flight`] at once.
pub(crate) struct OverflowLane {
    permits: Arc<Semaphore>,
    builder: http1::Builder,
    deadline: Duration,
}

impl OverflowLane {
    pub(crate) fn new(options: &Overflow) -> Self {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(false);
        Self {
            permits: Arc::new(Semaphore::new(options.in_flight)),
            builder,
            deadline: options.deadline,
        }
    }

    /// Serves one request of `stream` with [`Lane::Overflow`], then closes
    /// it; `false` (the stream closed unanswered) when the lane is full.
    ///
    /// These connections are not drained at shutdown: each lasts
    /// [`Overflow::deadline`] at most anyway.
    pub(crate) fn serve(&self, stream: TcpStream, handler: &Arc<impl Handler>) -> bool {
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return false;
        };
        let handler = Arc::clone(handler);
        let service = service_fn(move |request| handler.call(request, Lane::Overflow));
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        let deadline = self.deadline;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(deadline, connection).await;
            drop(permit);
        });
        true
    }
}
