//! The service's signing keys: the current key, read from `--signing-key
//! FILE`, or kept in the data directory (generated on first start), or,
//! with neither, generated for this run only; and, during a rotation, the
//! next key from `--next-signing-key FILE`. Every version is signed with
//! both ([`SigningKeys`]), so filters trusting either verify it. The public
//! halves are logged at startup and published at `GET /v1/keys`, so
//! operators can pin them in filter configs.

use std::path::Path;

use mcp_guard_engine::signing::{self, KeyError, SigningKey, VerifyingKey};

use crate::disk;

/// Why no signing key could be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// The key file cannot be read or written.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file does not hold a 32-byte seed.
    #[error("key file {path}: {source}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        source: KeyError,
    },
}

/// Where the key came from, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `--signing-key FILE`.
    File,
    /// Read from the data directory.
    DataDir,
    /// Generated now and saved in the data directory.
    Generated,
    /// Generated now, kept in memory only.
    Ephemeral,
}

impl KeyOrigin {
    /// A word for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyOrigin::File => "file",
            KeyOrigin::DataDir => "data-dir",
            KeyOrigin::Generated => "generated",
            KeyOrigin::Ephemeral => "ephemeral",
        }
    }
}

/// A new random signing key from the operating system's generator.
///
/// # Panics
///
/// If the OS has no random source: nothing could be signed safely then.
pub fn generate() -> SigningKey {
    let mut seed = [0u8; 32];
    #[allow(clippy::expect_used)]
    getrandom::getrandom(&mut seed).expect("the operating system provides randomness");
    SigningKey::from_bytes(&seed)
}

/// Reads the key from `file` (a base64 or hex seed) if given; else from
/// the data directory, creating it there on first start; else a key for
/// this run only.
pub fn load(
    file: Option<&Path>,
    data: Option<&disk::Disk>,
) -> Result<(SigningKey, KeyOrigin), KeyFileError> {
    if let Some(file) = file {
        return read(file).map(|k| (k, KeyOrigin::File));
    }
    let Some(data) = data else {
        return Ok((generate(), KeyOrigin::Ephemeral));
    };
    let path = data.key_path();
    if path.exists() {
        return read(&path).map(|k| (k, KeyOrigin::DataDir));
    }
    let key = generate();
    let text = signing::seed_base64(&key) + "\n";
    let dir = path.parent().unwrap_or(data.root());
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    disk::write_atomic(dir, &file_name, text.as_bytes()).map_err(|source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok((key, KeyOrigin::Generated))
}

/// Reads a seed file (base64 or hex, surrounding whitespace ignored).
pub fn read(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    signing::signing_key_from_text(&text).map_err(|source| KeyFileError::Invalid {
        path: path.display().to_string(),
        source,
    })
}

/// The keys the service signs with: the current one and, while a rotation
/// is under way, the next one. Signing with both lets filters switch their
/// trust from the old key to the new at any time during the overlap.
#[derive(Debug, Clone)]
pub struct SigningKeys {
    current: SigningKey,
    next: Option<SigningKey>,
}

impl SigningKeys {
    /// Only a current key: no rotation under way.
    pub fn new(current: SigningKey) -> Self {
        Self {
            current,
            next: None,
        }
    }

    /// A current key and the key that will replace it. A next key equal to
    /// the current one is dropped (it would only repeat the signature).
    pub fn with_next(current: SigningKey, next: Option<SigningKey>) -> Self {
        let next = next.filter(|n| n.to_bytes() != current.to_bytes());
        Self { current, next }
    }

    /// The key that signs now.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// The key being rotated in, if any.
    pub fn next(&self) -> Option<&SigningKey> {
        self.next.as_ref()
    }

    /// The `x-bundle-signature` value for `signed`: one signature per key,
    /// current first.
    pub fn sign(&self, signed: &signing::Signed<'_>) -> String {
        let mut keys = vec![&self.current];
        keys.extend(self.next.as_ref());
        signing::sign(signed, &keys)
    }

    /// The public keys with their role (`current` or `next`), current
    /// first, as `GET /v1/keys` lists them.
    pub fn public(&self) -> Vec<(VerifyingKey, &'static str)> {
        let mut keys = vec![(self.current.verifying_key(), "current")];
        keys.extend(self.next.as_ref().map(|k| (k.verifying_key(), "next")));
        keys
    }
}
