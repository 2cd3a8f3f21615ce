//! A wasmtime host for proxy-wasm ABI 0.2.1 filters: runs the real
//! mcp-guard filter `.wasm` without Envoy.
//!
//! The host implements the hostcalls the Rust `proxy-wasm` SDK 0.2.5 uses
//! and mimics the Envoy behaviour the filter depends on (verified against
//! Envoy 1.40): header and body flow control, body buffering, local replies
//! that pass through the filter's own response callbacks, HTTP calls,
//! properties with Envoy's value encoding (including the `jwt_authn`
//! payload in dynamic metadata, as the protobuf `Metadata` message for the
//! property `metadata`), filter state, metrics, shared data, ticks
//! and a settable clock. A trap never crashes the host: it is an error, and
//! the VM is dead afterwards, as in Envoy.
//!
//! ```no_run
//! use mcp_guard_host_test::{Action, Host};
//!
//! let host = Host::from_env()?;
//! let config = br#"{"bundle": {"name": "demo", "version": 1, "rules": []}}"#;
//! let plugin = host.plugin(config)?;
//! let stream = plugin.stream()?;
//! stream.set_jwt_payload("jwt_payload", serde_json::json!({"sub": "alice"}));
//! let action = stream.request_headers(&[(":method", "POST"), (":path", "/mcp")], false)?;
//! if action == Action::Continue {
//!     stream.request_body(br#"{"jsonrpc":"2.0"}"#, true)?;
//! }
//! if let Some(reply) = stream.local_reply() {
//!     println!("denied with {}", reply.status);
//! }
//! stream.finish()?;
//! # Ok::<(), mcp_guard_host_test::HostError>(())
//! ```
//!
//! What is not simulated: gRPC calls and streams (Unimplemented), TCP
//! (network filter) callbacks, foreign functions (NotFound), and Envoy's `StopAllIteration*` header
//! statuses (treated as a plain pause).

#![warn(missing_docs)]

mod abi;
mod base64;
pub mod envoy_encoding;
pub use mcp_guard_flow::envoy_proto;
mod error;
mod exchange;
mod flow;
mod header_map;
mod host;
mod http_calls;
mod log;
mod metrics;
pub mod pairs;
mod plugin;
pub mod properties;
pub mod replay;
mod rng;
mod shared_data;
mod state;
mod stream;
mod vm;

pub use abi::status::Status;
pub use envoy_encoding::encode_envoy_value;
pub use error::HostError;
pub use exchange::{Exchange, ExchangeResult, RequestSpec, ResponseSpec};
pub use header_map::HeaderMap;
pub use host::{default_wasm_path, Host, PROFILE_ENV, WASM_ENV};
pub use http_calls::{HttpCall, HttpCallResponse};
pub use log::{LogEntry, LogLevel, LogSource};
pub use metrics::MetricType;
pub use plugin::{Plugin, PluginOptions, ROOT_CONTEXT_ID};
pub use shared_data::SharedDataHandle;
pub use state::LocalReply;
pub use stream::{Action, ClientResponse, Stream, UpstreamRequest};
