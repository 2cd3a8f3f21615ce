//! The verified-token cache through `Verifier::verify_cached`.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod jwt_common;

use jwt_common::*;
use mcp_guard_engine::jwt::{TokenCache, Verifier, VerifyConfig};
use serde_json::json;

#[test]
fn hit_returns_the_same_claims() {
    let v = verifier();
    let mut cache = v.new_cache();
    assert_eq!(cache.capacity(), 1024);
    let t = es256(&claims());
    let first = v.verify_cached(&mut cache, &t, NOW).unwrap();
    assert_eq!(cache.len(), 1);
    let second = v.verify_cached(&mut cache, &t, NOW + 1).unwrap();
    assert_eq!(first, second);
    assert_eq!(cache.get(&t, NOW + 2), Some(first));
}

#[test]
fn failures_are_not_cached() {
    let v = verifier();
    let mut cache = v.new_cache();
    let t = es256(&claims_with(json!({"aud": "nope"})));
    for _ in 0..3 {
        assert!(v.verify_cached(&mut cache, &t, NOW).is_err());
    }
    assert!(cache.is_empty());
}

#[test]
fn never_serves_an_expired_entry() {
    let v = verifier(); // 60 s skew
    let mut cache = v.new_cache();
    let exp = NOW + 100;
    let t = es256(&claims_with(json!({ "exp": exp })));
    v.verify_cached(&mut cache, &t, NOW).unwrap();
    assert!(cache.get(&t, exp - 1).is_some());
    // At exp the entry is gone, though the verifier's skew still accepts
    // the token; it is then not re-cached.
    assert!(cache.get(&t, exp).is_none());
    assert!(cache.is_empty());
    assert!(v.verify_cached(&mut cache, &t, exp + 10).is_ok());
    assert!(cache.is_empty());
    assert_eq!(
        v.verify_cached(&mut cache, &t, exp + 60)
            .unwrap_err()
            .reason_code(),
        "expired"
    );
}

#[test]
fn a_hit_still_respects_the_size_limit() {
    let v = verifier();
    let mut cache = TokenCache::new(4);
    let big = "a".repeat(9000);
    cache.insert(&big, Default::default(), NOW + 100, NOW);
    assert_eq!(
        v.verify_cached(&mut cache, &big, NOW)
            .unwrap_err()
            .reason_code(),
        "token_too_large"
    );
}

#[test]
fn bounded() {
    let v = Verifier::new(&VerifyConfig {
        cache_entries: 3,
        ..config()
    })
    .unwrap();
    let mut cache = v.new_cache();
    let tokens: Vec<String> = (0..10)
        .map(|i| es256(&claims_with(json!({ "jti": format!("t{i}") }))))
        .collect();
    for t in &tokens {
        v.verify_cached(&mut cache, t, NOW).unwrap();
        assert!(cache.len() <= 3);
    }
    assert_eq!(cache.len(), 3);
    // Evicted tokens still verify (from scratch).
    for t in &tokens {
        assert!(v.verify_cached(&mut cache, t, NOW).is_ok());
    }
    let off = Verifier::new(&VerifyConfig {
        cache_entries: 0,
        ..config()
    })
    .unwrap();
    let mut none = off.new_cache();
    assert!(off.verify_cached(&mut none, &tokens[0], NOW).is_ok());
    assert!(none.is_empty());
}
