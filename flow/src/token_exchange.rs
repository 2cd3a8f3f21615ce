//! RFC 8693 token exchange in the exchange flow: after an allow decision
//! the caller's bearer token is traded at the identity provider for a
//! token issued for the upstream, which replaces `Authorization`.
//!
//! Exchanged tokens are cached per policy (one cache per wasm VM, one
//! shared by every worker in the native module), keyed by the SHA-256 of
//! the caller's token and a digest of what the token is for, so another
//! caller, audience or scope set never gets a token issued for this one.
//! Every failure refuses the request (503 `token_exchange_failed`): the
//! caller's own token is never forwarded instead.

use std::collections::HashMap;

use mcp_guard_engine::token_exchange::{
    bearer_token, parse_answer, subject_digest, subject_is_caller, ExchangeError, TokenExchange,
};
use mcp_guard_engine::Claims;

use crate::active::ActivePolicy;
use crate::host::{Host, Level};

/// What an exchanged token is cached under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// SHA-256 of the caller's token (the token itself is never kept).
    subject: [u8; 32],
    /// [`TokenExchange::target_digest`] of the section that issued it.
    target: [u8; 32],
}

impl CacheKey {
    /// The key of one caller's token under one `token_exchange` section.
    pub fn new(subject_token: &str, section: &TokenExchange) -> Self {
        Self {
            subject: subject_digest(subject_token),
            target: section.target_digest(),
        }
    }
}

/// One cached token.
#[derive(Debug, Clone)]
struct Entry {
    token: String,
    expires_at_ms: u64,
}

/// Exchanged tokens until they expire, at most `max` of them.
#[derive(Debug, Default)]
pub struct ExchangeCache {
    entries: HashMap<CacheKey, Entry>,
}

