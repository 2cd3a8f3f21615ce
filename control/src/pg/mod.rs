//! The shared store on PostgreSQL (`--store postgres://…`): several
//! instances ("replicas") serve the same bundles from one database.
//!
//! The in-memory [`BundleStore`] stays the read path; this module is
//! attached to it as its [`SharedLog`], so every commit (push, rollback,
//! key rotation, seed) is one database transaction that locks the
//! bundle's row in `mcp_guard_bundles`, checks `If-Match` against the
//! database's latest version (not this replica's cache), inserts version
//! latest + 1 with its signed bytes and signature, and `NOTIFY`s
//! [`CHANNEL`]. The push is answered only after `COMMIT`.
//!
//! Every replica `LISTEN`s; a notification only says which bundle to
//! re-read: the rows are read from the table and checked
//! ([`BundleStore::restore`]: size, digest, the engine's validation,
//! signature against this replica's keys) before they are served. After
//! any reconnect everything newer than the cache is read again, since
//! notifications sent while disconnected are lost; a periodic re-read
//! ([`RESYNC_EVERY`]) covers a missed one too. The cache only grows, so a
//! replica never serves a version older than one it served.
//!
//! The sync table (`GET /v1/status`) is shared through the database as
//! well ([`fleet`]), so any replica shows every proxy whichever replica it
//! polls.
//!
//! While the database is unreachable, reads and long-polls are served from
//! the cache, commits fail with [`CommitError::Unavailable`] (HTTP 503),
//! and the connection is retried with bounded backoff.

pub mod fleet;
mod schema;
mod target;
pub mod tls;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use mcp_guard_engine::bundle::MAX_BUNDLE_BYTES;
use mcp_guard_engine::signing::{self, Signed};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, Transaction};

pub use schema::{SchemaError, CHANNEL, SCHEMA_VERSION};
pub use target::{Target, TargetError, PASSWORD_ENV};

use crate::name::BundleName;
use crate::store::{
    Absorbed, BundleStore, Commit, CommitError, SharedLog, Source, StoredBundle, StoredRow,
};

/// How often every bundle is re-read even without a notification.
pub const RESYNC_EVERY: Duration = Duration::from_secs(30);

/// Longest a commit may take before it is abandoned (and answered 503).
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a commit or a re-read waits for a row or table lock someone
/// else holds (an operator's open session, a long migration) before it
/// gives up with an error, keeping the connection: the connection is
/// shared, so a wait here holds up notifications and the other writes.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(3);

/// First and longest pause between reconnection attempts.
pub const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Notifications queued before the listener falls back to re-reading all.
const QUEUE: usize = 256;

/// Rows read per query while catching up (at most 32 × 8 MiB in memory).
const PAGE: i64 = 32;

/// Why the shared store could not be opened at start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No connection within the start-up wait.
    #[error("cannot reach {target}: {reason}")]
    Unreachable {
        /// The redacted URL.
        target: String,
        /// The last error.
        reason: String,
    },
    /// TLS failed (unknown CA, host name mismatch, no TLS on the
    /// server): a configuration error, not retried.
    #[error("{target}: {reason}")]
    Tls {
        /// The redacted URL.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The tables cannot be used.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// The database holds versions but not one verifies with this
    /// replica's keys: it was started with another signing key than the
    /// replicas that wrote them. Serving on would answer 404 for every
    /// bundle and store pushes no other replica serves.
    #[error(
        "none of the {refused} versions in {target} verifies with this replica's signing keys (key ids {keys}): start it with the --signing-key (or --next-signing-key) the other replicas use"
    )]
    Untrusted {
        /// The redacted URL.
        target: String,
        /// Versions refused.
        refused: usize,
        /// This replica's key ids.
        keys: String,
    },
}

/// Counts of one catch-up read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// Versions newly taken into the cache.
    pub added: usize,
    /// Rows refused (logged, never served).
    pub refused: usize,
}

impl std::ops::AddAssign for Synced {
    fn add_assign(&mut self, other: Self) {
        self.added += other.added;
        self.refused += other.refused;
    }
}

