//! A test service over the shared loop: answers which lane each request
//! came in on, and counts what the loop told its hooks.

#![allow(dead_code)] // each test file uses a different part

use std::convert::Infallible;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use mcp_guard_serve::{serve, Hooks, Lane, Options};
use mcp_guard_test_support::Running;
use tokio::sync::watch;

/// What the hooks were told, and the open-connection gauge.
#[derive(Debug, Default)]
pub struct Counts {
    pub opened: AtomicUsize,
    pub open: AtomicUsize,
    pub accept_failed: AtomicUsize,
    /// The sum of `not_reported` over the `accept_failed` calls.
    pub accept_not_reported: AtomicUsize,
    pub limit_reached: AtomicUsize,
    pub overflow_full: AtomicUsize,
    pub shutting_down: AtomicUsize,
    pub drain_gave_up: AtomicUsize,
}

impl Counts {
    pub fn get(counter: &AtomicUsize) -> usize {
        counter.load(Ordering::SeqCst)
    }
}

/// The test's hooks: counts everything; `shutting_down` wakes `/wait`.
pub struct Recorder {
    pub counts: Arc<Counts>,
    pub stopping: watch::Sender<bool>,
}

/// Keeps [`Counts::open`] up while the connection lives.
pub struct Open(Arc<Counts>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Hooks for Recorder {
    type Connection = Open;

    fn connection_opened(&self) -> Open {
        self.counts.opened.fetch_add(1, Ordering::SeqCst);
        self.counts.open.fetch_add(1, Ordering::SeqCst);
        Open(Arc::clone(&self.counts))
    }

    fn accept_failed(&self, _error: &io::Error, not_reported: u64) {
        self.counts.accept_failed.fetch_add(1, Ordering::SeqCst);
        self.counts
            .accept_not_reported
            .fetch_add(usize::try_from(not_reported).unwrap(), Ordering::SeqCst);
    }

    fn limit_reached(&self, _max_connections: usize) {
        self.counts.limit_reached.fetch_add(1, Ordering::SeqCst);
    }

    fn overflow_full(&self) {
        self.counts.overflow_full.fetch_add(1, Ordering::SeqCst);
    }

    fn shutting_down(&self) {
        self.counts.shutting_down.fetch_add(1, Ordering::SeqCst);
        let _ = self.stopping.send(true);
    }

    fn drain_gave_up(&self) {
        self.counts.drain_gave_up.fetch_add(1, Ordering::SeqCst);
    }
}

/// `/slow`: 300 ms then 200; `/wait`: until shutdown starts, then 304;
/// `/hang`: never; anything else at once. The body names the lane.
async fn handle(
    request: Request<Incoming>,
    lane: Lane,
    stopping: watch::Receiver<bool>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut status = StatusCode::OK;
    match request.uri().path() {
        "/slow" => tokio::time::sleep(Duration::from_millis(300)).await,
        "/wait" => {
            let mut stopping = stopping;
            let _ = stopping.wait_for(|stopping| *stopping).await;
            status = StatusCode::NOT_MODIFIED;
        }
        "/hang" => std::future::pending::<()>().await,
        _ => {}
    }
    let mut response = Response::new(Full::new(Bytes::from(format!("{lane:?}"))));
    *response.status_mut() = status;
    Ok(response)
}

/// Serves the test service with `options` on a free loopback port.
pub async fn start(options: Options) -> (Running, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let (stopping, watching) = watch::channel(false);
    let hooks = Recorder {
        counts: Arc::clone(&counts),
        stopping,
    };
    let running = Running::spawn(move |listener, shutdown| {
        serve(
            listener,
            move |request, lane| handle(request, lane, watching.clone()),
            hooks,
            options,
            shutdown,
        )
    })
    .await;
    (running, counts)
}

/// Polls `check` every 10 ms for up to 5 s.
pub async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
