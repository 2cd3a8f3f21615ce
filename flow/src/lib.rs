//! mcp-guard's exchange flow: the per-request state machine (decide at
//! headers, body end or trailers; hold, stream or refuse answers) written
//! against a small [`Host`] trait.
//!
//! The proxy-wasm filter is a thin shim that forwards each callback here;
//! tests drive the same code natively with [`memory::MemoryHost`], through
//! every callback order and chunking; the CLI explains decisions with it.
//! The plugin configuration and the acceptance check of fetched bundles
//! live here too, so the proxy-wasm filter and the native Envoy module
//! share one copy.

pub mod accept;
pub mod active;
pub mod checkpoints;
pub mod config;
pub mod content;
pub mod control;
pub mod edges;
pub mod envoy_proto;
pub mod exchange;
pub mod fallback;
pub mod host;
pub mod identity;
pub mod limits;
pub mod line_policy;
pub mod mcp_headers;
pub mod memory;
pub mod metric_names;
pub mod peer;
pub mod pins;
pub mod proxy_replies;
pub mod record;
pub mod reply;
pub mod resource;
pub mod routing;
pub mod timing;
pub mod token_exchange;

pub use active::ActivePolicy;
pub use exchange::{Exchange, Next};
pub use host::{Host, Level, Side};
pub use record::AuditRecord;
