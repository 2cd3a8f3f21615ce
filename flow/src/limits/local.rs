//! `store: local` counters in proxy-wasm shared data: one value per
//! (limit, caller key) holding (window start, amount used), updated with
//! compare-and-swap so every worker VM of one Envoy counts exactly.
//!
//! Shared data creates a missing key unconditionally (a CAS only guards
//! an existing one), so two workers creating the same counter at once
//! could overwrite each other's first count. Counters are therefore
//! created under a lock value (itself updated by CAS; held only inside
//! one callback, taken over when older than a second), which also keeps
//! the number of counters exact: past [`MAX_LOCAL_KEYS`] new callers
//! share one overflow counter per limit (fail closed: they share one
//! budget, never get none). Memory: about 150 bytes per counter, at
//! most `MAX_LOCAL_KEYS` counters per Envoy (15 MB); a counter is
//! reused window after window, so it does not grow with time.

use crate::host::{Host, SharedWrite};

/// Most counters one Envoy keeps (every limit, every caller).
pub const MAX_LOCAL_KEYS: u64 = 100_000;

/// Key of the creation lock.
const LOCK_KEY: &str = "mcp_guard.rl.lock";
/// Key of the number of counters created.
const KEYS_KEY: &str = "mcp_guard.rl.keys";
/// CAS retries of one update before giving up (and refusing).
const MAX_TRIES: usize = 64;
/// Reads of a held lock before giving up (its holder is another
/// worker inside a few host calls).
const MAX_LOCK_SPINS: usize = 4_096;
/// A lock older than this was left by a VM that died holding it.
const LOCK_STALE_MS: u64 = 1_000;

/// A counter: the window it counts and what was used in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counter {
    start: u64,
    used: u64,
}

impl Counter {
    fn encode(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        let (a, b) = out.split_at_mut(8);
        a.copy_from_slice(&self.start.to_le_bytes());
        b.copy_from_slice(&self.used.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 16] = bytes.try_into().ok()?;
        let (a, b) = bytes.split_at(8);
        Some(Self {
            start: u64::from_le_bytes(a.try_into().ok()?),
            used: u64::from_le_bytes(b.try_into().ok()?),
        })
    }

    /// What was used in `window` (a counter of an older window is spent
    /// on nothing now).
    fn used_in(self, window: u64) -> u64 {
        if self.start == window {
            self.used
        } else {
            0
        }
    }
}

/// The store refused, or stayed contended past the retries: the caller
/// refuses (fail closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreError;

/// Where a counter stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Under the limit; `used` after this request.
    Under {
        /// Used in the window, this request included.
        used: u64,
    },
    /// At or over the limit: refuse.
    Over {
        /// Used in the window.
        used: u64,
    },
}

fn read(host: &mut impl Host, key: &str) -> Result<Option<(Counter, u32)>, StoreError> {
    match host.shared_value(key) {
        Ok(None) => Ok(None),
        Ok(Some((bytes, cas))) => match Counter::decode(&bytes) {
            // An existing value always has a version: without one a
            // write could not be conditional.
            Some(c) if cas != 0 => Ok(Some((c, cas))),
            _ => Err(StoreError),
        },
        Err(_) => Err(StoreError),
    }
}

fn read_u64(host: &mut impl Host, key: &str) -> Result<Option<(u64, u32)>, StoreError> {
    match host.shared_value(key) {
        Ok(None) => Ok(None),
        Ok(Some((bytes, cas))) => {
            let b: [u8; 8] = bytes.as_slice().try_into().map_err(|_| StoreError)?;
            Ok(Some((u64::from_le_bytes(b), cas)))
        }
        Err(_) => Err(StoreError),
    }
}

/// The overflow counter of a limit (`key` is one of its counters).
fn overflow_key(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((prefix, _)) => format!("{prefix}.overflow"),
        None => format!("{key}.overflow"),
    }
}

/// The key whose counter this caller uses: `key` once it exists, or the
/// limit's overflow counter when the store is full.
pub fn counter_key(host: &mut impl Host, key: &str) -> Result<String, StoreError> {
    if read(host, key)?.is_some() {
        return Ok(key.to_owned());
    }
    let now = host.now_ms().max(1);
    for _ in 0..MAX_LOCK_SPINS {
        let Some((held_at, cas)) = read_u64(host, LOCK_KEY)? else {
            // First use in this process: create the lock released.
            if host.set_shared_value(LOCK_KEY, &0u64.to_le_bytes(), 0) == SharedWrite::Failed {
                return Err(StoreError);
            }
            continue;
        };
        if held_at != 0 && now.saturating_sub(held_at) < LOCK_STALE_MS {
            continue;
        }
        match host.set_shared_value(LOCK_KEY, &now.to_le_bytes(), cas) {
            SharedWrite::Written => {
                let created = create_locked(host, key);
                // Released unconditionally: it is ours.
                let released = host.set_shared_value(LOCK_KEY, &0u64.to_le_bytes(), 0);
                if released != SharedWrite::Written {
                    return Err(StoreError);
                }
                return created;
            }
            SharedWrite::CasMismatch => continue,
            SharedWrite::Failed => return Err(StoreError),
        }
    }
    Err(StoreError)
}

