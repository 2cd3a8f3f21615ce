//! The mcp-guard control service: holds policy bundles and serves them to
//! the filters that enforce them.
//!
//! Every bundle is validated with the engine the filter itself uses
//! ([`mcp_guard_engine::Bundle::parse`]) before it is taken in, so a filter
//! is never offered a bundle it would refuse. Bundles are served byte for
//! byte as given, tagged with a content hash so that filters poll with
//! `If-None-Match` and get `304 Not Modified` while nothing changed.
//!
//! API:
//! - `GET /v1/bundles/{name}`: the bundle, `content-type: application/json`,
//!   `ETag` ([`ETag`]) and [`BUNDLE_VERSION_HEADER`]; `304` when
//!   `If-None-Match` names the current tag; `404 {"error":"not_found"}` for
//!   an unknown name; `400 {"error":"bad_name",...}` for a name outside
//!   `[A-Za-z0-9._-]{1,64}` ([`BundleName`]).
//! - `GET /healthz`, `GET /readyz`: `200`.
//!
//! Modules: [`name`] (what a bundle name may be), [`etag`] (tags and
//! conditional requests), [`store`] (loading and holding bundles); the
//! HTTP routes and the accept loop are private.

pub mod etag;
mod http;
pub mod name;
mod server;
pub mod store;

use std::future::Future;
use std::sync::Arc;

pub use etag::ETag;
pub use http::{BUNDLES_PATH, BUNDLE_VERSION_HEADER};
pub use name::{BundleName, NameError, MAX_NAME_LEN};
pub use store::{BundleStore, DirLoad, LoadError, RejectReason, StoreError, StoredBundle};

/// Serves `store` over HTTP/1.1 on `listener` until `shutdown` completes,
/// then waits (up to ten seconds) for requests in flight to finish.
///
/// The caller binds the listener, so tests can bind `127.0.0.1:0` and learn
/// the port first. Errors in single connections are not returned; an `Err`
/// means the listener itself is unusable.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<BundleStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::run(listener, store, shutdown).await
}
