//! JWT verification cost: a cold verify (parse + signature + claims) against
//! a cached lookup (SHA-256 of the token + table hit + claims clone), for
//! ES256 and RS256. Run: `cargo bench -p mcp-guard-engine --bench jwt`.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::Algorithm;
use serde_json::json;

#[path = "../tests/jwt_common/mod.rs"]
mod jwt_common;

use jwt_common::{claims, sign, verifier, NOW};

fn bench_verify(c: &mut Criterion) {
    let v = verifier();
    let tokens = [
        (
            "es256",
            sign(
                json!({"kid": "ec256"}),
                &claims(),
                "ec_p256",
                Algorithm::ES256,
            ),
        ),
        (
            "rs256",
            sign(
                json!({"kid": "rsa-a"}),
                &claims(),
                "rsa_a",
                Algorithm::RS256,
            ),
        ),
        (
            "eddsa",
            sign(json!({"kid": "ed"}), &claims(), "ed25519", Algorithm::EdDSA),
        ),
    ];
    let mut group = c.benchmark_group("jwt");
    for (name, token) in &tokens {
        assert!(v.verify(token, NOW).is_ok());
        group.bench_function(format!("{name}/verify_cold"), |b| {
            b.iter(|| v.verify(black_box(token), NOW).unwrap())
        });
        let mut cache = v.new_cache();
        v.verify_cached(&mut cache, token, NOW).unwrap();
        group.bench_function(format!("{name}/verify_cached_hit"), |b| {
            b.iter(|| v.verify_cached(&mut cache, black_box(token), NOW).unwrap())
        });
    }
    // Rejection before any crypto: what a flood of garbage costs.
    group.bench_function("reject/oversize", |b| {
        let huge = "a".repeat(10_000);
        b.iter(|| v.verify(black_box(&huge), NOW).unwrap_err())
    });
    group.bench_function("reject/bad_signature_es256", |b| {
        // Another key's signature under a valid kid: full work, then refusal.
        let forged = sign(
            json!({"kid": "ec256"}),
            &claims(),
            "ec_p256_other",
            Algorithm::ES256,
        );
        b.iter(|| v.verify(black_box(&forged), NOW).unwrap_err())
    });
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
