//! What a service learns from the loop (for its metrics and logs), and
//! which lane a request came in on.

use std::io;

/// The lane a request arrived in, passed to the handler with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Within [`crate::Options::max_connections`] (or no cap): a
    /// keep-alive connection, drained at shutdown.
    Regular,
    /// Past the cap: this connection's only request; the handler should
    /// refuse what would hold the connection for long (a long-poll) and
    /// serve the rest.
    Overflow,
}

/// Callbacks from the loop. Every method but [`Hooks::connection_opened`]
/// defaults to doing nothing; `()` is the service that wants none.
pub trait Hooks: Send + Sync + 'static {
    /// Held for as long as a regular-lane connection is open (a gauge's
    /// guard, say); dropped when the connection ends.
    type Connection: Send + 'static;

    /// A connection was accepted into the regular lane.
    fn connection_opened(&self) -> Self::Connection;

    /// Accepting failed for a reason not confined to one connection (out of
    /// descriptors, say); the loop pauses for
    /// [`crate::Options::accept_backoff`]. Called at most once per
    /// [`crate::Options::log_period`]; `not_reported` counts the failures
    /// since the last call.
    fn accept_failed(&self, error: &io::Error, not_reported: u64) {
        let _ = (error, not_reported);
    }

    /// A connection found every slot of
    /// [`crate::Options::max_connections`] taken and went to the overflow
    /// lane. Called at most once per [`crate::Options::log_period`].
    fn limit_reached(&self, max_connections: usize) {
        let _ = max_connections;
    }

    /// A connection past the cap found the overflow lane full too, or its
    /// address already held its share of the lane
    /// ([`crate::Overflow::per_peer`]), and was closed unanswered.
    fn overflow_full(&self) {}

    /// Shutdown began: the listener is closed and the connections in
    /// flight are about to be drained. Wake requests that wait for
    /// something here, or the drain waits for them.
    fn shutting_down(&self) {}

    /// Connections were still open after [`crate::Options::drain_timeout`];
    /// they are abandoned.
    fn drain_gave_up(&self) {}
}

/// No metrics, no logs.
impl Hooks for () {
    type Connection = ();

    fn connection_opened(&self) {}
}
