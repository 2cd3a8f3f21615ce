//! Heap held by a compiled policy as bundles grow, measured with a
//! counting global allocator: bytes `Policy::compile` leaves allocated
//! (what every worker's VM keeps for as long as the bundle is active) and
//! its peak over that (what a wasm linear memory grows to and never
//! returns). One test per binary, so no other thread allocates meanwhile.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use mcp_guard_engine::Policy;
use serde_json::{json, Value};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(live, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size >= layout.size() {
            let live = LIVE.fetch_add(new_size - layout.size(), Ordering::Relaxed)
                + (new_size - layout.size());
            PEAK.fetch_max(live, Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A large real-looking bundle: per-tool, per-model, per-path and prefix
/// rules with role and tenant conditions, and a few catch-all denials.
fn bundle(rules: usize) -> Vec<u8> {
    let mut list: Vec<Value> = vec![
        json!({"id": "deny-suspended", "effect": "deny", "when": {"claims": [{"claim": "suspended", "equals": true}]}}),
    ];
    list.extend((0..rules).map(|i| {
        let role = format!("role-{}", i % 50);
        match i % 4 {
            0 => json!({"id": format!("tool-{i}"), "effect": "allow", "description": "per-tool access",
                "when": {"methods": ["POST"], "path": {"exact": "/mcp"}, "mcp": {"tools": [format!("tool_{i}")]},
                         "claims": [{"claim": "roles", "contains_any": [role]}]}}),
            1 => json!({"id": format!("model-{i}"), "effect": "allow",
                "when": {"methods": ["POST"], "path": {"exact": "/v1/chat/completions"}, "models": [format!("model-{i}")],
                         "claims": [{"claim": "roles", "contains_any": [role]}]}}),
            2 => json!({"id": format!("path-{i}"), "effect": "allow",
                "when": {"methods": ["GET"], "path": {"exact": format!("/api/r{i}")}}}),
            _ => json!({"id": format!("prefix-{i}"), "effect": "allow",
                "when": {"path": {"prefix": format!("/svc{i}/")}, "claims": [{"claim": "tenant", "equals": "acme"}]}}),
        }
    }));
    serde_json::to_vec(&json!({"name": "scale", "version": 1, "rules": list})).unwrap_or_default()
}

/// (bytes retained, peak bytes over the start) of compiling `text`.
fn measure(text: &[u8]) -> (usize, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let policy = Policy::compile(text);
    let retained = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert!(policy.is_ok(), "the scale bundle compiles");
    drop(policy);
    (retained, peak)
}

#[test]
fn compiled_policy_heap_stays_compact() {
    let mut rows = Vec::new();
    for n in [100, 10_000] {
        let text = bundle(n);
        rows.push((n, text.len(), measure(&text)));
    }
    for (n, text, (retained, peak)) in &rows {
        eprintln!(
            "{n:>6} rules: bundle text {text:>9} B, compiled {retained:>10} B retained ({} B/rule), peak {peak:>10} B",
            retained / n
        );
    }
    let (Some(small), Some(large)) = (rows.first(), rows.last()) else {
        unreachable!("two sizes measured")
    };
    let growth = large.2 .0 - small.2 .0;
    eprintln!("10,000 over 100 rules: +{growth} B retained");
    // Was 15.5 MB (1,565 B a rule: every rule held twice, lists with
    // doubling slack, index keys cloned); now ~590 B a rule.
    assert!(growth < 8 << 20, "10,000 rules retain +{growth} B");
    assert!(
        large.2 .1 < 12 << 20,
        "compiling 10,000 rules peaks at {} B",
        large.2 .1
    );
}
