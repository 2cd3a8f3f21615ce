//! mcp-guard: a proxy-wasm HTTP filter that authorises AI traffic (LLM and
//! MCP requests) by the caller's verified JWT claims against a pushed policy
//! bundle, and scrubs PII from responses.
//!
//! This crate is thin glue: all decisions and scrubbing live in
//! `mcp-guard-engine`.

pub mod accept;
pub mod audit;
pub mod config;
pub mod host;
pub mod metrics;
pub mod reply;
pub mod root;
pub mod scrub;
pub mod stream;
pub mod sync;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(root::GuardRoot::new()));
}}