impl ExchangeCache {
    /// The token cached for `key`, if it has not expired.
    pub fn get(&mut self, key: &CacheKey, now_ms: u64) -> Option<String> {
        match self.entries.get(key) {
            Some(e) if e.expires_at_ms > now_ms => Some(e.token.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Caches a token; when full, expired entries go first, then the one
    /// closest to expiry.
    pub fn insert(
        &mut self,
        key: CacheKey,
        token: String,
        expires_at_ms: u64,
        now_ms: u64,
        max: usize,
    ) {
        if max == 0 || expires_at_ms <= now_ms {
            return;
        }
        if !self.entries.contains_key(&key) && self.entries.len() >= max {
            self.entries.retain(|_, e| e.expires_at_ms > now_ms);
            while self.entries.len() >= max {
                let Some(oldest) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires_at_ms)
                    .map(|(k, _)| *k)
                else {
                    break;
                };
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            key,
            Entry {
                token,
                expires_at_ms,
            },
        );
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An exchange on its way: what to cache its answer under.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The host's id of the exchange request.
    pub id: u64,
    key: CacheKey,
    /// The caller's token expiry (`exp`, seconds), which caps the cache
    /// lifetime of what is issued for it.
    subject_exp: Option<u64>,
    /// When the request was sent.
    pub sent_ms: u64,
}

/// A claim holding seconds (`exp`): Envoy's metadata carries numbers as
/// doubles, so a whole, non-negative double counts too.
pub fn seconds(value: &serde_json::Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_f64()
            .filter(|f| f.is_finite() && *f >= 0.0 && f.fract() == 0.0 && *f < 1e15)
            .map(|f| f as u64)
    })
}

/// What [`start`] did.
#[derive(Debug)]
pub enum Started {
    /// A cached token: inject it now.
    Cached(String),
    /// The request is on its way; hold the stream until the answer.
    Sent(Pending),
    /// Refuse the request.
    Failed(ExchangeError),
}

/// An HTTP call's answer as the host delivers it (token endpoint,
/// route fallback).
#[derive(Debug, Clone, Default)]
pub struct CalloutAnswer {
    /// `:status`; `None` when the request failed (reset, timeout,
    /// connection refused).
    pub status: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// `grpc-status` from the answer's trailers (or its headers, for a
    /// trailers-only gRPC answer); `None` when absent.
    pub grpc_status: Option<String>,
    /// The answer's headers (names lower case), pseudo-headers included.
    pub headers: Vec<(String, String)>,
}

impl CalloutAnswer {
    /// One header's value (first of its name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Looks up the cache, or sends the exchange request. The bearer token
/// must be the one whose `claims` identified the caller (checked before
/// the cache, so no caller gets what was issued for another's token).
pub fn start(
    host: &mut impl Host,
    active: &ActivePolicy,
    section: &TokenExchange,
    secret: Option<&str>,
    authorization: &[String],
    claims: &Claims,
) -> Started {
    let values: Vec<&str> = authorization.iter().map(String::as_str).collect();
    let subject = match bearer_token(&values) {
        Ok(token) => token,
        Err(e) => return Started::Failed(e),
    };
    if !subject_is_caller(subject, claims) {
        return Started::Failed(ExchangeError::SubjectNotCaller);
    }
    let subject_exp = claims.get("exp").and_then(seconds);
    let key = CacheKey::new(subject, section);
    let now_ms = host.now_ms();
    if let Some(token) = active.exchange_cache().get(&key, now_ms) {
        return Started::Cached(token);
    }
    let Some(secret) = secret.filter(|s| !s.is_empty()) else {
        return Started::Failed(ExchangeError::NoClientSecret);
    };
    let headers = section.request_headers(secret);
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let body = section.request_body(subject);
    match host.http_call(
        &section.cluster,
        &headers,
        body.as_bytes(),
        section.timeout_ms,
    ) {
        Some(id) => Started::Sent(Pending {
            id,
            key,
            subject_exp,
            sent_ms: now_ms,
        }),
        None => Started::Failed(ExchangeError::CalloutRefused),
    }
}

/// Reads the answer to `pending`; caches and returns the issued token.
pub fn finish(
    host: &mut impl Host,
    active: &ActivePolicy,
    section: &TokenExchange,
    pending: &Pending,
    answer: &CalloutAnswer,
) -> Result<String, ExchangeError> {
    let issued = parse_answer(answer.status.as_deref(), &answer.body)?;
    let now_ms = host.now_ms();
    if let Some(expires_in) = issued.expires_in {
        let mut until_s = (now_ms / 1000).saturating_add(expires_in);
        if let Some(exp) = pending.subject_exp {
            until_s = until_s.min(exp);
        }
        let until_ms = until_s
            .saturating_sub(section.expiry_skew_secs)
            .saturating_mul(1000);
        active.exchange_cache().insert(
            pending.key,
            issued.access_token.clone(),
            until_ms,
            now_ms,
            section.max_cache_entries,
        );
    } else {
        host.log(
            Level::Info,
            "token exchange answer has no expires_in; the token is used once, not cached",
        );
    }
    Ok(issued.access_token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> CacheKey {
        CacheKey {
            subject: [n; 32],
            target: [0; 32],
        }
    }

    #[test]
    fn cache_expires_and_stays_bounded() {
        let mut c = ExchangeCache::default();
        c.insert(key(1), "a".into(), 1_000, 0, 2);
        c.insert(key(2), "b".into(), 5_000, 0, 2);
        assert_eq!(c.get(&key(1), 999).as_deref(), Some("a"));
        assert_eq!(c.get(&key(1), 1_000), None);
        c.insert(key(1), "a".into(), 1_000, 0, 2);
        // Full: the one closest to expiry goes.
        c.insert(key(3), "c".into(), 9_000, 10, 2);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key(1), 10), None);
        assert_eq!(c.get(&key(2), 10).as_deref(), Some("b"));
        // Nothing cached when caching is off or already expired.
        c.insert(key(4), "d".into(), 9_000, 10, 0);
        c.insert(key(5), "e".into(), 10, 10, 5);
        assert_eq!((c.get(&key(4), 10), c.get(&key(5), 10)), (None, None));
    }
}
