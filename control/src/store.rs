//! The bundle store: every version of every bundle, each validated by the
//! engine the filter enforces with and signed, so a filter can never be
//! served a bundle it would reject or could not authenticate.
//!
//! Versions belong to the service: each stored version is the previous one
//! plus one, written into the bundle's `version` field
//! ([`crate::version::set_version`]). With a data directory
//! ([`BundleStore::open`]) every version is made durable before it becomes
//! visible; without one ([`BundleStore::new`], [`BundleStore::from_bundles`])
//! the store lives in memory only.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use bytes::Bytes;
use mcp_guard_engine::bundle::MAX_BUNDLE_BYTES;
use mcp_guard_engine::signing::{Signed, SigningKey, VerifyingKey};
use mcp_guard_engine::{Bundle, BundleError};
use sha2::{Digest as _, Sha256};
use tokio::sync::watch;

use crate::disk::{Disk, Meta};
use crate::etag::ETag;
use crate::keys::SigningKeys;
use crate::name::{BundleName, NameError};
use crate::timefmt;
use crate::version::{set_version, RewriteError};

/// File extension of bundle files in a seed directory.
pub const BUNDLE_FILE_EXTENSION: &str = "json";

/// Longest `x-bundle-signature` taken from a shared store: room for
/// [`mcp_guard_engine::signing::MAX_SIGNATURES`] entries. A longer one
/// would be served in every response and overflow proxies' header limits.
pub const MAX_SIGNATURE_HEADER: usize = 1024;

/// How a version came to be, as listed in its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Imported at startup from `--bundles` or given in code.
    Seed,
    /// `PUT /v1/bundles/{name}`.
    Push,
    /// `POST /v1/bundles/{name}/rollback`: an older version's content.
    Rollback,
    /// The issuer keys behind a `discovery` URL changed.
    KeyRotation,
}

