//! The on-disk layout and crash-safe writes.
//!
//! ```text
//! DIR/keys/signing.key                        signing seed (base64), mode 0600
//! DIR/bundles/<name>/<version:010>.meta       {"version","digest","stored_at","source","by"}
//! DIR/bundles/<name>/<version:010>.json       the bundle, byte for byte as served
//! ```
//!
//! A version is written sidecar first, bundle second, each through a temp
//! file in the same directory (write, fsync, rename, fsync the directory).
//! The bundle file's rename is the commit point: a `.json` is only ever
//! complete, and its `.meta` is already durable. A crash before that rename
//! leaves at most a temp file or a lone `.meta`, which loading reports and
//! ignores. The service answers `201` only after the commit, so an
//! acknowledged version survives `kill -9` and power loss.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Extension of bundle files.
pub const BUNDLE_EXT: &str = "json";
/// Extension of sidecar files.
pub const META_EXT: &str = "meta";
/// Prefix of temp files (hidden, never mistaken for a version).
const TEMP_PREFIX: &str = ".tmp-";

/// What the sidecar records about one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// The version number (also in the file name and the bundle).
    pub version: u64,
    /// `sha256:<hex>` of the bundle file; checked on load.
    pub digest: String,
    /// When it was stored, milliseconds since the Unix epoch.
    pub stored_at: u64,
    /// How it came to be: `seed`, `push`, `rollback` or `key-rotation`.
    pub source: String,
    /// Token id (or `seed` / `jwks-refresh`) that caused it.
    pub by: String,
    /// The verified author key id, when the content was author-signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed_by: Option<String>,
}

/// One version file found on disk, before validation.
#[derive(Debug)]
pub struct Found {
    /// Directory name (the bundle name, unchecked).
    pub name: String,
    /// Version from the file name.
    pub version: u64,
    /// The `.json` file.
    pub path: PathBuf,
    /// Its bytes, or why they could not be read.
    pub bytes: io::Result<Vec<u8>>,
    /// Its sidecar, or why it is unusable.
    pub meta: Result<Meta, String>,
}

/// Something on disk that is not a version and was ignored.
#[derive(Debug)]
pub struct Stray {
    /// The path.
    pub path: PathBuf,
    /// What it is.
    pub what: &'static str,
}

/// The file store rooted at a data directory.
#[derive(Debug, Clone)]
pub struct Disk {
    root: PathBuf,
}

impl Disk {
    /// Opens (creating if needed) the layout under `root`.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root.join("bundles"))?;
        fs::create_dir_all(root.join("keys"))?;
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the generated signing key lives.
    pub fn key_path(&self) -> PathBuf {
        self.root.join("keys").join("signing.key")
    }

    fn bundle_dir(&self, name: &str) -> PathBuf {
        self.root.join("bundles").join(name)
    }

    /// Durably writes version `version` of bundle `name`; returns once both
    /// files and their directory entries are on stable storage.
    pub fn write(&self, name: &str, version: u64, bytes: &[u8], meta: &Meta) -> io::Result<()> {
        let dir = self.bundle_dir(name);
        if !dir.exists() {
            fs::create_dir_all(&dir)?;
            sync_dir(&self.root.join("bundles"))?;
        }
        let meta_bytes = serde_json::to_vec(meta).map_err(io::Error::other)?;
        let stem = format!("{version:010}");
        write_atomic(&dir, &format!("{stem}.{META_EXT}"), &meta_bytes)?;
        write_atomic(&dir, &format!("{stem}.{BUNDLE_EXT}"), bytes)
    }

    /// Every version file under `bundles/`, sorted by name then version,
    /// plus what was ignored (temp files, lone sidecars, unknown files).
    pub fn scan(&self) -> io::Result<(Vec<Found>, Vec<Stray>)> {
        let mut found = Vec::new();
        let mut strays = Vec::new();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for entry in fs::read_dir(self.root.join("bundles"))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                strays.push(Stray {
                    path,
                    what: "not a bundle directory",
                });
            }
        }
        dirs.sort();
        for dir in dirs {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut files: Vec<PathBuf> = Vec::new();
            for entry in fs::read_dir(&dir)? {
                files.push(entry?.path());
            }
            files.sort();
            for path in &files {
                let file_name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if file_name.starts_with(TEMP_PREFIX) {
                    strays.push(Stray {
                        path: path.clone(),
                        what: "temp file of an interrupted write",
                    });
                    continue;
                }
                let Some((stem, ext)) = file_name.rsplit_once('.') else {
                    strays.push(Stray {
                        path: path.clone(),
                        what: "unknown file",
                    });
                    continue;
                };
                let version = (stem.len() == 10)
                    .then(|| stem.parse::<u64>().ok())
                    .flatten();
                match (version, ext) {
                    (Some(version), BUNDLE_EXT) => {
                        let meta_path = dir.join(format!("{stem}.{META_EXT}"));
                        found.push(Found {
                            name: name.clone(),
                            version,
                            path: path.clone(),
                            bytes: fs::read(path),
                            meta: read_meta(&meta_path),
                        });
                    }
                    (Some(_), META_EXT) => {
                        if !dir.join(format!("{stem}.{BUNDLE_EXT}")).exists() {
                            strays.push(Stray {
                                path: path.clone(),
                                what: "sidecar without its bundle (interrupted write)",
                            });
                        }
                    }
                    _ => strays.push(Stray {
                        path: path.clone(),
                        what: "unknown file",
                    }),
                }
            }
        }
        Ok((found, strays))
    }
}

fn read_meta(path: &Path) -> Result<Meta, String> {
    let bytes = fs::read(path).map_err(|e| format!("sidecar {}: {e}", path.display()))?;
    serde_json::from_slice(&bytes).map_err(|e| format!("sidecar {}: {e}", path.display()))
}

/// Writes `bytes` to `dir/file_name` so that the file is either absent or
/// complete after a crash: temp file in the same directory, write, fsync,
/// rename over the target, fsync the directory.
pub fn write_atomic(dir: &Path, file_name: &str, bytes: &[u8]) -> io::Result<()> {
    let temp = dir.join(format!("{TEMP_PREFIX}{file_name}-{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        restrict_permissions(&file, file_name)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, dir.join(file_name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Key files are readable by the owner only.
#[cfg(unix)]
fn restrict_permissions(file: &File, file_name: &str) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    if file_name.ends_with(".key") {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict_permissions(_file: &File, _file_name: &str) -> io::Result<()> {
    Ok(())
}

/// Makes a directory's entries (a rename) durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
