//! `mcp-guard-control`: opens (or creates) the store, seeds it, logs the
//! signing key, prints `listening on ADDR`, serves until SIGINT or SIGTERM.
//! Logs are JSON lines on stderr.

mod cli;

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use mcp_guard_control::author::TrustedSigners;
use mcp_guard_control::discovery::DiscoveryClient;
use mcp_guard_control::disk::Disk;
use mcp_guard_control::pg::{self, PgStore};
use mcp_guard_control::{
    checkpoints, fdlimit, keys, log, BundleStore, CheckpointBook, CheckpointLimits, LoadError,
    Options, Tokens,
};
use mcp_guard_engine::signing;
use mcp_guard_serve::signals;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> ExitCode {
    let settings = cli::parse();
    log::init(&settings.log);
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(settings: cli::Settings) -> Result<(), String> {
    let max_connections = open_file_limit(settings.max_connections);
    let disk = match &settings.data {
        Some(dir) => {
            Some(Disk::open(dir).map_err(|e| format!("data directory {}: {e}", dir.display()))?)
        }
        None => None,
    };
    if settings.postgres.is_some() && settings.signing_key.is_none() {
        return Err(
            "--store postgres:// needs --signing-key FILE: every replica signs with the same key \
             and refuses versions signed with another"
                .into(),
        );
    }
    let (current, origin) =
        keys::load(settings.signing_key.as_deref(), disk.as_ref()).map_err(|e| e.to_string())?;
    let next = match &settings.next_signing_key {
        Some(path) => Some(keys::read(path).map_err(|e| e.to_string())?),
        None => None,
    };
    let signer = keys::SigningKeys::with_next(current, next);
    for (public, role) in signer.public() {
        tracing::info!(key_id = %signing::key_id(&public), ed25519 = %signing::public_key_base64(&public), status = %role, origin = if role == "current" { origin.as_str() } else { "file" }, "signing key");
    }
    let (store, mut rejected) = match (&settings.data, &settings.postgres) {
        (Some(dir), _) => BundleStore::open_with(dir, signer).map_err(|e| e.to_string())?,
        (None, Some(_)) => (BundleStore::in_memory_with(signer), Vec::new()),
        (None, None) => {
            tracing::warn!("no --store: bundles are kept in memory only");
            (BundleStore::in_memory_with(signer), Vec::new())
        }
    };
    let store = Arc::new(store);
    let shared = match &settings.postgres {
        Some(url) => Some(open_shared(&url.0, &store).await?),
        None => None,
    };
    if let Some(seed) = &settings.bundles {
        match &shared {
            Some(pg) => rejected.extend(seed_shared(pg, &store, seed).await?),
            None => rejected.extend(store.seed_dir(seed).map_err(|e| e.to_string())?),
        }
    }
    report(&store, &rejected);
    let checkpoints = open_checkpoints(&settings, disk.as_ref())?;
    let tokens = match &settings.tokens {
        Some(path) => Tokens::load(path).map_err(|e| e.to_string())?,
        None => Tokens::none(),
    };
    if tokens.is_empty() {
        tracing::info!("no push tokens: the service is read-only");
    }
    // Registered before the address is printed, so a signal sent as soon as
    // a supervisor sees the line already shuts down gracefully.
    let shutdown =
        signals::shutdown().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let listener = TcpListener::bind(&settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("listener has no address: {e}"))?;
    println!("listening on {addr}");
    // Whoever reads the line waits for it; a failed flush means nobody is.
    let _ = std::io::stdout().flush();
    tracing::info!(addr = %addr, "listening");
    let discovery = DiscoveryClient::new(
        settings.discovery_ca_file.as_deref(),
        settings.allow_plain_http_discovery,
    )
    .map_err(|e| e.to_string())?;
    if settings.allow_plain_http_discovery {
        tracing::warn!(
            "--allow-plain-http-discovery: issuer keys may be fetched over plain http://"
        );
    }
    let trusted_signers = match &settings.trusted_signers {
        Some(path) => {
            let signers = TrustedSigners::load(path).map_err(|e| e.to_string())?;
            tracing::info!(
                signers = signers.len(),
                file = %path.display(),
                "pushes must carry an author signature"
            );
            Some(Arc::new(signers))
        }
        None => None,
    };
    let options = Options {
        discovery,
        trusted_signers,
        tokens,
        checkpoints: Some(checkpoints),
        jwks_refresh: settings.jwks_refresh,
        max_connections,
        shared,
        ..Options::default()
    };
    mcp_guard_control::serve_with(listener, store, options, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

/// Raises the soft open-file limit to the hard one and logs it with the
/// connection limit that follows: each waiting long-poll holds a
/// descriptor, so this bounds how many filters the replica can carry.
fn open_file_limit(asked: Option<usize>) -> Option<usize> {
    match fdlimit::raise() {
        Ok(limit) => {
            let max = limit.max_connections(asked);
            let message = if limit.before < limit.soft {
                "raised the open-file limit to the hard limit"
            } else {
                "open-file limit"
            };
            tracing::info!(
                from = limit.before,
                soft = limit.soft,
                hard = limit.hard,
                max_connections = max,
                "{}",
                message
            );
            if asked.is_some_and(|asked| asked > max) {
                tracing::warn!(
                    asked,
                    max_connections = max,
                    "--max-connections exceeds what the open-file limit allows; lowered"
                );
            }
            Some(max)
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-file limit");
            asked
        }
    }
}

/// Connects to the shared PostgreSQL store and loads every version from
/// it. The URL is logged without its password.
async fn open_shared(url: &str, store: &Arc<BundleStore>) -> Result<Arc<PgStore>, String> {
    let password = std::env::var(pg::PASSWORD_ENV).ok();
    let target = pg::Target::parse(url, password.as_deref()).map_err(|e| e.to_string())?;
    tracing::info!(store = %target, backend = "postgres", "shared store");
    if let Some(warning) = target.tls().warning() {
        tracing::warn!(store = %target, "{}", warning);
    }
    PgStore::open(target, store, SHARED_STARTUP_WAIT)
        .await
        .map_err(|e| e.to_string())
}

/// How long a replica retries an unreachable database at start before it
/// gives up (and its supervisor restarts it).
const SHARED_STARTUP_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Imports the seed directory into the shared store: each bundle the
/// database does not hold yet becomes its version 1 (once, however many
/// replicas start together).
async fn seed_shared(
    pg: &PgStore,
    store: &BundleStore,
    dir: &std::path::Path,
) -> Result<Vec<LoadError>, String> {
    let seeds = BundleStore::load_dir(dir).map_err(|e| e.to_string())?;
    for bundle in seeds.store.list() {
        let Ok(name) = mcp_guard_control::BundleName::parse(bundle.name()) else {
            continue;
        };
        match pg.seed(store, &name, bundle.bytes()).await {
            Ok(true) => tracing::info!(bundle = %bundle.name(), "seeded bundle"),
            Ok(false) => {}
            Err(e) => {
                return Err(format!("cannot seed {}: {e}", bundle.name()));
            }
        }
    }
    Ok(seeds.rejected)
}

/// The checkpoint book and its key (logged, like the signing key, so
/// auditors can pin it).
fn open_checkpoints(
    settings: &cli::Settings,
    disk: Option<&Disk>,
) -> Result<Arc<CheckpointBook>, String> {
    let (key, origin) = checkpoints::load_key(settings.checkpoint_key.as_deref(), disk)
        .map_err(|e| e.to_string())?;
    let public = key.verifying_key();
    tracing::info!(key_id = %signing::key_id(&public), ed25519 = %signing::public_key_base64(&public), origin = %origin.as_str(), "checkpoint key");
    let limits = CheckpointLimits::default();
    let book = match disk {
        Some(disk) => CheckpointBook::open(disk.root(), key, limits).map_err(|e| e.to_string())?,
        None => CheckpointBook::in_memory(key, limits),
    };
    Ok(Arc::new(book))
}

/// One log line per bundle held and per file skipped.
fn report(store: &BundleStore, rejected: &[LoadError]) {
    for bundle in store.list() {
        tracing::info!(bundle = %bundle.name(), version = bundle.version(), etag = %bundle.etag().as_str(), bytes = bundle.bytes().len(), "loaded bundle");
    }
    for error in rejected {
        tracing::warn!(file = %error.origin, reason = %error.reason, "skipped file");
    }
    if store.is_empty() {
        tracing::warn!("no bundle loaded");
    }
}
