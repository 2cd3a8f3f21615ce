//! The checkpoint book: chain heads sent by proxies, countersigned with the
//! service's checkpoint key and kept append-only, so a decision log
//! rewritten on the proxy no longer matches what the service vouched for.
//!
//! Posts are unauthenticated (proxies hold no secret), so the book is
//! bounded: a global token bucket, a small strict body (see
//! [`Checkpoint::parse`]), a cap on stored checkpoints, and per chain a
//! sequence number that must increase. What is countersigned is never
//! replaced: a different hash for a countersigned `(chain, seq)`, or a seq
//! at or below the chain's head, is refused and kept as a conflict, the
//! evidence that two parties claim the same chain.
//!
//! ```text
//! DIR/checkpoints/checkpoints.jsonl   one countersigned checkpoint a line (fsync'd)
//! DIR/checkpoints/conflicts.jsonl     one refused claim a line (fsync'd)
//! DIR/keys/checkpoint.key             the checkpoint signing seed, 0600
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use mcp_guard_engine::audit::checkpoint::{Checkpoint, Countersigned};
use mcp_guard_engine::signing::{self, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::disk::{self, Disk};
use crate::keys::{self, KeyFileError, KeyOrigin};
use crate::rate::TokenBucket;

/// File of countersigned checkpoints, under `DIR/checkpoints/`.
pub const CHECKPOINTS_FILE: &str = "checkpoints.jsonl";
/// File of refused claims, under `DIR/checkpoints/`.
pub const CONFLICTS_FILE: &str = "conflicts.jsonl";
/// The generated checkpoint key, under `DIR/keys/`.
pub const KEY_FILE: &str = "checkpoint.key";

/// Bounds of the book.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckpointLimits {
    /// Checkpoints accepted per second, on average, from everyone.
    pub per_second: f64,
    /// Accepted in a burst.
    pub burst: f64,
    /// Countersigned checkpoints kept; beyond, posts are refused (archive
    /// the file and restart to make room).
    pub max_checkpoints: usize,
    /// Conflicts kept; beyond, further conflicts are only counted.
    pub max_conflicts: usize,
}

impl Default for CheckpointLimits {
    fn default() -> Self {
        Self {
            per_second: 50.0,
            burst: 200.0,
            max_checkpoints: 1_000_000,
            max_conflicts: 10_000,
        }
    }
}

/// A refused claim, kept as evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// What was posted.
    pub chain: String,
    /// Its seq.
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// When it arrived (ms since the epoch).
    pub received_at: u64,
    /// `different_hash` (another hash is countersigned for this seq) or
    /// `stale_seq` (the chain's countersigned head is already further).
    pub reason: String,
    /// The countersigned hash at this seq, if any.
    pub countersigned_hash: Option<String>,
    /// The chain's countersigned head seq when refused.
    pub head_seq: u64,
}

/// What a post achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Newly countersigned and stored.
    New(Countersigned),
    /// The same checkpoint again: the stored countersignature.
    Repeat(Countersigned),
}

/// Why a post was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Over the rate limit.
    #[error("too many checkpoints")]
    RateLimited,
    /// Conflicts with what is countersigned (kept as a conflict).
    #[error("conflicts with the countersigned chain: chain {chain} seq {seq} ({reason})", chain = .0.chain, seq = .0.seq, reason = .0.reason)]
    Conflict(Box<Conflict>),
    /// The book is full.
    #[error("the checkpoint book is full")]
    Full,
    /// The append failed: nothing was countersigned.
    #[error("cannot store the checkpoint: {0}")]
    Io(String),
}

#[derive(Debug)]
struct State {
    all: Vec<Countersigned>,
    by_chain: HashMap<String, BTreeMap<u64, usize>>,
    conflicts: Vec<Conflict>,
    conflicts_dropped: u64,
    file: Option<File>,
    conflict_file: Option<File>,
}

/// The countersigned checkpoints of every chain, and the conflicts.
#[derive(Debug)]
pub struct CheckpointBook {
    key: SigningKey,
    limits: CheckpointLimits,
    state: Mutex<State>,
    bucket: TokenBucket,
}

