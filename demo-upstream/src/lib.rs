//! A stand-in for a model pod behind mcp-guard: an OpenAI-compatible chat
//! endpoint and an MCP server whose answers are full of (fictitious) PII.
//!
//! The demo and the end-to-end tests put it behind a real Envoy running the
//! filter, then check what the filter let through, what it scrubbed and
//! which identity headers reached the upstream. Everything it says is fixed
//! and exported (see [`content`]) so tests can state the expected output
//! exactly.
//!
//! Endpoints:
//! - `POST /v1/chat/completions`: always answers [`CHAT_REPLY`]; with
//!   `"stream": true` as server-sent events, one per body frame, with the
//!   e-mail address split across events ([`CHAT_STREAM_FRAGMENTS`]).
//! - `POST /mcp`: JSON-RPC 2.0 (single or batch) with `initialize`, `ping`,
//!   `tools/list`, `tools/call`, `resources/list` and `prompts/list`; a
//!   payload of notifications only gets `202 Accepted` and no body.
//! - `POST /mcp/rug-pull`: the same server, except that every
//!   `tools/list` after a session's first changes `get_weather`'s
//!   description ([`rug_pull`]), for the tool-pinning tests.
//! - `GET /healthz`: `200 ok`.
//!
//! Every response carries [`DEMO_UPSTREAM_HEADER`]`: 1` and
//! [`SEEN_HEADERS_HEADER`], the names of the `x-mcp-*` request headers that
//! arrived, and [`SEEN_AUTHORIZATION_HEADER`] (`1` when an `authorization`
//! header arrived).

mod body;
mod catalog;
mod chat;
pub mod content;
mod mcp;
mod respond;
mod router;
pub mod rug_pull;
mod server;

use std::future::Future;

pub use content::{
    CHAT_REPLY, CHAT_STREAM_FRAGMENTS, DELETE_CUSTOMER_TEXT, DEMO_CARD, DEMO_CUSTOMER_PHONE,
    DEMO_EMAIL, DEMO_IBAN, DEMO_PHONE, SEARCH_CUSTOMERS_TEXT, SERVER_NAME, WEATHER_TEXT,
};
pub use router::{
    Instance, DEMO_UPSTREAM_HEADER, IDENTITY_HEADER_PREFIX, SEEN_AUTHORIZATION_HEADER,
    SEEN_HEADERS_HEADER,
};

/// Serves HTTP/1.1 on `listener` until `shutdown` completes, then waits
/// (up to ten seconds) for requests in flight to finish.
///
/// The caller binds the listener, so tests can bind `127.0.0.1:0` and learn
/// the port before any request is sent. Errors in single connections are
/// not returned; an `Err` means the listener itself is unusable.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::run(listener, Instance::default(), shutdown).await
}

/// [`serve`] as a named instance (its name in [`DEMO_UPSTREAM_HEADER`]
/// of every answer), or one that fails every request: several upstreams
/// behind one Envoy tell which answered.
pub async fn serve_as(
    listener: tokio::net::TcpListener,
    instance: Instance,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::run(listener, instance, shutdown).await
}
