//! mcp-guard's global rate limit service.
//!
//! Every replica's filter asks this service (Envoy's rate limit service
//! protocol, `envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit`)
//! before it admits a request, so replicas of one model share one budget.
//! The limits live in the policy bundle: the filter sends each descriptor
//! with a `limit` override, and the service counts hits in fixed UTC
//! windows in Redis (one atomic Lua script per call). When Redis does not
//! answer in time the call fails with `UNAVAILABLE` and the filter applies
//! its fail-open or fail-closed policy.

pub mod client;
pub mod conn;
pub mod grpc;
pub mod http;
pub mod key;
pub mod limiter;
pub mod metrics;
pub mod plan;
pub mod proto;
pub mod server;
pub mod store;
pub mod window;

pub use limiter::{Limiter, Refusal};
pub use plan::{Bounds, Limit};
pub use server::{serve, Config, ServeError};