/// The connection to the shared database, attached to a [`BundleStore`].
#[derive(Debug)]
pub struct PgStore {
    target: Target,
    handle: Handle,
    client: tokio::sync::Mutex<Option<Client>>,
    /// Why writes are refused now; `None` while connected.
    down: Mutex<Option<String>>,
    /// Per bundle, the highest version already looked at (taken or
    /// refused), so a refused row is logged once, not on every re-read.
    checked: Mutex<HashMap<BundleName, u64>>,
    /// Invalid bundle names found in the table, each logged once (a
    /// notification storm would otherwise log them on every re-read).
    invalid: Mutex<BTreeSet<String>>,
}

/// Most invalid names remembered; past it they are no longer logged.
const MAX_INVALID_LOGGED: usize = 64;

/// One connection's notification feed.
struct Session {
    notifications: mpsc::Receiver<String>,
    overflow: Arc<AtomicBool>,
    driver: tokio::task::JoinHandle<String>,
}

/// Failure inside a commit transaction.
enum TxError {
    Db(tokio_postgres::Error),
    Commit(CommitError),
}

impl From<tokio_postgres::Error> for TxError {
    fn from(e: tokio_postgres::Error) -> Self {
        TxError::Db(e)
    }
}

impl PgStore {
    /// Connects (retrying for up to `startup_wait`), creates the tables,
    /// loads every version into `store`, attaches itself as `store`'s
    /// [`SharedLog`] and starts listening. Call within a Tokio runtime.
    pub async fn open(
        target: Target,
        store: &Arc<BundleStore>,
        startup_wait: Duration,
    ) -> Result<Arc<Self>, OpenError> {
        let pg = Arc::new(Self {
            target,
            handle: Handle::current(),
            client: tokio::sync::Mutex::new(None),
            down: Mutex::new(Some("connecting".into())),
            checked: Mutex::new(HashMap::new()),
            invalid: Mutex::new(BTreeSet::new()),
        });
        let deadline = tokio::time::Instant::now() + startup_wait;
        let mut pause = BACKOFF.0;
        let (client, session, synced) = loop {
            match pg.connect(store).await {
                Ok(ok) => break ok,
                Err(ConnectError::Schema(e)) => return Err(e.into()),
                Err(ConnectError::Tls(reason)) => {
                    return Err(OpenError::Tls {
                        target: pg.target.to_string(),
                        reason,
                    })
                }
                Err(ConnectError::Db(e)) => {
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(OpenError::Unreachable {
                            target: pg.target.to_string(),
                            reason: e,
                        });
                    }
                    tracing::warn!(store = %pg.target, error = %e, "shared store unreachable at start, retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(BACKOFF.1);
                }
            }
        };
        if synced.added == 0 && synced.refused > 0 {
            let keys: Vec<String> = store
                .signing_keys()
                .public()
                .into_iter()
                .map(|(key, _)| signing::key_id(&key))
                .collect();
            return Err(OpenError::Untrusted {
                target: pg.target.to_string(),
                refused: synced.refused,
                keys: keys.join(", "),
            });
        }
        let mut client = client;
        let countersigned = pg.countersign(&mut client, store).await;
        match countersigned {
            Ok(0) => {}
            Ok(count) => {
                tracing::info!(store = %pg.target, versions = count, "countersigned stored versions with the next signing key")
            }
            Err(e) => {
                tracing::warn!(store = %pg.target, error = %describe(&e), "cannot countersign stored versions with the next signing key")
            }
        }
        *pg.client.lock().await = Some(client);
        pg.set_down(None);
        tracing::info!(store = %pg.target, loaded = synced.added, refused = synced.refused, "shared store connected");
        store.attach(Arc::clone(&pg) as Arc<dyn SharedLog>);
        tokio::spawn(supervise(Arc::clone(&pg), Arc::downgrade(store), session));
        Ok(pg)
    }

