//! Helpers for the tests of mcp-guard's services, one copy for every crate
//! (a dev-dependency only; nothing here ships).
//!
//! - [`http`]: an HTTP/1.1 client over a raw socket, so tests see the bytes
//!   on the wire (chunk boundaries included) and can send what no
//!   well-behaved client would.
//! - [`Running`]: a server task on a free loopback port and the means to
//!   stop it, for any `serve(listener, shutdown)` function.
//! - [`containerfile`]: static checks of a service's Containerfile (no
//!   container runtime needed).

pub mod containerfile;
pub mod http;
mod running;

pub use running::{Running, Shutdown};
