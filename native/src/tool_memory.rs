//! The digests upstreams last advertised for pinned tools, process-wide:
//! every Envoy worker thread (and every filter configuration) of this
//! process reads and writes the same map, as the wasm filter's shared data.
//!
//! Only pinned tools are stored (the flow never remembers an unpinned
//! name; bundles pin at most [`mcp_guard_engine::pins::MAX_PINNED_TOOLS`]),
//! so an upstream flooding `tools/list` with names adds nothing. The map
//! is still bounded ([`MAX_ENTRIES`]) against bundles that change their
//! pinned names over a long life: when full, the smallest key goes (keys
//! are hashes, so that is an arbitrary old entry; losing one makes that
//! tool "unobserved" until it is listed again).

use std::collections::BTreeMap;
use std::sync::Mutex;

use mcp_guard_engine::pins::ToolDigest;

/// Most digests remembered at once.
pub const MAX_ENTRIES: usize = 16 * 1024;

static MEMORY: Mutex<BTreeMap<String, ToolDigest>> = Mutex::new(BTreeMap::new());

fn with<T>(f: impl FnOnce(&mut BTreeMap<String, ToolDigest>) -> T) -> T {
    // A panic while holding the lock cannot leave the map half-written
    // (single inserts and removes), so a poisoned lock is still usable.
    let mut map = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut map)
}

/// The digest last remembered under `key`.
pub fn get(key: &str) -> Option<ToolDigest> {
    with(|m| m.get(key).copied())
}

/// Remembers `digest` under `key`, evicting one entry when full.
pub fn set(key: &str, digest: ToolDigest) {
    with(|m| {
        if !m.contains_key(key) && m.len() >= MAX_ENTRIES {
            m.pop_first();
        }
        m.insert(key.to_owned(), digest);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_is_bounded_and_keeps_the_newest() {
        for i in 0..MAX_ENTRIES + 10 {
            set(&format!("k{i:08}"), ToolDigest([1; 32]));
        }
        assert_eq!(with(|m| m.len()), MAX_ENTRIES);
        set("k-last", ToolDigest([2; 32]));
        assert_eq!(get("k-last"), Some(ToolDigest([2; 32])));
        assert_eq!(with(|m| m.len()), MAX_ENTRIES);
        set("k-last", ToolDigest([3; 32]));
        assert_eq!(get("k-last"), Some(ToolDigest([3; 32])));
    }
}