    /// During a key rotation (a next key is configured): adds the next
    /// key's signature to every stored version that lacks it, so versions
    /// stored before the rotation still verify once the next key is
    /// promoted and the old one dropped (replicas verify rows with their
    /// own keys only). Only rows this replica verified (it holds the
    /// current key) are countersigned, each with a compare-and-set on the
    /// old signature. The cache keeps the old header until the next
    /// restart; filters trusting either key accept both.
    async fn countersign(
        &self,
        client: &mut Client,
        store: &BundleStore,
    ) -> Result<usize, tokio_postgres::Error> {
        let keys = store.signing_keys();
        let Some(next) = keys.next().map(|k| k.verifying_key()) else {
            return Ok(0);
        };
        let mut count = 0;
        for latest in store.list() {
            let Ok(name) = BundleName::parse(latest.name()) else {
                continue;
            };
            for version in store.history(&name).unwrap_or_default() {
                let signed = Signed {
                    name: name.as_str(),
                    version: version.version(),
                    bytes: version.bytes(),
                };
                if signing::verify(&signed, version.signature(), &[next]).is_ok() {
                    continue;
                }
                let header = keys.sign(&signed);
                count += client
                    .execute(
                        "UPDATE mcp_guard_versions SET signature = $4
                         WHERE name = $1 AND version = $2 AND signature = $3",
                        &[
                            &name.as_str(),
                            &i64::try_from(version.version()).unwrap_or(i64::MAX),
                            &version.signature(),
                            &header,
                        ],
                    )
                    .await?;
            }
        }
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// The redacted database URL, for logs.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Stores `bytes` as version 1 of `name` unless the database already
    /// has a version of it (replicas seeding the same directory at once
    /// import it once). `Ok(true)` when this call stored it.
    pub async fn seed(
        &self,
        store: &BundleStore,
        name: &BundleName,
        bytes: &[u8],
    ) -> Result<bool, CommitError> {
        let commit = Commit {
            name,
            content: bytes,
            source: Source::Seed,
            by: "seed",
            signed_by: None,
            if_match: None,
        };
        Ok(self.commit_async(store, &commit, true).await?.is_some())
    }

    /// One connection: tables, `LISTEN`, then everything newer than the
    /// cache, in that order so no version committed meanwhile is missed.
    async fn connect(
        &self,
        store: &BundleStore,
    ) -> Result<(Client, Session, Synced), ConnectError> {
        let db = |e: tokio_postgres::Error| ConnectError::Db(describe(&e));
        let limit = self.target.handshake_timeout();
        let connecting = self.target.config().connect(self.target.tls().connector());
        let (mut client, mut connection) = tokio::time::timeout(limit, connecting)
            .await
            .map_err(|_| {
                ConnectError::Db(format!(
                    "no answer to the connection set-up within {} ms",
                    limit.as_millis()
                ))
            })?
            .map_err(|e| match self.target.tls().refusal(&e) {
                Some(reason) => ConnectError::Tls(reason),
                None => db(e),
            })?;
        let (sender, notifications) = mpsc::channel(QUEUE);
        let overflow = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&overflow);
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) if n.channel() == CHANNEL => {
                        if sender.try_send(n.payload().to_owned()).is_err() {
                            flag.store(true, Ordering::Relaxed);
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return describe(&e),
                    None => return "connection closed".to_owned(),
                }
            }
        });
        match schema::ensure(&mut client).await {
            Ok(()) => {}
            Err(SchemaError::Db(e)) => return Err(db(e)),
            Err(e) => return Err(ConnectError::Schema(e)),
        }
        client
            .batch_execute(&format!("LISTEN {CHANNEL}"))
            .await
            .map_err(db)?;
        let synced = self.sync(&mut client, store, None).await.map_err(db)?;
        Ok((
            client,
            Session {
                notifications,
                overflow,
                driver,
            },
            synced,
        ))
    }

    /// Reads every version newer than what was looked at, of `only` or of
    /// every bundle in the table.
    async fn sync(
        &self,
        client: &mut Client,
        store: &BundleStore,
        only: Option<&BTreeSet<BundleName>>,
    ) -> Result<Synced, tokio_postgres::Error> {
        let tx = client.transaction().await?;
        set_lock_timeout(&tx).await?;
        let names: Vec<BundleName> = match only {
            Some(names) => names.iter().cloned().collect(),
            None => {
                let rows = tx
                    .query("SELECT name, latest FROM mcp_guard_bundles", &[])
                    .await?;
                rows.iter()
                    .filter_map(|row| {
                        let text: String = row.get(0);
                        let latest: i64 = row.get(1);
                        let name = match BundleName::parse(&text) {
                            Ok(name) => name,
                            Err(e) => {
                                if self.first_sight_of_invalid(&text) {
                                    tracing::error!(reason = %e, "shared store holds a bundle with an invalid name; ignored");
                                }
                                return None;
                            }
                        };
                        (u64::try_from(latest).unwrap_or(0) > self.checked(&name)).then_some(name)
                    })
                    .collect()
            }
        };
        let mut synced = Synced::default();
        for name in &names {
            synced += self.sync_bundle(&tx, store, name).await?;
        }
        tx.commit().await?;
        Ok(synced)
    }

    /// Reads the versions of `name` newer than the ones looked at, checks
    /// each ([`BundleStore::restore`]) and takes the good ones into the
    /// cache. Oversized rows are not even transferred.
    async fn sync_bundle(
        &self,
        tx: &Transaction<'_>,
        store: &BundleStore,
        name: &BundleName,
    ) -> Result<Synced, tokio_postgres::Error> {
        let mut synced = Synced::default();
        let limit = i32::try_from(MAX_BUNDLE_BYTES).unwrap_or(i32::MAX);
        loop {
            let after = i64::try_from(self.checked(name)).unwrap_or(i64::MAX);
            let rows = tx
                .query(
                    "SELECT version, octet_length(bytes),
                            CASE WHEN octet_length(bytes) <= $3 THEN bytes END,
                            signature, digest, stored_at, source, by_actor, signed_by
                     FROM mcp_guard_versions
                     WHERE name = $1 AND version > $2
                     ORDER BY version LIMIT $4",
                    &[&name.as_str(), &after, &limit, &PAGE],
                )
                .await?;
            let count = rows.len();
            for row in rows {
                let version: i64 = row.get(0);
                let size: i32 = row.get(1);
                let version = u64::try_from(version).unwrap_or(0);
                let checked = match row.get::<_, Option<Vec<u8>>>(2) {
                    None => Err(format!("is {size} bytes, the limit is {MAX_BUNDLE_BYTES}")),
                    Some(bytes) => {
                        let stored_at: i64 = row.get(5);
                        store
                            .restore(
                                name,
                                StoredRow {
                                    version,
                                    bytes,
                                    signature: row.get(3),
                                    digest: row.get(4),
                                    stored_at: u64::try_from(stored_at).unwrap_or(0),
                                    source: row.get(6),
                                    by: row.get(7),
                                    signed_by: row.get(8),
                                },
                            )
                            .map_err(|e| e.to_string())
                    }
                };
                match checked.map(|b| store.absorb(Arc::new(b))) {
                    Ok(Absorbed::Added) => synced.added += 1,
                    Ok(Absorbed::Known) => {}
                    Ok(Absorbed::Diverged) => {
                        synced.refused += 1;
                        tracing::error!(bundle = %name.as_str(), version, "shared store holds a different version under a number this replica already served (database rewound or tampered with); keeping the served one");
                    }
                    Err(reason) => {
                        synced.refused += 1;
                        tracing::error!(bundle = %name.as_str(), version, reason = %reason, "refused a version from the shared store; it is not served");
                    }
                }
                self.mark_checked(name, version);
            }
            if count < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                return Ok(synced);
            }
        }
    }

    /// A commit in one transaction; `create_only` leaves an existing
    /// bundle alone (`Ok(None)`).
    async fn commit_async(
        &self,
        store: &BundleStore,
        commit: &Commit<'_>,
        create_only: bool,
    ) -> Result<Option<Arc<StoredBundle>>, CommitError> {
        let Ok(mut guard) = tokio::time::timeout(COMMIT_TIMEOUT, self.client.lock()).await else {
            return Err(CommitError::Unavailable(format!(
                "the database connection stayed busy for {} s",
                COMMIT_TIMEOUT.as_secs()
            )));
        };
        let Some(client) = guard.as_mut() else {
            return Err(CommitError::Unavailable(self.down_reason()));
        };
        let outcome = tokio::time::timeout(
            COMMIT_TIMEOUT,
            self.transact(client, store, commit, create_only),
        )
        .await;
        let stored = match outcome {
            Ok(Ok(stored)) => stored,
            Ok(Err(TxError::Commit(e))) => return Err(e),
            Ok(Err(TxError::Db(e))) => {
                let reason = format!("database error: {}", describe(&e));
                if client.is_closed() {
                    *guard = None;
                    self.set_down(Some(reason.clone()));
                }
                return Err(CommitError::Unavailable(reason));
            }
            Err(_) => {
                // The transaction's fate is unknown to this replica; the
                // connection is dropped so the listener reconnects and
                // re-reads whatever did commit.
                *guard = None;
                let reason = format!(
                    "no answer from the database within {} s",
                    COMMIT_TIMEOUT.as_secs()
                );
                self.set_down(Some(reason.clone()));
                return Err(CommitError::Unavailable(reason));
            }
        };
        let Some(stored) = stored else {
            return Ok(None);
        };
        let stored = Arc::new(stored);
        // Committed: it is durable whatever happens next. Into the cache
        // it goes (the listener would bring it too, a moment later).
        store.absorb(Arc::clone(&stored));
        self.mark_checked(commit.name, stored.version());
        Ok(Some(stored))
    }

    async fn transact(
        &self,
        client: &mut Client,
        store: &BundleStore,
        commit: &Commit<'_>,
        create_only: bool,
    ) -> Result<Option<StoredBundle>, TxError> {
        let name = commit.name;
        let tx = client.transaction().await?;
        set_lock_timeout(&tx).await?;
        tx.execute(
            "INSERT INTO mcp_guard_bundles (name, latest) VALUES ($1, 0) ON CONFLICT (name) DO NOTHING",
            &[&name.as_str()],
        )
        .await?;
        // The row lock serialises commits of this bundle across replicas.
        let latest: i64 = tx
            .query_one(
                "SELECT latest FROM mcp_guard_bundles WHERE name = $1 FOR UPDATE",
                &[&name.as_str()],
            )
            .await?
            .get(0);
        let latest = u64::try_from(latest).unwrap_or(0);
        if create_only && latest > 0 {
            return Ok(None);
        }
        // The cache catches up to the database under the lock, so the
        // precondition is judged against the database's latest.
        self.sync_bundle(&tx, store, name).await?;
        let served = store.get(name).map_or(0, |b| b.version());
        if served > latest {
            return Err(TxError::Commit(CommitError::Unavailable(format!(
                "the database's latest version of {} is {latest}, but this replica already served version {served}: the database was rewound (restored from an older backup?); writes are refused until an operator reconciles it",
                name.as_str()
            ))));
        }
        if let Some(condition) = commit.if_match {
            let current = store.get_version(name, latest);
            if !current.is_some_and(|b| b.etag().matches_if_match(condition)) {
                return Err(TxError::Commit(CommitError::PreconditionFailed));
            }
        }
        let version = latest + 1;
        let stored = store.prepare(commit, version).map_err(TxError::Commit)?;
        let as_i64 = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO mcp_guard_versions
                 (name, version, bytes, signature, digest, stored_at, source, by_actor, signed_by)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &name.as_str(),
                &as_i64(version),
                &stored.bytes().as_ref(),
                &stored.signature(),
                &stored.digest(),
                &as_i64(stored.stored_at()),
                &stored.source().as_str(),
                &stored.by(),
                &stored.signed_by(),
            ],
        )
        .await?;
        tx.execute(
            "UPDATE mcp_guard_bundles SET latest = $2 WHERE name = $1",
            &[&name.as_str(), &as_i64(version)],
        )
        .await?;
        // Delivered to every listener when (and only if) this commits.
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &format!("{}:{version}", name.as_str())],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    fn checked(&self, name: &BundleName) -> u64 {
        self.checked
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
            .unwrap_or(0)
    }

    fn mark_checked(&self, name: &BundleName, version: u64) {
        let mut checked = self.checked.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = checked.entry(name.clone()).or_insert(0);
        *seen = (*seen).max(version);
    }

    /// Whether `name` (invalid) should be logged: the first time it is
    /// seen, while fewer than [`MAX_INVALID_LOGGED`] were.
    fn first_sight_of_invalid(&self, name: &str) -> bool {
        let mut invalid = self.invalid.lock().unwrap_or_else(PoisonError::into_inner);
        invalid.len() < MAX_INVALID_LOGGED && invalid.insert(name.to_owned())
    }

    fn set_down(&self, reason: Option<String>) {
        *self.down.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }

    fn down_reason(&self) -> String {
        self.down
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| "not connected".into())
    }
}

