//! The bundle store: every bundle it holds has been validated by the
//! engine, so a filter can never be served a bundle it would reject.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use mcp_guard_engine::bundle::MAX_BUNDLE_BYTES;
use mcp_guard_engine::{Bundle, BundleError};

use crate::etag::ETag;
use crate::name::{BundleName, NameError};

/// File extension of bundle files in a bundle directory.
pub const BUNDLE_FILE_EXTENSION: &str = "json";

/// One bundle as served: the exact bytes it was given as, with what the
/// HTTP layer needs precomputed.
#[derive(Debug)]
pub struct StoredBundle {
    name: BundleName,
    version: u64,
    bytes: Bytes,
    etag: ETag,
}

impl StoredBundle {
    /// Validates `bytes` as the bundle called `name`.
    fn new(name: BundleName, bytes: Bytes) -> Result<Self, RejectReason> {
        let bundle = Bundle::parse(&bytes).map_err(RejectReason::Invalid)?;
        if bundle.name != name.as_str() {
            return Err(RejectReason::NameMismatch {
                declared: bundle.name,
            });
        }
        Ok(Self {
            etag: ETag::of(&bytes),
            version: bundle.version,
            name,
            bytes,
        })
    }

    /// The bundle's name (also the name it is served under).
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The bundle's `version` field.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The bundle exactly as given; served byte for byte so its tag and any
    /// future signature stay valid.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The entity tag of [`Self::bytes`].
    pub fn etag(&self) -> &ETag {
        &self.etag
    }
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
    #[error("declares name {declared:?}, which differs from the name it is stored under")]
    NameMismatch {
        /// The `name` field inside the bundle.
        declared: String,
    },
    /// Another bundle with this name was already taken.
    #[error("a bundle with this name is already loaded")]
    Duplicate,
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

/// Failures that prevent loading a bundle directory at all.
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
}

/// The result of loading a directory: the store, and the files left out.
#[derive(Debug)]
pub struct DirLoad {
    /// The valid bundles.
    pub store: BundleStore,
    /// One entry per `*.json` file that was skipped, in file-name order.
    pub rejected: Vec<LoadError>,
}

/// The validated bundles this service serves, by name.
///
/// Shared behind an `Arc` by all connections; the lock is there so that
/// bundles can later be pushed while serving. Readers get an `Arc` to a
/// bundle, which stays valid however the store changes after.
#[derive(Debug, Default)]
pub struct BundleStore {
    bundles: RwLock<BTreeMap<BundleName, Arc<StoredBundle>>>,
}

impl BundleStore {
    /// A store with no bundles.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding exactly `bundles`, given as (name, bytes) pairs: for
    /// tests and for bundles embedded in a program. Any bad bundle is an
    /// error, since a caller that supplies bundles in code expects all of
    /// them to be served.
    pub fn from_bundles<I, N, B>(bundles: I) -> Result<Self, LoadError>
    where
        I: IntoIterator<Item = (N, B)>,
        N: Into<String>,
        B: Into<Bytes>,
    {
        let store = Self::new();
        for (name, bytes) in bundles {
            let name = name.into();
            store.add(&name, bytes.into()).map_err(|reason| LoadError {
                origin: name,
                reason,
            })?;
        }
        Ok(store)
    }

    /// Loads every `<name>.json` file in `dir` (not recursing). Files that
    /// are unreadable, misnamed or invalid are left out and reported in
    /// [`DirLoad::rejected`]; other files are ignored.
    pub fn load_dir(dir: &Path) -> Result<DirLoad, StoreError> {
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

        let store = Self::new();
        let mut rejected = Vec::new();
        for path in paths {
            let added = match fs::metadata(&path) {
                // Directories and other non-files named *.json are not bundles.
                Ok(meta) if !meta.is_file() => continue,
                Ok(meta) => store.add_file(&path, meta.len()),
                Err(e) => Err(RejectReason::Read(e)),
            };
            if let Err(reason) = added {
                rejected.push(LoadError {
                    origin: path.display().to_string(),
                    reason,
                });
            }
        }
        Ok(DirLoad { store, rejected })
    }

    /// The bundle called `name`, if held.
    pub fn get(&self, name: &BundleName) -> Option<Arc<StoredBundle>> {
        self.read().get(name).cloned()
    }

    /// Every bundle held, by name.
    pub fn list(&self) -> Vec<Arc<StoredBundle>> {
        self.read().values().cloned().collect()
    }

    /// How many bundles are held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether no bundle is held.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Validates and adds the bundle in the file at `path` (of `size`
    /// bytes), named after the file.
    fn add_file(&self, path: &Path, size: u64) -> Result<(), RejectReason> {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = BundleName::parse(&stem).map_err(RejectReason::BadName)?;
        if size > MAX_BUNDLE_BYTES as u64 {
            return Err(RejectReason::TooLarge { size });
        }
        let bytes = fs::read(path).map_err(RejectReason::Read)?;
        self.insert_new(StoredBundle::new(name, Bytes::from(bytes))?)
    }

    /// Validates and adds one bundle given by name.
    fn add(&self, name: &str, bytes: Bytes) -> Result<(), RejectReason> {
        let name = BundleName::parse(name).map_err(RejectReason::BadName)?;
        self.insert_new(StoredBundle::new(name, bytes)?)
    }

    /// Adds a bundle whose name is not yet taken.
    fn insert_new(&self, bundle: StoredBundle) -> Result<(), RejectReason> {
        let mut bundles = self.bundles.write().unwrap_or_else(PoisonError::into_inner);
        if bundles.contains_key(&bundle.name) {
            return Err(RejectReason::Duplicate);
        }
        bundles.insert(bundle.name.clone(), Arc::new(bundle));
        Ok(())
    }

    /// Read access. The map is only ever changed by whole inserts of
    /// immutable bundles, so a panic elsewhere cannot leave it half-updated
    /// and a poisoned lock is safe to use.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<BundleName, Arc<StoredBundle>>> {
        self.bundles.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(store.len(), 1);
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
}