/// Why the book could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// A file cannot be read or created.
    #[error("checkpoints {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// A stored line is not a countersigned checkpoint (other than a torn
    /// last line).
    #[error("checkpoints {path}:{line}: {why}")]
    Corrupt {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        why: String,
    },
}

/// The checkpoint key: `--checkpoint-key FILE`, else `DIR/keys/checkpoint.key`
/// (generated, 0600, on first start), else a key for this run only.
pub fn load_key(
    file: Option<&Path>,
    data: Option<&Disk>,
) -> Result<(SigningKey, KeyOrigin), KeyFileError> {
    if let Some(file) = file {
        return keys::read(file).map(|k| (k, KeyOrigin::File));
    }
    let Some(data) = data else {
        return Ok((keys::generate(), KeyOrigin::Ephemeral));
    };
    let dir = data.root().join("keys");
    let path = dir.join(KEY_FILE);
    if path.exists() {
        return keys::read(&path).map(|k| (k, KeyOrigin::DataDir));
    }
    let key = keys::generate();
    let text = signing::seed_base64(&key) + "\n";
    disk::write_atomic(&dir, KEY_FILE, text.as_bytes()).map_err(|source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    Ok((key, KeyOrigin::Generated))
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OpenError + '_ {
    move |source| OpenError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads JSON lines; a torn last line (a crash mid-append) is dropped,
/// anything else unreadable is an error.
fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, OpenError> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(path)(e)),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if !complete && i + 1 == lines.len() => {}
            Err(e) => {
                return Err(OpenError::Corrupt {
                    path: path.display().to_string(),
                    line: i + 1,
                    why: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// Opens a file for appending, cutting a torn last line first.
fn open_append(path: &Path) -> io::Result<File> {
    if let Ok(text) = fs::read(path) {
        if !text.is_empty() && !text.ends_with(b"\n") {
            let keep = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let f = OpenOptions::new().write(true).open(path)?;
            f.set_len(keep as u64)?;
            f.sync_all()?;
        }
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl CheckpointBook {
    /// A book kept in memory only.
    pub fn in_memory(key: SigningKey, limits: CheckpointLimits) -> Self {
        Self::from_parts(key, limits, Vec::new(), Vec::new(), None, None)
    }

    /// Opens (creating) the book under `DIR/checkpoints/`, loading what a
    /// previous run stored.
    pub fn open(data: &Path, key: SigningKey, limits: CheckpointLimits) -> Result<Self, OpenError> {
        let dir = data.join("checkpoints");
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path: PathBuf = dir.join(CHECKPOINTS_FILE);
        let conflict_path: PathBuf = dir.join(CONFLICTS_FILE);
        let all: Vec<Countersigned> = read_lines(&path)?;
        let conflicts: Vec<Conflict> = read_lines(&conflict_path)?;
        let file = open_append(&path).map_err(io_err(&path))?;
        let conflict_file = open_append(&conflict_path).map_err(io_err(&conflict_path))?;
        Ok(Self::from_parts(
            key,
            limits,
            all,
            conflicts,
            Some(file),
            Some(conflict_file),
        ))
    }

    fn from_parts(
        key: SigningKey,
        limits: CheckpointLimits,
        all: Vec<Countersigned>,
        conflicts: Vec<Conflict>,
        file: Option<File>,
        conflict_file: Option<File>,
    ) -> Self {
        let mut by_chain: HashMap<String, BTreeMap<u64, usize>> = HashMap::new();
        for (i, c) in all.iter().enumerate() {
            by_chain
                .entry(c.chain.clone())
                .or_default()
                .insert(c.seq, i);
        }
        Self {
            key,
            limits,
            state: Mutex::new(State {
                all,
                by_chain,
                conflicts,
                conflicts_dropped: 0,
                file,
                conflict_file,
            }),
            bucket: TokenBucket::new(limits.per_second, limits.burst),
        }
    }

    /// The public half of the checkpoint key.
    pub fn public_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    fn admit(&self) -> bool {
        self.bucket.try_take()
    }

    /// Countersigns `cp` (already parsed and checked) received at `now_ms`,
    /// after it is durably appended; or says why not.
    pub fn submit(&self, cp: &Checkpoint, now_ms: u64) -> Result<Accepted, Refused> {
        if !self.admit() {
            return Err(Refused::RateLimited);
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let chain = state.by_chain.get(&cp.chain);
        let head = chain
            .and_then(|m| m.keys().next_back().copied())
            .unwrap_or(0);
        let existing = chain
            .and_then(|m| m.get(&cp.seq))
            .and_then(|&i| state.all.get(i))
            .cloned();
        if let Some(existing) = existing {
            if existing.hash == cp.hash {
                return Ok(Accepted::Repeat(existing));
            }
        }
        if cp.seq <= head {
            let countersigned_hash = chain
                .and_then(|m| m.get(&cp.seq))
                .and_then(|&i| state.all.get(i))
                .map(|c| c.hash.clone());
            let conflict = Conflict {
                chain: cp.chain.clone(),
                seq: cp.seq,
                hash: cp.hash.clone(),
                received_at: now_ms,
                reason: if countersigned_hash.is_some() {
                    "different_hash"
                } else {
                    "stale_seq"
                }
                .into(),
                countersigned_hash,
                head_seq: head,
            };
            if state.conflicts.len() < self.limits.max_conflicts {
                if let Some(f) = state.conflict_file.as_mut() {
                    // Evidence, best effort: the refusal stands either way.
                    let _ = append(f, &conflict);
                }
                state.conflicts.push(conflict.clone());
            } else {
                state.conflicts_dropped += 1;
            }
            return Err(Refused::Conflict(Box::new(conflict)));
        }
        if state.all.len() >= self.limits.max_checkpoints {
            return Err(Refused::Full);
        }
        let signed = cp.countersign(now_ms, &self.key);
        if let Some(f) = state.file.as_mut() {
            append(f, &signed).map_err(|e| Refused::Io(e.to_string()))?;
        }
        let i = state.all.len();
        state.all.push(signed.clone());
        state
            .by_chain
            .entry(cp.chain.clone())
            .or_default()
            .insert(cp.seq, i);
        Ok(Accepted::New(signed))
    }

    /// Countersigned checkpoints, in the order received; of one chain only
    /// when `chain` is given.
    pub fn list(&self, chain: Option<&str>) -> Vec<Countersigned> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match chain {
            None => state.all.clone(),
            Some(c) => state
                .by_chain
                .get(c)
                .map(|m| {
                    m.values()
                        .filter_map(|&i| state.all.get(i))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Conflicts kept, of one chain when given, and how many were not kept.
    pub fn conflicts(&self, chain: Option<&str>) -> (Vec<Conflict>, u64) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let list = state
            .conflicts
            .iter()
            .filter(|c| chain.is_none_or(|want| c.chain == want))
            .cloned()
            .collect();
        (list, state.conflicts_dropped)
    }
}

/// One JSON line, written and fsync'd.
fn append<T: Serialize>(file: &mut File, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)?;
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(chain: &str, seq: u64, fill: char) -> Checkpoint {
        Checkpoint {
            chain: chain.into(),
            seq,
            hash: fill.to_string().repeat(64),
        }
    }

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[3u8; 32])
    }

    #[test]
    fn countersigns_repeats_and_refuses_conflicts() {
        let book = CheckpointBook::in_memory(key(), CheckpointLimits::default());
        let Ok(Accepted::New(first)) = book.submit(&cp("a", 5, 'a'), 10) else {
            panic!("accepted")
        };
        assert!(first.verify(&[key().verifying_key()]).is_ok());
        assert_eq!(first.received_at, 10);
        assert_eq!(
            book.submit(&cp("a", 5, 'a'), 11),
            Ok(Accepted::Repeat(first.clone()))
        );
        let Err(Refused::Conflict(c)) = book.submit(&cp("a", 5, 'b'), 12) else {
            panic!("conflict")
        };
        assert_eq!(c.reason, "different_hash");
        assert_eq!(c.countersigned_hash.as_deref(), Some(first.hash.as_str()));
        let Err(Refused::Conflict(c)) = book.submit(&cp("a", 4, 'c'), 13) else {
            panic!("stale")
        };
        assert_eq!((c.reason.as_str(), c.head_seq), ("stale_seq", 5));
        assert!(matches!(
            book.submit(&cp("a", 6, 'd'), 14),
            Ok(Accepted::New(_))
        ));
        assert!(matches!(
            book.submit(&cp("b", 1, 'd'), 14),
            Ok(Accepted::New(_))
        ));
        assert_eq!(book.list(Some("a")).len(), 2);
        assert_eq!(book.list(None).len(), 3);
        assert_eq!(book.conflicts(Some("a")).0.len(), 2);
        assert!(book.conflicts(Some("b")).0.is_empty());
    }

    #[test]
    fn a_forger_racing_ahead_leaves_conflicts_not_silence() {
        // Posts are unauthenticated: someone who read the chain id in a
        // log posts a fabricated head far ahead. The proxy's genuine
        // checkpoints below it are refused, but every refusal is kept.
        let book = CheckpointBook::in_memory(key(), CheckpointLimits::default());
        assert!(book.submit(&cp("p/w0/n", 100, 'f'), 1).is_ok());
        for seq in [10, 50, 100] {
            assert!(matches!(
                book.submit(&cp("p/w0/n", seq, 'a'), 2),
                Err(Refused::Conflict(_))
            ));
        }
        let (conflicts, _) = book.conflicts(Some("p/w0/n"));
        let reasons: Vec<&str> = conflicts.iter().map(|c| c.reason.as_str()).collect();
        assert_eq!(reasons, ["stale_seq", "stale_seq", "different_hash"]);
        // Past the forged seq the genuine chain is countersigned again.
        assert!(matches!(
            book.submit(&cp("p/w0/n", 101, 'a'), 3),
            Ok(Accepted::New(_))
        ));
    }

    #[test]
    fn bounded() {
        let book = CheckpointBook::in_memory(
            key(),
            CheckpointLimits {
                per_second: 0.001,
                burst: 3.0,
                max_checkpoints: 2,
                max_conflicts: 0,
            },
        );
        assert!(book.submit(&cp("a", 1, 'a'), 1).is_ok());
        assert!(book.submit(&cp("a", 2, 'a'), 1).is_ok());
        assert_eq!(book.submit(&cp("a", 3, 'a'), 1), Err(Refused::Full));
        assert_eq!(book.submit(&cp("a", 4, 'a'), 1), Err(Refused::RateLimited));
    }

    #[test]
    fn survives_a_restart_and_a_torn_line() {
        let dir = std::env::temp_dir().join(format!("mcpg-cp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        {
            let book =
                CheckpointBook::open(&dir, key(), CheckpointLimits::default()).expect("opens");
            book.submit(&cp("a", 1, 'a'), 1).expect("stored");
            book.submit(&cp("a", 2, 'b'), 2).expect("stored");
            let _ = book.submit(&cp("a", 2, 'c'), 3);
        }
        // A crash mid-append leaves a torn line.
        let path = dir.join("checkpoints").join(CHECKPOINTS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"chain\":\"a\",\"se").expect("write");
        drop(f);
        let book = CheckpointBook::open(&dir, key(), CheckpointLimits::default()).expect("reopens");
        assert_eq!(book.list(Some("a")).len(), 2);
        assert_eq!(book.conflicts(None).0.len(), 1);
        assert!(matches!(
            book.submit(&cp("a", 2, 'z'), 4),
            Err(Refused::Conflict(_))
        ));
        assert!(matches!(
            book.submit(&cp("a", 3, 'z'), 5),
            Ok(Accepted::New(_))
        ));
        drop(book);
        let text = fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 3, "torn line cut, new line appended");
        // A corrupt line in the middle is an error, not silently skipped.
        fs::write(&path, format!("garbage\n{text}")).expect("write");
        assert!(matches!(
            CheckpointBook::open(&dir, key(), CheckpointLimits::default()),
            Err(OpenError::Corrupt { line: 1, .. })
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