impl SharedLog for PgStore {
    fn commit(
        &self,
        store: &BundleStore,
        commit: Commit<'_>,
    ) -> Result<Arc<StoredBundle>, CommitError> {
        // Called on a blocking thread (as every commit is); the database
        // connection is driven by the runtime's workers meanwhile.
        self.handle
            .block_on(self.commit_async(store, &commit, false))?
            .ok_or_else(|| CommitError::Unavailable("the version was not stored".into()))
    }

    fn writable(&self) -> Result<(), String> {
        match &*self.down.lock().unwrap_or_else(PoisonError::into_inner) {
            None => Ok(()),
            Some(reason) => Err(format!("{}: {reason}", self.target)),
        }
    }
}

/// Bounds lock waits in `tx` to [`LOCK_TIMEOUT`].
async fn set_lock_timeout(tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}",
        LOCK_TIMEOUT.as_millis()
    ))
    .await
}

/// An error with its causes (`tokio_postgres::Error` shows only its kind,
/// "db error", at the top): e.g. the server's message or the refused
/// connection. None of them holds the password.
fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Why one connection attempt failed.
enum ConnectError {
    Db(String),
    /// Refused by TLS (fatal at start, retried once running).
    Tls(String),
    Schema(SchemaError),
}

/// What a notification asks to re-read.
#[derive(Debug, PartialEq, Eq)]
enum Wanted {
    Some(BTreeSet<BundleName>),
    All,
}

