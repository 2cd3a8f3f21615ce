//! The policy an exchange runs under, with what the proxy keeps per policy.

use std::cell::RefCell;

use mcp_guard_engine::jwt::TokenCache;
use mcp_guard_engine::Policy;

/// A compiled bundle plus what identifies the version it came from.
pub struct ActivePolicy {
    /// The compiled policy (rules, verifier, scanner).
    pub policy: Policy,
    /// ETag the control service gave it, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// Tokens this VM verified under this policy's issuers (never shared
    /// across bundles: a new bundle may trust other keys).
    pub token_cache: RefCell<TokenCache>,
}

impl ActivePolicy {
    /// Wraps a compiled policy with an empty token cache sized by its
    /// verifier (none without in-filter verification).
    pub fn new(policy: Policy, etag: Option<String>) -> Self {
        let token_cache = policy
            .verifier()
            .map_or_else(|| TokenCache::new(0), |v| v.new_cache());
        Self {
            policy,
            etag,
            token_cache: RefCell::new(token_cache),
        }
    }
}