impl Source {
    /// The name used in the API and on disk.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Seed => "seed",
            Source::Push => "push",
            Source::Rollback => "rollback",
            Source::KeyRotation => "key-rotation",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [
            Source::Seed,
            Source::Push,
            Source::Rollback,
            Source::KeyRotation,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

/// One stored version, as served: the exact bytes, with everything the
/// HTTP layer needs precomputed.
#[derive(Debug)]
pub struct StoredBundle {
    name: BundleName,
    version: u64,
    bytes: Bytes,
    etag: ETag,
    digest: String,
    signature: String,
    stored_at: u64,
    source: Source,
    by: String,
    signed_by: Option<String>,
}

impl StoredBundle {
    /// Validates `bytes` as the bundle called `name` and signs it (as that
    /// name and version, with every key in `signer`).
    fn new(
        name: BundleName,
        bytes: Bytes,
        signer: &SigningKeys,
        origin: (Source, String, u64, Option<String>),
    ) -> Result<Self, RejectReason> {
        let bundle = Bundle::parse(&bytes).map_err(RejectReason::Invalid)?;
        if bundle.name != name.as_str() {
            return Err(RejectReason::NameMismatch {
                declared: bundle.name,
            });
        }
        let (source, by, stored_at, signed_by) = origin;
        Ok(Self {
            etag: ETag::of(&bytes),
            digest: digest_of(&bytes),
            signature: signer.sign(&Signed {
                name: name.as_str(),
                version: bundle.version,
                bytes: &bytes,
            }),
            version: bundle.version,
            name,
            bytes,
            stored_at,
            source,
            by,
            signed_by,
        })
    }

    /// The bundle's name (also the name it is served under).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The version number, equal to the bundle's `version` field.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The bundle bytes; served byte for byte so tag and signature hold.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The entity tag of [`Self::bytes`].
    pub fn etag(&self) -> &ETag {
        &self.etag
    }

    /// `sha256:<hex>` of [`Self::bytes`], for audit trails.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The `x-bundle-signature` value for [`Self::bytes`].
    pub fn signature(&self) -> &str {
        &self.signature
    }

    /// When it was stored, milliseconds since the Unix epoch.
    pub fn stored_at(&self) -> u64 {
        self.stored_at
    }

    /// How it came to be.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The token id (or `seed`, `jwks-refresh`) behind it.
    pub fn by(&self) -> &str {
        &self.by
    }

    /// The id of the author key whose signature was verified when this
    /// content was pushed (`--trusted-signers`); kept by rollbacks and key
    /// rotations, which store the same authored content again.
    pub fn signed_by(&self) -> Option<&str> {
        self.signed_by.as_deref()
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    let mut out = String::from("sha256:");
    for b in Sha256::digest(bytes) {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Why one bundle was not taken into the store.
#[derive(Debug, thiserror::Error)]
pub enum RejectReason {
    /// The file could not be read.
    #[error("cannot be read: {0}")]
    Read(#[source] io::Error),
    /// The name (or file name) is not a valid bundle name.
    #[error("{0}")]
    BadName(#[source] NameError),
    /// The file is larger than the engine accepts.
    #[error("is {size} bytes, the limit is {MAX_BUNDLE_BYTES}")]
    TooLarge {
        /// Size of the file.
        size: u64,
    },
    /// The engine rejected the bundle.
    #[error("{0}")]
    Invalid(#[source] BundleError),
    /// The bundle's `name` field differs from the name it would be served
    /// under; serving it would hand one policy to subscribers of another.
    #[error("declares name \"{declared}\", which differs from the name it is stored under")]
    NameMismatch {
        /// The `name` field inside the bundle.
        declared: String,
    },
    /// Another bundle with this name was already taken.
    #[error("a bundle with this name is already loaded")]
    Duplicate,
    /// A stored version does not agree with its sidecar or file name:
    /// a partial or tampered write.
    #[error("corrupt: {0}")]
    Corrupt(String),
}

/// A bundle that was not taken into the store, and why.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {reason}")]
pub struct LoadError {
    /// Where the bundle came from: a file path, or the name it was given as.
    pub origin: String,
    /// Why it was rejected.
    pub reason: RejectReason,
}

/// Failures that prevent loading at all.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The directory cannot be listed.
    #[error("cannot read bundle directory {}: {source}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The data directory cannot be used.
    #[error("data directory {}: {source}", dir.display())]
    Data {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
}

/// Why a new version was not stored.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The engine rejects the bundle.
    #[error("{0}")]
    Invalid(BundleError),
    /// The body's `name` is not the URL's.
    #[error("bundle declares name \"{declared}\", not the name it is pushed under")]
    NameMismatch {
        /// The declared name.
        declared: String,
    },
    /// `If-Match` does not name the current version.
    #[error("the bundle changed since the tag given in If-Match")]
    PreconditionFailed,
    /// The body is not a JSON object.
    #[error("{0}")]
    NotAnObject(#[from] RewriteError),
    /// The version could not be made durable; nothing was stored.
    #[error("cannot write the bundle: {0}")]
    Io(#[from] io::Error),
    /// The shared store ([`SharedLog`]) cannot take writes now (database
    /// down, or behind this instance); reads keep being served.
    #[error("the shared store is unavailable: {0}")]
    Unavailable(String),
}

/// A durable log of versions shared by several service instances (the
/// PostgreSQL store, [`crate::pg`]). When one is attached
/// ([`BundleStore::attach`]), [`BundleStore::commit`] goes through it:
/// the log assigns the version, checks `If-Match` against its own latest
/// (not this instance's cache) and makes the version durable before the
/// commit returns; the in-memory map stays the read path.
pub trait SharedLog: Send + Sync + std::fmt::Debug {
    /// Commits one version (blocking; called where [`BundleStore::commit`]
    /// is) and returns it as now held in `store`'s cache.
    fn commit(
        &self,
        store: &BundleStore,
        commit: Commit<'_>,
    ) -> Result<Arc<StoredBundle>, CommitError>;

    /// `Ok` while writes can be taken, else why not.
    fn writable(&self) -> Result<(), String>;
}

/// A version as kept in a shared store: what [`BundleStore::restore`]
/// checks before anything of it is served.
#[derive(Debug)]
pub struct StoredRow {
    /// The version number of the row.
    pub version: u64,
    /// The bundle bytes, exactly as served.
    pub bytes: Vec<u8>,
    /// The `x-bundle-signature` written by the instance that committed it.
    pub signature: String,
    /// `sha256:<hex>` of the bytes, as recorded.
    pub digest: String,
    /// Milliseconds since the Unix epoch.
    pub stored_at: u64,
    /// How it came to be, as text.
    pub source: String,
    /// Token id or actor.
    pub by: String,
    /// The verified author key id, if any.
    pub signed_by: Option<String>,
}

/// What [`BundleStore::absorb`] did with a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Absorbed {
    /// It is now held (and, if newest, announced).
    Added,
    /// The same version with the same digest was already held.
    Known,
    /// A different version with this number is already held (and was
    /// served): the shared store was rewound or tampered with. Kept out.
    Diverged,
}

/// The result of loading a seed directory into a new in-memory store.
#[derive(Debug)]
pub struct DirLoad {
    /// The valid bundles.
    pub store: BundleStore,
    /// One entry per `*.json` file that was skipped, in file-name order.
    pub rejected: Vec<LoadError>,
}

/// What to store: content, provenance and precondition.
#[derive(Debug)]
pub struct Commit<'a> {
    /// The bundle name.
    pub name: &'a BundleName,
    /// The bundle JSON; its `version` is replaced.
    pub content: &'a [u8],
    /// How the version comes about.
    pub source: Source,
    /// Token id or actor.
    pub by: &'a str,
    /// The verified author key id, if the content is author-signed.
    pub signed_by: Option<&'a str>,
    /// `If-Match` header value, if the writer made the write conditional.
    pub if_match: Option<&'a str>,
}

/// All versions of one bundle plus the channel that announces new ones.
#[derive(Debug)]
struct Entry {
    versions: Vec<Arc<StoredBundle>>,
    latest: watch::Sender<u64>,
}

impl Entry {
    fn new() -> Self {
        Self {
            versions: Vec::new(),
            latest: watch::channel(0).0,
        }
    }
}

/// The versioned, signed bundles this service serves, by name.
///
/// Shared behind an `Arc` by all connections. Readers get an `Arc` to a
/// version, which stays valid whatever is stored after. Writes are
/// serialised (one commit at a time, durable before visible).
#[derive(Debug)]
pub struct BundleStore {
    bundles: RwLock<BTreeMap<BundleName, Entry>>,
    write: Mutex<()>,
    signer: SigningKeys,
    disk: Option<Disk>,
    closing: watch::Sender<bool>,
    shared: OnceLock<Arc<dyn SharedLog>>,
}

impl Default for BundleStore {
    fn default() -> Self {
        Self::new()
    }
}

impl BundleStore {
    /// An empty in-memory store signing with a fresh random key (see
    /// [`Self::verifying_key`]); the key and the versions are lost when the
    /// process ends.
    pub fn new() -> Self {
        Self::in_memory(crate::keys::generate())
    }

    /// An empty in-memory store signing with `signer` alone.
    pub fn in_memory(signer: SigningKey) -> Self {
        Self::in_memory_with(SigningKeys::new(signer))
    }

    /// An empty in-memory store signing with `signer` (current and, during
    /// a rotation, next key).
    pub fn in_memory_with(signer: SigningKeys) -> Self {
        Self {
            bundles: RwLock::new(BTreeMap::new()),
            write: Mutex::new(()),
            signer,
            disk: None,
            closing: watch::channel(false).0,
            shared: OnceLock::new(),
        }
    }

    /// Opens the persistent store in `data_dir`: recovers every intact
    /// version (each re-validated by the engine and checked against its
    /// sidecar) and reports the rest, which are never served.
    pub fn open(data_dir: &Path, signer: SigningKey) -> Result<(Self, Vec<LoadError>), StoreError> {
        Self::open_with(data_dir, SigningKeys::new(signer))
    }

    /// [`Self::open`] signing with current and next key.
    pub fn open_with(
        data_dir: &Path,
        signer: SigningKeys,
    ) -> Result<(Self, Vec<LoadError>), StoreError> {
        let data_error = |source| StoreError::Data {
            dir: data_dir.to_owned(),
            source,
        };
        let disk = Disk::open(data_dir).map_err(data_error)?;
        let (found, strays) = disk.scan().map_err(data_error)?;
        let mut store = Self::in_memory_with(signer);
        let mut rejected: Vec<LoadError> = strays
            .into_iter()
            .map(|s| LoadError {
                origin: s.path.display().to_string(),
                reason: RejectReason::Corrupt(s.what.to_owned()),
            })
            .collect();
        for file in found {
            let origin = file.path.display().to_string();
            match store.recover(file) {
                Ok(()) => {}
                Err(reason) => rejected.push(LoadError { origin, reason }),
            }
        }
        store.disk = Some(disk);
        Ok((store, rejected))
    }

    /// Validates one version file found on disk and adds it.
    fn recover(&self, file: crate::disk::Found) -> Result<(), RejectReason> {
        let name = BundleName::parse(&file.name).map_err(RejectReason::BadName)?;
        let bytes = file.bytes.map_err(RejectReason::Read)?;
        if bytes.len() > MAX_BUNDLE_BYTES {
            return Err(RejectReason::TooLarge {
                size: bytes.len() as u64,
            });
        }
        let meta = file.meta.map_err(RejectReason::Corrupt)?;
        if meta.version != file.version {
            return Err(RejectReason::Corrupt(format!(
                "sidecar says version {}, file name says {}",
                meta.version, file.version
            )));
        }
        if meta.digest != digest_of(&bytes) {
            return Err(RejectReason::Corrupt(
                "content does not match the digest in its sidecar".into(),
            ));
        }
        let source = Source::parse(&meta.source)
            .ok_or_else(|| RejectReason::Corrupt(format!("unknown source \"{}\"", meta.source)))?;
        let stored = StoredBundle::new(
            name.clone(),
            Bytes::from(bytes),
            &self.signer,
            (source, meta.by, meta.stored_at, meta.signed_by),
        )?;
        if stored.version != file.version {
            return Err(RejectReason::Corrupt(format!(
                "bundle says version {}, file name says {}",
                stored.version, file.version
            )));
        }
        self.publish(name, Arc::new(stored));
        Ok(())
    }

    /// A store holding exactly `bundles`, given as (name, bytes) pairs: for
    /// tests and for bundles embedded in a program. They are taken as they
    /// are, declared versions included. Any bad bundle is an error, since a
    /// caller that supplies bundles in code expects all of them served.
    pub fn from_bundles<I, N, B>(bundles: I) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = (N, B)>,
        N: Into<String>,
        B: Into<Bytes>,
    {
        let store = Self::new();
        for (name, bytes) in bundles {
            let name = name.into();
            store
                .add_seed(&name, bytes.into(), false)
                .map_err(|reason| LoadError {
                    origin: name,
                    reason,
                })?;
        }
        Ok(store)
    }

    /// Loads every `<name>.json` file in `dir` into a new in-memory store
    /// (see [`Self::seed_dir`]).
    pub fn load_dir(dir: &Path) -> Result<DirLoad, StoreError> {
        let store = Self::new();
        let rejected = store.seed_dir(dir)?;
        Ok(DirLoad { store, rejected })
    }

    /// Imports every `<name>.json` file in `dir` (not recursing) as
    /// version 1 of a bundle the store does not have yet, so a demo
    /// directory seeds an empty data directory once. Bundles already held
    /// are left alone; unreadable, misnamed or invalid files are reported.
    pub fn seed_dir(&self, dir: &Path) -> Result<Vec<LoadError>, StoreError> {
        let read_dir_error = |source| StoreError::ReadDir {
            dir: dir.to_owned(),
            source,
        };
        let mut paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_dir_error)? {
            let path = entry.map_err(read_dir_error)?.path();
            if path.extension().is_some_and(|e| e == BUNDLE_FILE_EXTENSION) {
                paths.push(path);
            }
        }
        paths.sort();
        let mut rejected = Vec::new();
        for path in paths {
            let added = match fs::metadata(&path) {
                // Directories and other non-files named *.json are not bundles.
                Ok(meta) if !meta.is_file() => continue,
                Ok(meta) => self.seed_file(&path, meta.len()),
                Err(e) => Err(RejectReason::Read(e)),
            };
            if let Err(reason) = added {
                rejected.push(LoadError {
                    origin: path.display().to_string(),
                    reason,
                });
            }
        }
        Ok(rejected)
    }

    fn seed_file(&self, path: &Path, size: u64) -> Result<(), RejectReason> {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = BundleName::parse(&stem).map_err(RejectReason::BadName)?;
        if size > MAX_BUNDLE_BYTES as u64 {
            return Err(RejectReason::TooLarge { size });
        }
        let bytes = fs::read(path).map_err(RejectReason::Read)?;
        match self.add_seed(name.as_str(), Bytes::from(bytes), true) {
            Err(RejectReason::Duplicate) => Ok(()),
            other => other,
        }
    }

    /// Adds a seed bundle under a name not yet held; `as_version_1`
    /// rewrites its version to 1 (else the declared version is kept).
    fn add_seed(&self, name: &str, bytes: Bytes, as_version_1: bool) -> Result<(), RejectReason> {
        let name = BundleName::parse(name).map_err(RejectReason::BadName)?;
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        if self.get(&name).is_some() {
            return Err(RejectReason::Duplicate);
        }
        let bytes = if as_version_1 {
            // Validate the original first, so issues point at what was written.
            Bundle::parse(&bytes).map_err(RejectReason::Invalid)?;
            let rewritten =
                set_version(&bytes, 1).map_err(|e| RejectReason::Corrupt(e.to_string()))?;
            Bytes::from(rewritten)
        } else {
            bytes
        };
        let stored = StoredBundle::new(
            name.clone(),
            bytes,
            &self.signer,
            (Source::Seed, "seed".into(), timefmt::now_millis(), None),
        )?;
        self.persist(&stored).map_err(RejectReason::Read)?;
        self.publish(name, Arc::new(stored));
        Ok(())
    }

    /// Stores a new version: checks `If-Match`, assigns `latest + 1`,
    /// validates, signs, makes it durable, then makes it visible and wakes
    /// long-polls. Blocking (file I/O); call from a blocking context.
    ///
    /// With a [`SharedLog`] attached, the log does all of this against the
    /// shared database instead, and the version enters the cache from it.
    pub fn commit(&self, commit: Commit<'_>) -> Result<Arc<StoredBundle>, CommitError> {
        if let Some(shared) = self.shared.get() {
            return shared.commit(self, commit);
        }
        let _write = self.write.lock().unwrap_or_else(PoisonError::into_inner);
        let latest = self.get(commit.name);
        if let Some(condition) = commit.if_match {
            let current = latest.as_ref().map(|b| b.etag());
            if !current.is_some_and(|tag| tag.matches_if_match(condition)) {
                return Err(CommitError::PreconditionFailed);
            }
        }
        let version = latest.as_ref().map_or(1, |b| b.version + 1);
        let stored = self.prepare(&commit, version)?;
        self.persist(&stored)?;
        let stored = Arc::new(stored);
        self.publish(commit.name.clone(), Arc::clone(&stored));
        Ok(stored)
    }

    /// The version `version` of `commit`: its content with the version
    /// written in, validated and signed, not yet stored anywhere.
    pub fn prepare(&self, commit: &Commit<'_>, version: u64) -> Result<StoredBundle, CommitError> {
        let bytes = set_version(commit.content, version)?;
        StoredBundle::new(
            commit.name.clone(),
            Bytes::from(bytes),
            &self.signer,
            (
                commit.source,
                commit.by.to_owned(),
                timefmt::now_millis(),
                commit.signed_by.map(str::to_owned),
            ),
        )
        .map_err(|reason| match reason {
            RejectReason::Invalid(e) => CommitError::Invalid(e),
            RejectReason::NameMismatch { declared } => CommitError::NameMismatch { declared },
            other => CommitError::Io(io::Error::other(other.to_string())),
        })
    }

    /// Attaches the shared log all later commits go through; `false` if
    /// one was attached already (it stays).
    pub fn attach(&self, shared: Arc<dyn SharedLog>) -> bool {
        self.shared.set(shared).is_ok()
    }

    /// Whether a commit could be taken now: always with a local store;
    /// with a [`SharedLog`], only while it is reachable.
    pub fn writable(&self) -> Result<(), String> {
        self.shared.get().map_or(Ok(()), |shared| shared.writable())
    }

    /// Checks a version read from a shared store before it may be served:
    /// size, recorded digest, the signature against this instance's own
    /// keys, then the engine's validation and the name and version inside
    /// the bundle (a row nobody holding the key wrote is never
    /// served, whoever can write the table). Nothing is re-signed, so every
    /// instance serves the same bytes and signature.
    pub fn restore(&self, name: &BundleName, row: StoredRow) -> Result<StoredBundle, RejectReason> {
        if row.bytes.len() > MAX_BUNDLE_BYTES {
            return Err(RejectReason::TooLarge {
                size: row.bytes.len() as u64,
            });
        }
        if row.digest != digest_of(&row.bytes) {
            return Err(RejectReason::Corrupt(
                "content does not match its recorded digest".into(),
            ));
        }
        let source = Source::parse(&row.source)
            .ok_or_else(|| RejectReason::Corrupt(format!("unknown source \"{}\"", row.source)))?;
        // Served as the x-bundle-signature header: bounded, printable.
        if row.signature.len() > MAX_SIGNATURE_HEADER
            || !row
                .signature
                .bytes()
                .all(|b| b == b' ' || b.is_ascii_graphic())
        {
            return Err(RejectReason::Corrupt(format!(
                "signature header is not printable text of at most {MAX_SIGNATURE_HEADER} bytes"
            )));
        }
        // Before the parser: bytes no key holder signed never reach it.
        let trusted: Vec<VerifyingKey> = self.signer.public().into_iter().map(|(k, _)| k).collect();
        let signed = Signed {
            name: name.as_str(),
            version: row.version,
            bytes: &row.bytes,
        };
        mcp_guard_engine::signing::verify(&signed, row.signature.as_str(), &trusted).map_err(
            |e| {
                RejectReason::Corrupt(format!(
                    "signature does not verify with this service's keys: {e}"
                ))
            },
        )?;
        let bundle = Bundle::parse(&row.bytes).map_err(RejectReason::Invalid)?;
        if bundle.name != name.as_str() {
            return Err(RejectReason::NameMismatch {
                declared: bundle.name,
            });
        }
        if bundle.version != row.version {
            return Err(RejectReason::Corrupt(format!(
                "bundle says version {}, its row says {}",
                bundle.version, row.version
            )));
        }
        let bytes = Bytes::from(row.bytes);
        Ok(StoredBundle {
            name: name.clone(),
            version: row.version,
            etag: ETag::of(&bytes),
            digest: row.digest,
            signature: row.signature,
            bytes,
            stored_at: row.stored_at,
            source,
            by: row.by,
            signed_by: row.signed_by,
        })
    }

    /// Takes a version committed elsewhere (a shared store) into the
    /// cache. Versions only ever add: one already held is never replaced,
    /// so an instance never serves a version older than one it served, nor
    /// two contents under one number. Long-polls are woken when it is the
    /// newest.
    pub fn absorb(&self, stored: Arc<StoredBundle>) -> Absorbed {
        let mut bundles = self.bundles.write().unwrap_or_else(PoisonError::into_inner);
        let entry = bundles
            .entry(stored.name.clone())
            .or_insert_with(Entry::new);
        match entry
            .versions
            .binary_search_by_key(&stored.version, |b| b.version)
        {
            Ok(i) => match entry.versions.get(i) {
                Some(held) if held.digest == stored.digest => Absorbed::Known,
                _ => Absorbed::Diverged,
            },
            Err(i) => {
                let version = stored.version;
                let newest = i == entry.versions.len();
                entry.versions.insert(i, stored);
                if newest {
                    entry.latest.send_replace(version);
                }
                Absorbed::Added
            }
        }
    }

    /// Writes a version to disk when the store is persistent.
    fn persist(&self, stored: &StoredBundle) -> io::Result<()> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let meta = Meta {
            version: stored.version,
            digest: stored.digest.clone(),
            stored_at: stored.stored_at,
            source: stored.source.as_str().into(),
            by: stored.by.clone(),
            signed_by: stored.signed_by.clone(),
        };
        disk.write(stored.name(), stored.version, &stored.bytes, &meta)
    }

    /// Makes a version visible and announces it to long-polls. Versions
    /// arrive in ascending order per bundle.
    fn publish(&self, name: BundleName, stored: Arc<StoredBundle>) {
        let mut bundles = self.bundles.write().unwrap_or_else(PoisonError::into_inner);
        let entry = bundles.entry(name).or_insert_with(Entry::new);
        let version = stored.version;
        entry.versions.push(stored);
        entry.latest.send_replace(version);
    }

    /// The latest version of the bundle called `name`, if held.
    pub fn get(&self, name: &BundleName) -> Option<Arc<StoredBundle>> {
        self.read().get(name)?.versions.last().cloned()
    }

    /// Version `version` of bundle `name`, if held.
    pub fn get_version(&self, name: &BundleName, version: u64) -> Option<Arc<StoredBundle>> {
        let bundles = self.read();
        let versions = &bundles.get(name)?.versions;
        versions
            .binary_search_by_key(&version, |b| b.version)
            .ok()
            .and_then(|i| versions.get(i).cloned())
    }

    /// Every version of bundle `name`, oldest first; `None` if unknown.
    pub fn history(&self, name: &BundleName) -> Option<Vec<Arc<StoredBundle>>> {
        Some(self.read().get(name)?.versions.clone())
    }

    /// A receiver of the latest version number of `name`, which changes
    /// whenever a version is stored; `None` for an unknown bundle.
    pub fn subscribe(&self, name: &BundleName) -> Option<watch::Receiver<u64>> {
        Some(self.read().get(name)?.latest.subscribe())
    }

    /// The latest version of every bundle, by name.
    pub fn list(&self) -> Vec<Arc<StoredBundle>> {
        self.read()
            .values()
            .filter_map(|e| e.versions.last().cloned())
            .collect()
    }

    /// How many bundles are held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no bundle is held.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Whether versions survive a restart.
    pub fn is_persistent(&self) -> bool {
        self.disk.is_some()
    }

    /// The public half of the current signing key, to verify
    /// `x-bundle-signature`.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signer.current().verifying_key()
    }

    /// Every key versions are signed with: current, then next.
    pub fn signing_keys(&self) -> &SigningKeys {
        &self.signer
    }

    /// Tells long-polls the service is shutting down, so they answer now.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// A receiver that turns `true` when [`Self::close`] is called.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Read access. The map is only changed by whole inserts of immutable
    /// versions, so a poisoned lock is safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<BundleName, Entry>> {
        self.bundles.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_engine::signing;

    const DEMO: &str = r#"{"name":"demo","version":3}"#;

    fn name(s: &str) -> BundleName {
        BundleName::parse(s).expect("valid name")
    }

    #[test]
    fn from_bundles_keeps_bytes_and_version() {
        let store = BundleStore::from_bundles([("demo", DEMO)]).expect("valid");
        let bundle = store.get(&name("demo")).expect("stored");
        assert_eq!(bundle.bytes().as_ref(), DEMO.as_bytes());
        assert_eq!(bundle.version(), 3);
        assert_eq!(bundle.etag(), &ETag::of(DEMO.as_bytes()));
        assert_eq!(bundle.source(), Source::Seed);
        assert_eq!(store.len(), 1);
        let key = store.verifying_key();
        let signed = Signed {
            name: "demo",
            version: 3,
            bytes: bundle.bytes(),
        };
        assert!(signing::verify(&signed, bundle.signature(), &[key]).is_ok());
        let as_other = Signed {
            name: "other",
            ..signed
        };
        assert!(signing::verify(&as_other, bundle.signature(), &[key]).is_err());
    }

    #[test]
    fn from_bundles_rejects_bad_input() {
        let reason = |pairs: Vec<(&str, &'static str)>| {
            BundleStore::from_bundles(pairs)
                .expect_err("rejected")
                .reason
        };
        assert!(matches!(
            reason(vec![("other", DEMO)]),
            RejectReason::NameMismatch { declared } if declared == "demo"
        ));
        assert!(matches!(
            reason(vec![("de/mo", DEMO)]),
            RejectReason::BadName(_)
        ));
        assert!(matches!(
            reason(vec![("demo", "{}")]),
            RejectReason::Invalid(_)
        ));
        assert!(matches!(
            reason(vec![("demo", DEMO), ("demo", DEMO)]),
            RejectReason::Duplicate
        ));
    }

    #[test]
    fn commits_number_versions_and_check_if_match() {
        let store = BundleStore::from_bundles([("demo", DEMO)]).expect("valid");
        let demo = name("demo");
        let commit = |if_match: Option<&str>| {
            store.commit(Commit {
                name: &demo,
                content: br#"{"name":"demo","version":99}"#,
                source: Source::Push,
                by: "t",
                signed_by: None,
                if_match,
            })
        };
        let v4 = commit(None).expect("stored");
        assert_eq!(v4.version(), 4);
        assert_eq!(v4.bytes().as_ref(), br#"{"name":"demo","version":4}"#);
        assert!(matches!(
            commit(Some("\"stale\"")),
            Err(CommitError::PreconditionFailed)
        ));
        let v5 = commit(Some(v4.etag().as_str())).expect("stored");
        assert_eq!(v5.version(), 5);
        assert_eq!(store.history(&demo).map(|h| h.len()), Some(3));
        assert_eq!(
            store.get_version(&demo, 4).map(|b| b.etag().clone()),
            Some(v4.etag().clone())
        );
        assert!(store.get_version(&demo, 6).is_none());
    }

    /// A row as another replica with the same key would have written it.
    fn row_from(store: &BundleStore, version: u64, note: &str) -> StoredRow {
        let content = format!(r#"{{"name":"demo","version":1,"description":"{note}"}}"#);
        let stored = store
            .prepare(
                &Commit {
                    name: &name("demo"),
                    content: content.as_bytes(),
                    source: Source::Push,
                    by: "t",
                    signed_by: None,
                    if_match: None,
                },
                version,
            )
            .expect("valid");
        StoredRow {
            version,
            bytes: stored.bytes().to_vec(),
            signature: stored.signature().to_owned(),
            digest: stored.digest().to_owned(),
            stored_at: 1,
            source: "push".into(),
            by: "t".into(),
            signed_by: None,
        }
    }

    #[test]
    fn restore_serves_rows_unchanged_and_refuses_what_was_not_signed_here() {
        let key = crate::keys::generate();
        let writer = BundleStore::in_memory(key.clone());
        let reader = BundleStore::in_memory(key);
        let demo = name("demo");
        let row = row_from(&writer, 2, "a");
        let (bytes, signature) = (row.bytes.clone(), row.signature.clone());
        let restored = reader.restore(&demo, row).expect("good row");
        assert_eq!(restored.bytes().as_ref(), bytes.as_slice());
        assert_eq!(
            restored.signature(),
            signature,
            "served as signed, not re-signed"
        );
        assert_eq!(restored.version(), 2);

        let corrupt = |change: &dyn Fn(&mut StoredRow)| {
            let mut row = row_from(&writer, 2, "a");
            change(&mut row);
            reader.restore(&demo, row).expect_err("refused")
        };
        // Signed by a key this replica does not hold.
        let stranger = BundleStore::new();
        let foreign = row_from(&stranger, 2, "a");
        assert!(matches!(
            reader.restore(&demo, foreign),
            Err(RejectReason::Corrupt(_))
        ));
        assert!(matches!(
            corrupt(&|r| r.signature = "v=2; key=x; ed25519=AAAA".into()),
            RejectReason::Corrupt(_)
        ));
        // Bytes changed after signing (digest fixed up to match).
        assert!(matches!(
            corrupt(&|r| {
                r.bytes = br#"{"name":"demo","version":2,"description":"b"}"#.to_vec();
                r.digest = digest_of(&r.bytes);
            }),
            RejectReason::Corrupt(_)
        ));
        assert!(matches!(
            corrupt(&|r| r.digest = "sha256:00".into()),
            RejectReason::Corrupt(_)
        ));
        assert!(matches!(
            corrupt(&|r| r.version = 3),
            RejectReason::Corrupt(_)
        ));
        assert!(matches!(
            corrupt(&|r| r.source = "magic".into()),
            RejectReason::Corrupt(_)
        ));
        assert!(matches!(
            corrupt(&|r| {
                r.bytes = vec![b' '; MAX_BUNDLE_BYTES + 1];
                r.digest = digest_of(&r.bytes);
            }),
            RejectReason::TooLarge { .. }
        ));
        // Signed for another name: refused before the parser.
        assert!(matches!(
            reader.restore(&name("other"), row_from(&writer, 2, "a")),
            Err(RejectReason::Corrupt(_))
        ));
        // Bytes nobody signed never reach the bundle parser.
        let junk = corrupt(&|r| {
            r.bytes = b"not json".to_vec();
            r.digest = digest_of(&r.bytes);
        });
        assert!(
            matches!(&junk, RejectReason::Corrupt(why) if why.contains("signature")),
            "{junk}"
        );
        // A genuine signature padded with an entry of an unknown format:
        // it would verify, and be served in every response.
        let padded = corrupt(&|r| {
            r.signature = format!("{}, v=9; x={}", r.signature, "A".repeat(2000));
        });
        assert!(matches!(padded, RejectReason::Corrupt(_)), "{padded}");
        let newline = corrupt(&|r| r.signature = format!("{}\r\nx-evil: 1", r.signature));
        assert!(matches!(newline, RejectReason::Corrupt(_)), "{newline}");
        assert!(reader.get(&demo).is_none(), "restore alone serves nothing");
    }

    #[test]
    fn absorb_only_moves_forward_and_keeps_what_was_served() {
        let store = BundleStore::new();
        let demo = name("demo");
        let restored = |v: u64, note: &str| {
            Arc::new(
                store
                    .restore(&demo, row_from(&store, v, note))
                    .expect("good"),
            )
        };
        assert_eq!(store.absorb(restored(2, "a")), Absorbed::Added);
        let mut changes = store.subscribe(&demo).expect("known");
        assert_eq!(store.absorb(restored(3, "b")), Absorbed::Added);
        assert!(changes.has_changed().unwrap_or(false), "long-polls woken");
        assert_eq!(*changes.borrow_and_update(), 3);
        assert_eq!(store.absorb(restored(3, "b")), Absorbed::Known);
        assert_eq!(store.absorb(restored(3, "other")), Absorbed::Diverged);
        assert_eq!(
            store.get(&demo).map(|b| b.digest().to_owned()),
            Some(restored(3, "b").digest().to_owned())
        );
        // A late older version fills the history without moving latest.
        assert_eq!(store.absorb(restored(1, "z")), Absorbed::Added);
        assert!(!changes.has_changed().unwrap_or(true));
        assert_eq!(store.get(&demo).map(|b| b.version()), Some(3));
        let versions: Vec<u64> = store
            .history(&demo)
            .unwrap_or_default()
            .iter()
            .map(|b| b.version())
            .collect();
        assert_eq!(versions, [1, 2, 3]);
    }
}