/// Most bundles named in one batch before everything is re-read instead.
const MAX_NAMED: usize = 64;

/// The bundles named by a batch of payloads (`name:version`). The payload
/// is a hint only: anything that does not parse means "re-read all", and
/// the version in it is ignored (the table says what exists).
fn wanted<'a>(payloads: impl IntoIterator<Item = &'a str>) -> Wanted {
    let mut names = BTreeSet::new();
    for payload in payloads {
        let name = payload.rsplit_once(':').map_or(payload, |(name, _)| name);
        match BundleName::parse(name) {
            Ok(name) if names.len() < MAX_NAMED => {
                names.insert(name);
            }
            _ => return Wanted::All,
        }
    }
    Wanted::Some(names)
}

/// Keeps the replica in step with the database for as long as the store
/// lives: applies notifications, re-reads periodically, reconnects.
async fn supervise(pg: Arc<PgStore>, store: Weak<BundleStore>, mut session: Session) {
    loop {
        let reason = listen(&pg, &store, &mut session).await;
        let Some(reason) = reason else {
            return;
        };
        *pg.client.lock().await = None;
        pg.set_down(Some(reason.clone()));
        tracing::warn!(store = %pg.target, error = %reason, "shared store connection lost; serving cached versions, refusing writes");
        let mut pause = BACKOFF.0;
        let mut attempt: u64 = 0;
        session = loop {
            tokio::time::sleep(pause).await;
            let Some(strong) = store.upgrade() else {
                return;
            };
            attempt += 1;
            match pg.connect(&strong).await {
                Ok((client, session, synced)) => {
                    *pg.client.lock().await = Some(client);
                    pg.set_down(None);
                    tracing::info!(store = %pg.target, attempts = attempt, loaded = synced.added, refused = synced.refused, "shared store reconnected; caught up");
                    break session;
                }
                Err(ConnectError::Db(e) | ConnectError::Tls(e)) => {
                    pg.set_down(Some(e.clone()));
                    if attempt.is_power_of_two() || attempt.is_multiple_of(64) {
                        tracing::warn!(store = %pg.target, attempt, error = %e, retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX), "shared store still unreachable");
                    }
                }
                Err(ConnectError::Schema(e)) => {
                    pg.set_down(Some(e.to_string()));
                    tracing::error!(store = %pg.target, error = %e, "shared store unusable");
                }
            }
            pause = (pause * 2).min(BACKOFF.1);
        };
    }
}

