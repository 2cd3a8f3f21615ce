//! The decision chains of the native module: one per Envoy worker thread
//! (the analogue of one per wasm VM), so records are sealed in the order
//! that worker's access log writes them. A chain id is the instance name
//! and a nonce drawn when the thread's chain starts.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};

use mcp_guard_engine::audit::{ChainHead, DecisionChain};

thread_local! {
    static CHAIN: RefCell<Option<DecisionChain>> = const { RefCell::new(None) };
}

/// Latest head of every chain of this process, for checkpoints (sent from
/// the main thread, which owns no chain).
static HEADS: Mutex<BTreeMap<String, ChainHead>> = Mutex::new(BTreeMap::new());

/// Runs `f` with this thread's chain, started on first use under `node`.
pub fn with_chain<T>(node: &str, f: impl FnOnce(&mut DecisionChain) -> T) -> T {
    CHAIN.with(|cell| {
        let mut slot = cell.borrow_mut();
        let chain = slot.get_or_insert_with(|| {
            let nonce = RandomState::new().hash_one((node, std::process::id()));
            DecisionChain::new(&mcp_guard_engine::audit::chain::chain_id(node, nonce))
        });
        let out = f(chain);
        let head = chain.head().clone();
        HEADS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(head.chain.clone(), head);
        out
    })
}

/// The current head of every chain (checkpoints).
pub fn heads() -> Vec<ChainHead> {
    HEADS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .values()
        .cloned()
        .collect()
}
