//! The one accept loop and the one shutdown trigger of mcp-guard's
//! HTTP/1.1 services: the control service and the demo upstream serve
//! through [`serve`] and stop on [`signals::shutdown`].
//!
//! What the loop does, for every service alike:
//! - a client has [`Options::header_read_timeout`] to send its request
//!   headers (a slow-loris client is closed, not waited for);
//! - an accept error that is not one connection's (out of descriptors)
//!   pauses the loop for [`Options::accept_backoff`] instead of spinning,
//!   and is reported at most once per [`Options::log_period`];
//! - with [`Options::max_connections`], a connection past the cap goes to
//!   the overflow lane ([`Lane::Overflow`]): one request with short
//!   timeouts, then close; a bounded number at once, the rest closed
//!   unanswered (see [`Overflow`]);
//! - when the shutdown future completes: the listener is closed,
//!   [`Hooks::shutting_down`] runs (a service wakes its waiting requests
//!   there), and the connections in flight get [`Options::drain_timeout`]
//!   to finish.
//!
//! What differs between services (metrics, log lines, which requests the
//! overflow lane refuses and how) stays in the service: the handler is told
//! the [`Lane`] of each request, and [`Hooks`] is told what happened.

mod accept;
mod handler;
mod hooks;
mod options;
mod overflow;
pub mod signals;
mod throttle;

pub use accept::serve;
pub use handler::{BoxError, Handler};
pub use hooks::{Hooks, Lane};
pub use options::{Options, Overflow};
