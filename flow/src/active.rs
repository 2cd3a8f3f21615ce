//! The policy an exchange runs under, with what the proxy keeps per policy.

use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use mcp_guard_engine::jwt::TokenCache;
use mcp_guard_engine::Policy;

use crate::token_exchange::ExchangeCache;

/// A compiled bundle plus what identifies the version it came from.
pub struct ActivePolicy {
    /// The compiled policy (rules, verifier, scanner).
    pub policy: Policy,
    /// ETag the control service gave it, sent back as `If-None-Match`.
    pub etag: Option<String>,
    /// Tokens verified under this policy's issuers (never shared across
    /// bundles: a new bundle may trust other keys). Behind a mutex so the
    /// native module can share one policy across Envoy's worker threads;
    /// the wasm filter (one VM per worker) never contends for it.
    token_cache: Mutex<TokenCache>,
    /// Tokens issued by RFC 8693 exchanges under this policy (a new
    /// bundle may name another identity provider or audience).
    exchange_cache: Mutex<ExchangeCache>,
    /// The rules as the request's headers alone settle them
    /// ([`crate::line_policy`]), built the first time a host that does
    /// not hold headers needs it.
    line_policy: OnceLock<Option<Policy>>,
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
            token_cache: Mutex::new(token_cache),
            exchange_cache: Mutex::new(ExchangeCache::default()),
            line_policy: OnceLock::new(),
        }
    }
}

impl ActivePolicy {
    /// The token cache, locked. A poisoned lock is taken over: the cache
    /// holds only verification results, each complete when inserted.
    pub fn token_cache(&self) -> MutexGuard<'_, TokenCache> {
        self.token_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The exchanged-token cache, locked. A poisoned lock is taken over:
    /// each entry is complete when inserted.
    pub fn exchange_cache(&self) -> MutexGuard<'_, ExchangeCache> {
        self.exchange_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The rules with every body condition taken as met
    /// ([`crate::line_policy`]): a denial here is one no body can lift.
    pub fn line_policy(&self) -> Option<&Policy> {
        self.line_policy
            .get_or_init(|| crate::line_policy::compile(self.policy.bundle()))
            .as_ref()
    }
}
