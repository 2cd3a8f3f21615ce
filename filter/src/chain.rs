//! This VM's decision chain, shared by the root context (checkpoints) and
//! every stream (sealing). It starts with the first stream Envoy logs:
//! Envoy 1.40 answers `node.id` in a stream context but not in the root
//! context's configure callback, and the chain is named after the node.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::rc::Rc;

use mcp_guard_engine::audit::{ChainHead, DecisionChain};

use crate::host;

/// The chain slot one VM shares between its contexts.
pub type SharedChain = Rc<RefCell<ChainSlot>>;

/// A chain not started yet, or started.
#[derive(Debug, Default)]
pub struct ChainSlot {
    /// `control.instance_id`, which names the chain when set.
    pub instance: Option<String>,
    chain: Option<DecisionChain>,
}

impl ChainSlot {
    /// A slot for a VM whose configuration names it `instance` (or not).
    pub fn shared(instance: Option<String>) -> SharedChain {
        Rc::new(RefCell::new(Self {
            instance,
            chain: None,
        }))
    }

    /// The chain, started on first use: id = instance (configured, else
    /// Envoy's node id, else `envoy`) / boot nonce, so two VMs or two boots
    /// never share a chain. Call from a stream context.
    pub fn chain(&mut self) -> &mut DecisionChain {
        let instance = self.instance.clone();
        self.chain.get_or_insert_with(|| {
            let node = instance
                .or_else(node_id)
                .unwrap_or_else(|| "envoy".to_owned());
            let nonce = RandomState::new().hash_one((host::now_ms(), &node));
            DecisionChain::new(&mcp_guard_engine::audit::chain::chain_id(&node, nonce))
        })
    }

    /// Where the chain stands, once started.
    pub fn head(&self) -> Option<&ChainHead> {
        self.chain.as_ref().map(DecisionChain::head)
    }
}

/// Envoy's node id (`xds.node.id`, the attribute's name since the `xds`
/// attributes; `node.id` before), when set.
pub fn node_id() -> Option<String> {
    [&["xds", "node", "id"][..], &["node", "id"][..]]
        .into_iter()
        .find_map(|path| host::property(path).ok().flatten())
        .and_then(|id| String::from_utf8(id).ok())
        .filter(|id| !id.is_empty())
}
