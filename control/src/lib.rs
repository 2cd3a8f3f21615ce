//! The mcp-guard control service: stores versioned, signed policy bundles
//! and serves them to the filters that enforce them.
//!
//! Every bundle is validated with the engine the filter itself uses
//! ([`mcp_guard_engine::Bundle::parse`]) before it is stored, so a filter
//! is never offered a bundle it would refuse; every stored version is
//! signed with Ed25519 ([`mcp_guard_engine::signing`]) so a filter can tell
//! it came from here. Versions are assigned by the service (previous + 1),
//! kept on disk with crash-safe writes ([`disk`]), listed and rolled back
//! over HTTP. Filters poll with `If-None-Match` and may long-poll
//! (`?wait=N`) to learn of a new version within milliseconds.
//!
//! The HTTP contract is in `control/README.md`. Modules: [`name`] (what a
//! bundle name may be), [`etag`] (tags, conditional requests), [`version`]
//! (service-owned version numbers), [`store`] (versions in memory),
//! [`disk`] (files and crash safety), [`pg`] (the store shared by
//! replicas on PostgreSQL), [`keys`] (the signing keys),
//! [`status`] (what filters report), [`checkpoints`] (countersigned
//! decision-trail checkpoints), [`auth`]
//! (push tokens), [`discovery`] (issuer keys by OIDC discovery),
//! [`metrics`], [`log`]; the HTTP routes and the accept loop are private.

pub mod auth;
pub mod author;
mod body;
mod checkpoint_http;
pub mod checkpoints;
pub mod discovery;
pub mod disk;
pub mod etag;
pub mod fdlimit;
pub mod fetch;
pub mod fleet;
pub mod fleet_view;
mod http;
pub mod keys;
pub mod log;
pub mod metrics;
pub mod name;
pub mod pg;
pub mod rate;
mod server;
pub mod status;
pub mod store;
pub mod timefmt;
pub mod version;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use auth::Tokens;
pub use checkpoint_http::{CHECKPOINTS_PATH, CHECKPOINT_KEY_PATH};
pub use checkpoints::{CheckpointBook, CheckpointLimits};
pub use etag::ETag;
pub use fleet::{Fleet, FleetLimits};
pub use http::{App, BUNDLES_PATH, BUNDLE_VERSION_HEADER, MAX_WAIT_SECS};
pub use keys::SigningKeys;
pub use name::{BundleName, NameError, MAX_NAME_LEN};
pub use status::{StatusBoard, StatusLimits};
pub use store::{
    Absorbed, BundleStore, Commit, CommitError, DirLoad, LoadError, RejectReason, SharedLog,
    Source, StoreError, StoredBundle, StoredRow,
};

/// How a service instance runs, beyond its bundles.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Tokens allowed to push and roll back; none means read-only.
    pub tokens: Tokens,
    /// How often issuer keys behind `discovery` URLs are re-fetched;
    /// `None` disables the refresh.
    pub jwks_refresh: Option<Duration>,
    /// Bounds on the unauthenticated filter status reports.
    pub status_limits: StatusLimits,
    /// Bounds of the sync table (`GET /v1/status`) and when a silent
    /// proxy counts as stale.
    pub fleet_limits: FleetLimits,
    /// The checkpoint book (countersigned decision-trail checkpoints);
    /// `None`: in memory, with a key for this run only.
    pub checkpoints: Option<Arc<CheckpointBook>>,
    /// Connections served at once (each waiting long-poll holds one);
    /// past it a new connection is answered `503` with `Retry-After`.
    /// `None`: no limit but the process's open-file limit.
    pub max_connections: Option<usize>,
    /// The shared PostgreSQL store the bundles live in, if any: the sync
    /// table is shared through it too.
    pub shared: Option<Arc<pg::PgStore>>,
    /// How issuer keys behind `discovery` URLs are fetched (default:
    /// HTTPS with Mozilla's roots, plain HTTP refused).
    pub discovery: discovery::DiscoveryClient,
    /// Author keys every push must be signed by (`--trusted-signers`);
    /// `None`: pushes are not checked for author signatures.
    pub trusted_signers: Option<Arc<author::TrustedSigners>>,
}

/// Serves `store` read-only over HTTP/1.1 on `listener` until `shutdown`
/// completes, then answers waiting long-polls and waits (up to ten
/// seconds) for requests in flight to finish.
///
/// The caller binds the listener, so tests can bind `127.0.0.1:0` and learn
/// the port first. Errors in single connections are not returned; an `Err`
/// means the listener itself is unusable.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Arc<BundleStore>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, store, Options::default(), shutdown).await
}

/// [`serve`] with write tokens and key refresh.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    store: Arc<BundleStore>,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut app = App {
        status: StatusBoard::new(options.status_limits),
        fleet: Fleet::new(options.fleet_limits),
        ..App::new(Arc::clone(&store), options.tokens)
    };
    app.discovery = options.discovery;
    app.trusted_signers = options.trusted_signers;
    if let Some(book) = options.checkpoints {
        app.checkpoints = book;
    }
    let app = Arc::new(app);
    let refresher = options.jwks_refresh.map(|every| {
        let metrics = Arc::clone(&app.metrics);
        let client = app.discovery.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every.max(Duration::from_millis(100)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate; the keys were fetched at push.
            ticks.tick().await;
            loop {
                ticks.tick().await;
                discovery::refresh_once(&store, &metrics, &client).await;
            }
        })
    });
    let fleet = options
        .shared
        .map(|pg| tokio::spawn(pg::fleet::share(pg, Arc::clone(&app))));
    let result = server::run(listener, app, options.max_connections, shutdown).await;
    if let Some(refresher) = refresher {
        refresher.abort();
    }
    if let Some(fleet) = fleet {
        fleet.abort();
    }
    result
}