/// Serves one connection's notifications until it ends; the reason it
/// ended, or `None` once the store is gone.
async fn listen(pg: &PgStore, store: &Weak<BundleStore>, session: &mut Session) -> Option<String> {
    let mut resync = tokio::time::interval(RESYNC_EVERY);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await;
    loop {
        let want = tokio::select! {
            payload = session.notifications.recv() => match payload {
                Some(first) => {
                    let mut batch = vec![first];
                    while let Ok(more) = session.notifications.try_recv() {
                        batch.push(more);
                    }
                    if session.overflow.swap(false, Ordering::Relaxed) {
                        Wanted::All
                    } else {
                        wanted(batch.iter().map(String::as_str))
                    }
                }
                None => {
                    let reason = (&mut session.driver)
                        .await
                        .unwrap_or_else(|e| e.to_string());
                    return Some(reason);
                }
            },
            _ = resync.tick() => Wanted::All,
        };
        let store = store.upgrade()?;
        let mut guard = pg.client.lock().await;
        let Some(client) = guard.as_mut() else {
            // A commit or the sync-table exchange gave up on the
            // connection: a new one, rather than waiting for the old one
            // to end (it never does while the database stays silent).
            return Some(pg.down_reason());
        };
        let only = match &want {
            Wanted::All => None,
            Wanted::Some(names) => Some(names),
        };
        let synced = tokio::time::timeout(COMMIT_TIMEOUT, pg.sync(client, &store, only)).await;
        let Ok(synced) = synced else {
            // A database that stops answering (a partition without a
            // reset): give the connection up and reconnect.
            *guard = None;
            return Some(format!(
                "no answer from the database within {} s",
                COMMIT_TIMEOUT.as_secs()
            ));
        };
        if let Err(e) = synced {
            if client.is_closed() {
                return Some(describe(&e));
            }
            tracing::warn!(store = %pg.target, error = %describe(&e), "cannot read new versions from the shared store");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Wanted {
        Wanted::Some(
            list.iter()
                .map(|n| BundleName::parse(n).expect("valid"))
                .collect(),
        )
    }

    #[test]
    fn payloads_only_name_bundles_to_reread() {
        assert_eq!(
            wanted(["demo:4", "demo:5", "other:1"]),
            names(&["demo", "other"])
        );
        // The version is ignored; the name alone is fine too.
        assert_eq!(wanted(["demo"]), names(&["demo"]));
        // Anything odd: re-read everything rather than trust it.
        assert_eq!(wanted(["../etc:1"]), Wanted::All);
        assert_eq!(wanted([""]), Wanted::All);
        let many: Vec<String> = (0..=MAX_NAMED).map(|i| format!("b{i}:1")).collect();
        assert_eq!(wanted(many.iter().map(String::as_str)), Wanted::All);
    }
}
