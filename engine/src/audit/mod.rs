//! The tamper-evident decision trail: every decision record a filter VM
//! writes is sealed into a hash chain ([`chain`]), so an edited, dropped,
//! inserted or reordered record is found by re-walking the chain.
//!
//! The chain alone proves nothing against someone who rewrites the whole
//! log from the edit onwards: that is what countersigned checkpoints (the
//! chain head sent off the proxy) are for.

pub mod chain;

pub use chain::{genesis, ChainHead, DecisionChain, HASH_MEMBER, TRAIL_VERSION};
