//! The demo upstream on the shared accept loop ([`mcp_guard_serve`]): the
//! control service's timeouts and drain, no connection cap, and problems
//! said on stderr.

use std::future::Future;
use std::io;
use std::sync::Arc;

use mcp_guard_serve::Hooks;
use tokio::net::TcpListener;

use crate::router;

/// Serves connections from `listener` until `shutdown` completes.
pub(crate) async fn run(
    listener: TcpListener,
    instance: router::Instance,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let instance = Arc::new(instance);
    let handler = move |request, _lane| {
        let instance = Arc::clone(&instance);
        async move { router::handle(&instance, request).await }
    };
    let options = mcp_guard_serve::Options::default();
    mcp_guard_serve::serve(listener, handler, Stderr, options, shutdown).await
}

/// Says what went wrong on stderr, prefixed with the program's name.
struct Stderr;

impl Hooks for Stderr {
    type Connection = ();

    fn connection_opened(&self) {}

    fn accept_failed(&self, error: &io::Error, not_reported: u64) {
        eprintln!(
            "mcp-guard-demo-upstream: accept failed: {error} ({not_reported} more not reported)"
        );
    }

    fn drain_gave_up(&self) {
        eprintln!("mcp-guard-demo-upstream: gave up waiting for open connections");
    }
}
