//! mcp-guard engine: the decision and scrubbing logic of the filter.
//!
//! Pure Rust with no proxy-wasm dependency, so the same code enforces policy
//! inside the wasm filter, validates bundles in the control service and is
//! benchmarked natively.

pub mod arguments;
pub mod audit;
pub mod author_signing;
pub mod bundle;
pub mod claims;
pub mod conditions;
pub mod decision;
pub mod envoy_metadata;
pub mod envoy_pairs;
pub mod fleet;
pub mod inject;
pub mod jwt;
pub mod mcp;
pub mod mcp_sse;
pub mod peer;
pub mod pii;
pub mod pins;
pub mod policy;
pub mod prompt_pii;
pub mod rate_limit;
pub mod report;
pub mod request;
pub mod request_line;
pub mod resource;
pub mod resource_template;
pub mod routes;
pub mod signing;
mod sse_frame;
pub mod strict_json;
pub mod template;
pub mod token_exchange;

pub use bundle::{Bundle, BundleError};
pub use claims::Claims;
pub use decision::{Decision, DryRunOutcome, Effect, Reason};
pub use mcp::{McpCall, TargetKind};
pub use policy::{BodyRefusal, Explanation, Policy};
pub use request::RequestAttrs;