/// Creates a counter while holding the lock.
fn create_locked(host: &mut impl Host, key: &str) -> Result<String, StoreError> {
    if read(host, key)?.is_some() {
        return Ok(key.to_owned());
    }
    let zero = Counter { start: 0, used: 0 }.encode();
    let count = read_u64(host, KEYS_KEY)?.map_or(0, |(n, _)| n);
    if count >= MAX_LOCAL_KEYS {
        let overflow = overflow_key(key);
        if read(host, &overflow)?.is_none()
            && host.set_shared_value(&overflow, &zero, 0) != SharedWrite::Written
        {
            return Err(StoreError);
        }
        return Ok(overflow);
    }
    if host.set_shared_value(key, &zero, 0) != SharedWrite::Written
        || host.set_shared_value(KEYS_KEY, &(count + 1).to_le_bytes(), 0) != SharedWrite::Written
    {
        return Err(StoreError);
    }
    Ok(key.to_owned())
}

/// What was used in `window` under `key` (read only).
pub fn peek(host: &mut impl Host, key: &str, window: u64) -> Result<u64, StoreError> {
    Ok(read(host, key)?.map_or(0, |(c, _)| c.used_in(window)))
}

/// Adds `amount` to the counter unless it is already at `limit` (a
/// request limit: `amount` 1; `limit` `None` always adds: a token
/// charge). `key` must exist ([`counter_key`]).
pub fn add(
    host: &mut impl Host,
    key: &str,
    window: u64,
    amount: u64,
    limit: Option<u64>,
) -> Result<Count, StoreError> {
    for _ in 0..MAX_TRIES {
        let Some((counter, cas)) = read(host, key)? else {
            return Err(StoreError);
        };
        let used = counter.used_in(window);
        if limit.is_some_and(|l| used >= l) {
            return Ok(Count::Over { used });
        }
        let next = Counter {
            start: window,
            used: used.saturating_add(amount),
        };
        match host.set_shared_value(key, &next.encode(), cas) {
            SharedWrite::Written => return Ok(Count::Under { used: next.used }),
            SharedWrite::CasMismatch => continue,
            SharedWrite::Failed => return Err(StoreError),
        }
    }
    Err(StoreError)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::memory::MemoryHost;

    #[test]
    fn counts_stop_at_the_limit_and_reset_with_the_window() {
        let mut h = MemoryHost::default();
        let key = counter_key(&mut h, "mcp_guard.rl.a.k1").unwrap();
        for n in 1..=3 {
            assert_eq!(
                add(&mut h, &key, 60, 1, Some(3)),
                Ok(Count::Under { used: n })
            );
        }
        assert_eq!(
            add(&mut h, &key, 60, 1, Some(3)),
            Ok(Count::Over { used: 3 })
        );
        assert_eq!(peek(&mut h, &key, 60), Ok(3));
        // The next window starts from nothing, in the same counter.
        assert_eq!(
            add(&mut h, &key, 120, 1, Some(3)),
            Ok(Count::Under { used: 1 })
        );
        assert_eq!(peek(&mut h, &key, 60), Ok(0));
    }

    #[test]
    fn a_full_store_puts_new_callers_in_one_overflow_counter() {
        let mut h = MemoryHost::default();
        h.set_shared_value(KEYS_KEY, &MAX_LOCAL_KEYS.to_le_bytes(), 0);
        let a = counter_key(&mut h, "mcp_guard.rl.a.k1").unwrap();
        let b = counter_key(&mut h, "mcp_guard.rl.a.k2").unwrap();
        assert_eq!(a, "mcp_guard.rl.a.overflow");
        assert_eq!(a, b);
        assert_eq!(add(&mut h, &a, 1, 1, Some(1)), Ok(Count::Under { used: 1 }));
        assert_eq!(add(&mut h, &b, 1, 1, Some(1)), Ok(Count::Over { used: 1 }));
    }

    #[test]
    fn corrupt_values_and_a_held_lock_fail_closed() {
        let mut h = MemoryHost::default();
        h.set_shared_value("mcp_guard.rl.a.k1", b"short", 0);
        assert_eq!(counter_key(&mut h, "mcp_guard.rl.a.k1"), Err(StoreError));
        // A lock held right now by another worker that never releases.
        h.now_ms = 10_000;
        h.set_shared_value(LOCK_KEY, &10_000u64.to_le_bytes(), 0);
        assert_eq!(counter_key(&mut h, "mcp_guard.rl.a.k2"), Err(StoreError));
        // Once stale, it is taken over.
        h.now_ms = 11_001;
        assert_eq!(
            counter_key(&mut h, "mcp_guard.rl.a.k2").as_deref(),
            Ok("mcp_guard.rl.a.k2")
        );
    }
}
