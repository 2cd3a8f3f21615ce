//! The tamper-evident decision trail: every decision record a filter VM
//! writes is sealed into a hash chain ([`chain`]), so an edited, dropped,
//! inserted or reordered record is found by re-walking the chain
//! ([`verify`]).
//!
//! The chain alone proves nothing against someone who rewrites the whole
//! log from the edit onwards: that is what countersigned checkpoints
//! ([`checkpoint`], the chain head sent off the proxy and signed by the
//! control service) are for.

pub mod chain;
pub mod checkpoint;
pub mod query;
pub mod record;
pub mod verify;

pub use chain::{genesis, ChainHead, DecisionChain, HASH_MEMBER, TRAIL_VERSION};
pub use checkpoint::{Checkpoint, Countersigned};
pub use verify::{
    verify, verify_with, verify_with_options, Finding, FindingKind, LogFile, Options, Report,
};
