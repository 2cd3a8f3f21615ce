//! The loop's timeouts and limits; the defaults are the control service's.

use std::time::Duration;

/// How [`crate::serve`] treats connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// How long shutdown waits for requests in flight before giving up on
    /// them ([`crate::Hooks::drain_gave_up`]).
    pub drain_timeout: Duration,
    /// Pause after an accept error that is not the client's doing (e.g. out
    /// of file descriptors), so the loop does not spin.
    pub accept_backoff: Duration,
    /// At most one [`crate::Hooks::accept_failed`] and one
    /// [`crate::Hooks::limit_reached`] per this period: out of descriptors,
    /// both repeat on every accept, and a log line each would be a flood.
    pub log_period: Duration,
    /// Connections served at once; past it a connection goes to the
    /// overflow lane. `None`: no cap but the process's open-file limit.
    pub max_connections: Option<usize>,
    /// The overflow lane's bounds.
    pub overflow: Overflow,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(10),
            accept_backoff: Duration::from_millis(100),
            log_period: Duration::from_secs(10),
            max_connections: None,
            overflow: Overflow::default(),
        }
    }
}

/// The overflow lane: where connections past [`Options::max_connections`]
/// get one request each, so a push, a scrape or a probe is still answered
/// when long-lived requests hold every slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overflow {
    /// Overflow connections served at once; more (a flood, or slow
    /// clients) are closed unanswered, so the lane never costs more than a
    /// few descriptors.
    pub in_flight: usize,
    /// Overflow connections one client address (an IPv4 address, an IPv6
    /// /64) may hold at once; more from it are closed unanswered. Without
    /// it one client that opens `in_flight` silent connections every
    /// [`Overflow::header_read_timeout`] keeps everyone else out of the
    /// lane (a slow-loris on the lane itself).
    pub per_peer: usize,
    /// How long a client in the lane may take to send its headers.
    pub header_read_timeout: Duration,
    /// How long one overflow connection may last in all.
    pub deadline: Duration,
}

impl Default for Overflow {
    fn default() -> Self {
        Self {
            in_flight: 64,
            per_peer: 8,
            header_read_timeout: Duration::from_secs(2),
            deadline: Duration::from_secs(10),
        }
    }
}
