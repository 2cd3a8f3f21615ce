//! A proxy-wasm HTTP filter that does nothing.
//!
//! `cargo xtask bench-envoy` loads it (variant `W0`) to measure what a wasm
//! filter costs in Envoy before it does any work: the VM, the context per
//! request and one host call per HTTP callback. mcp-guard's own cost is
//! what it adds on top of this.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
}}

/// Creates one [`Noop`] per request.
struct NoopRoot;

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Noop))
    }
}

/// Every callback keeps its default: continue.
struct Noop;

impl Context for Noop {}

impl HttpContext for Noop {}
