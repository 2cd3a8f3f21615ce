//! Test bed for mcp-guard: starts the control service, the demo upstream
//! and a real Envoy running the filter, all on free loopback ports. Used by
//! the end-to-end tests and by `cargo xtask demo`.

pub mod control_process;
pub mod envoy;
pub mod h2;
pub mod http;
pub mod kustomize;
pub mod paths;
pub mod postgres;
pub mod prometheus;
pub mod ratelimit;
pub mod redis;
pub mod server_process;
pub mod stack;
pub mod tamper;
pub mod target;
pub mod tokens;

pub use stack::{RouteCluster, RouteUpstream, Stack, StackOptions, DEMO_BUNDLE, PUSH_TOKEN};
pub use target::Target;

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A file or binary the stack needs is missing.
    #[error("{0}")]
    Missing(String),
    /// Envoy exited during start-up.
    #[error("Envoy exited: {0}")]
    EnvoyExited(String),
    /// Something did not become ready in time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// A bundle given to the control service was rejected.
    #[error("bundle rejected: {0}")]
    Bundle(String),
    /// Filesystem or socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
