//! mcp-guard: a proxy-wasm HTTP filter that authorises AI traffic (LLM and
//! MCP requests) by the caller's verified JWT claims against a pushed policy
//! bundle, and scrubs PII from responses.
//!
//! This crate is thin glue: the per-exchange flow lives in
//! `mcp-guard-flow`, decisions and scrubbing in `mcp-guard-engine`.

pub mod calls;
pub mod chain;
pub mod host;
pub mod metrics;
pub mod root;
pub mod stream;
pub mod sync;

/// Shared with the native module: see `mcp_guard_flow`.
pub use mcp_guard_flow::{accept, config};

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|id| {
        stream::set_root_id(id);
        Box::new(root::GuardRoot::new())
    });
}}
