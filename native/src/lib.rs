//! mcp-guard as a native Envoy dynamic module (`libmcp_guard_native.so`, loaded by
//! `envoy.filters.http.dynamic_modules`): the same engine, the same
//! exchange flow ([`mcp_guard_flow::Exchange`] over the [`mcp_guard_flow::Host`]
//! trait) and the same plugin configuration and bundle verification as the
//! proxy-wasm filter, without the wasm sandbox. See `docs/native.md`.
//!
//! * [`abi`]: the hand-written slice of Envoy's C ABI this module uses;
//! * [`filter`]: the exported hooks, each forwarding to the exchange;
//! * [`host`]: the exchange's `Host` over the ABI;
//! * [`config`]: one filter configuration and its active policy;
//! * [`sync`]: bundle sync with the control service;
//! * [`identity`]: the verified `jwt_authn` payload;
//! * [`metrics`]: counters and gauge;
//! * [`tool_memory`]: digests of pinned tools, process-wide.

pub mod abi;
pub mod config;
pub mod filter;
pub mod host;
pub mod identity;
pub mod metrics;
pub mod peer;
pub mod sync;
pub mod tool_memory;
pub mod trail;
