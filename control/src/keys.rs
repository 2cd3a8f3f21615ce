//! The service's signing key: read from `--signing-key FILE`, or kept in
//! the data directory (generated on first start), or, with neither,
//! generated for this run only. Whatever its origin, the public half is
//! logged at startup and published at `GET /v1/keys`, so operators can pin
//! it in filter configs.

use std::path::Path;

use mcp_guard_engine::signing::{self, KeyError, SigningKey};

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

fn read(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    signing::signing_key_from_text(&text).map_err(|source| KeyFileError::Invalid {
        path: path.display().to_string(),
        source,
    })
}
