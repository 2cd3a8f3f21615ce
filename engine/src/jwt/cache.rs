//! A bounded cache of verified tokens, so a client sending the same bearer
//! token on every request pays for one signature check, not one per request.
//!
//! Entries are keyed by the SHA-256 digest of the token: the cache never
//! stores or compares token text (a lookup compares 32-byte digests, which
//! reveal nothing about the token), and a memory dump of the filter does not
//! yield replayable credentials. Only verified tokens are inserted, so an
//! attacker cannot fill the cache or steer bucket placement without valid
//! signed tokens.
//!
//! Eviction is CLOCK (second chance): each hit sets a reference bit; when
//! full, a hand sweeps the slots, evicting the first expired or
//! unreferenced entry and clearing the bits it passes. That approximates
//! LRU with O(1) amortised work per insertion and no linked list.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};

use sha2::{Digest as _, Sha256};

use crate::claims::Claims;

/// A token's SHA-256 digest.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TokenDigest([u8; 32]);

impl TokenDigest {
    fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }
}

impl Hash for TokenDigest {
    /// The digest is already uniformly distributed; its first 8 bytes are a
    /// perfectly good table hash, with no need for SipHash (or for a random
    /// seed, which a wasm sandbox may not provide).
    fn hash<H: Hasher>(&self, state: &mut H) {
        let mut head = [0u8; 8];
        head.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(head));
    }
}

/// Passes [`TokenDigest`]'s precomputed hash through unchanged.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Slot {
    digest: TokenDigest,
    claims: Claims,
    exp: u64,
    referenced: bool,
}

/// Verified claims by token digest, bounded, never serving an expired entry.
/// Tied to one [`Verifier`](super::Verifier): make a new cache with each new
/// bundle (see [`Verifier::new_cache`](super::Verifier::new_cache)).
pub struct TokenCache {
    capacity: usize,
    index: HashMap<TokenDigest, usize, BuildHasherDefault<PassThrough>>,
    slots: Vec<Slot>,
    hand: usize,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("capacity", &self.capacity)
            .field("len", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    /// A cache holding at most `capacity` tokens; 0 disables caching.
    /// Memory is allocated as entries arrive, not up front.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            index: HashMap::default(),
            slots: Vec::new(),
            hand: 0,
        }
    }

    /// Maximum number of entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Current number of entries (expired ones included until touched).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the cache holds no entries.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.hand = 0;
    }

    /// The claims cached for `token`, unless absent or expired at `now`
    /// (an expired entry is evicted on the spot).
    pub fn get(&mut self, token: &str, now: u64) -> Option<Claims> {
        let digest = TokenDigest::of(token);
        let at = *self.index.get(&digest)?;
        if now >= self.slots.get(at)?.exp {
            self.remove_at(at);
            return None;
        }
        let slot = self.slots.get_mut(at)?;
        slot.referenced = true;
        Some(slot.claims.clone())
    }

    /// Remembers the claims of a token verified at `now` that expires at
    /// `exp`. Tokens already expired (e.g. accepted within clock skew) are
    /// not cached; when full, one entry is evicted (CLOCK).
    pub fn insert(&mut self, token: &str, claims: Claims, exp: u64, now: u64) {
        if self.capacity == 0 || now >= exp {
            return;
        }
        let digest = TokenDigest::of(token);
        let slot = Slot {
            digest,
            claims,
            exp,
            referenced: false,
        };
        if let Some(entry) = self
            .index
            .get(&digest)
            .and_then(|&at| self.slots.get_mut(at))
        {
            *entry = slot;
            return;
        }
        if self.slots.len() < self.capacity {
            self.index.insert(digest, self.slots.len());
            self.slots.push(slot);
            return;
        }
        let victim = self.victim(now);
        if let Some(entry) = self.slots.get_mut(victim) {
            self.index.remove(&entry.digest);
            self.index.insert(digest, victim);
            *entry = slot;
        }
    }

    /// Advances the clock hand to the slot to reuse. Terminates within two
    /// sweeps: the first clears every reference bit it passes.
    fn victim(&mut self, now: u64) -> usize {
        let len = self.slots.len();
        for _ in 0..2 * len {
            let at = self.hand % len;
            self.hand = (at + 1) % len;
            let Some(slot) = self.slots.get_mut(at) else {
                return at;
            };
            if now >= slot.exp || !slot.referenced {
                return at;
            }
            slot.referenced = false;
        }
        self.hand % len
    }

    fn remove_at(&mut self, at: usize) {
        let removed = self.slots.swap_remove(at);
        self.index.remove(&removed.digest);
        if let Some(moved) = self.slots.get(at) {
            self.index.insert(moved.digest, at);
        }
        if self.hand >= self.slots.len() {
            self.hand = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(n: u64) -> Claims {
        match json!({ "n": n }) {
            serde_json::Value::Object(m) => Claims::new(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn hit_miss_and_expiry() {
        let mut c = TokenCache::new(4);
        c.insert("t1", claims(1), 100, 10);
        assert_eq!(c.get("t1", 99), Some(claims(1)));
        assert_eq!(c.get("t2", 50), None);
        assert_eq!(c.get("t1", 100), None, "expired at exp");
        assert!(c.is_empty(), "expired entry evicted");
        c.insert("old", claims(2), 10, 10);
        assert!(c.is_empty(), "already expired tokens are not cached");
    }

    #[test]
    fn zero_capacity_disables() {
        let mut c = TokenCache::new(0);
        c.insert("t", claims(1), 100, 0);
        assert_eq!(c.get("t", 0), None);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn bounded_and_second_chance() {
        let mut c = TokenCache::new(3);
        for i in 0..3 {
            c.insert(&format!("t{i}"), claims(i), 1000, 0);
        }
        // t0 and t2 are referenced; t1 is the one to go.
        assert!(c.get("t0", 1).is_some());
        assert!(c.get("t2", 1).is_some());
        c.insert("t3", claims(3), 1000, 1);
        assert_eq!(c.len(), 3);
        assert!(c.get("t1", 1).is_none());
        for t in ["t0", "t2", "t3"] {
            assert!(c.get(t, 1).is_some(), "{t}");
        }
        for i in 4..100 {
            c.insert(&format!("t{i}"), claims(i), 1000, 2);
            assert!(c.len() <= 3);
        }
    }

    #[test]
    fn expired_entries_are_evicted_first_and_index_stays_consistent() {
        let mut c = TokenCache::new(3);
        c.insert("a", claims(1), 1000, 0);
        c.insert("b", claims(2), 5, 0);
        c.insert("c", claims(3), 1000, 0);
        for t in ["a", "c"] {
            assert!(c.get(t, 1).is_some());
        }
        c.insert("d", claims(4), 1000, 10);
        assert!(c.get("a", 10).is_some());
        assert!(c.get("c", 10).is_some());
        assert!(c.get("d", 10).is_some());
        // Removing from the middle keeps the moved entry reachable.
        let mut c = TokenCache::new(5);
        c.insert("a", claims(1), 1000, 0);
        c.insert("b", claims(2), 20, 0);
        c.insert("c", claims(3), 1000, 0);
        assert_eq!(c.get("b", 30), None);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("c", 30), Some(claims(3)));
        assert_eq!(c.get("a", 30), Some(claims(1)));
    }

    #[test]
    fn reinsert_updates() {
        let mut c = TokenCache::new(2);
        c.insert("t", claims(1), 100, 0);
        c.insert("t", claims(2), 200, 0);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get("t", 150), Some(claims(2)));
    }
}
