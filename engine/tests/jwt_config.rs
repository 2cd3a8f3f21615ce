//! Compiling `identity.verify`: every refusal points at the offending value.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod jwt_common;

use jwt_common::*;
use mcp_guard_engine::jwt::{IssuerConfig, JwtConfigError, Verifier, VerifyConfig};
use serde_json::{json, Value};

fn compile_err(config: &VerifyConfig) -> JwtConfigError {
    Verifier::new(config).expect_err("config should be refused")
}

fn with_issuer0(change: impl FnOnce(&mut IssuerConfig)) -> VerifyConfig {
    let mut c = config();
    change(&mut c.issuers[0]);
    c
}

fn with_key(index: usize, key: Value) -> VerifyConfig {
    with_issuer0(|i| i.jwks["keys"][index] = key)
}

#[test]
fn the_fixture_config_compiles_and_round_trips_through_json() {
    let c = config();
    Verifier::new(&c).unwrap();
    let text = serde_json::to_string(&c).unwrap();
    let back: VerifyConfig = serde_json::from_str(&text).unwrap();
    assert_eq!(back, c);
}

#[test]
fn settings() {
    let e = compile_err(&VerifyConfig::with_issuers(vec![]));
    assert_eq!(
        (e.path().as_str(), e),
        ("issuers", JwtConfigError::NoIssuers)
    );
    for (c, path) in [
        (
            VerifyConfig {
                max_token_bytes: 0,
                ..config()
            },
            "max_token_bytes",
        ),
        (
            VerifyConfig {
                max_token_bytes: 1 << 20,
                ..config()
            },
            "max_token_bytes",
        ),
        (
            VerifyConfig {
                clock_skew_secs: 3600,
                ..config()
            },
            "clock_skew_secs",
        ),
        (
            VerifyConfig {
                cache_entries: 10_000_000,
                ..config()
            },
            "cache_entries",
        ),
        (
            VerifyConfig {
                header: String::new(),
                ..config()
            },
            "header",
        ),
        (
            VerifyConfig {
                prefix: "Bearer\n".into(),
                ..config()
            },
            "prefix",
        ),
    ] {
        assert_eq!(compile_err(&c).path(), path);
    }
}

#[test]
fn issuer_fields() {
    let cases: Vec<(VerifyConfig, &str, &str)> = vec![
        (with_issuer0(|i| i.iss.clear()), "issuers[0].iss", "empty"),
        (
            {
                let mut c = config();
                c.issuers[1].iss = ISS.into();
                c
            },
            "issuers[1].iss",
            "same iss",
        ),
        (
            with_issuer0(|i| i.audiences.clear()),
            "issuers[0].audiences",
            "at least one",
        ),
        (
            with_issuer0(|i| i.audiences.push(String::new())),
            "issuers[0].audiences",
            "empty",
        ),
        (
            with_issuer0(|i| i.algorithms.clear()),
            "issuers[0].algorithms",
            "at least one",
        ),
        (
            with_issuer0(|i| i.algorithms.push("HS256".into())),
            "issuers[0].algorithms[9]",
            "HMAC",
        ),
        (
            with_issuer0(|i| i.algorithms[0] = "none".into()),
            "issuers[0].algorithms[0]",
            "never",
        ),
        (
            with_issuer0(|i| i.algorithms[2] = "rs256".into()),
            "issuers[0].algorithms[2]",
            "unsupported",
        ),
        (
            with_issuer0(|i| i.algorithms[2] = "ES512".into()),
            "issuers[0].algorithms[2]",
            "unsupported",
        ),
        (
            with_issuer0(|i| i.jwks = json!([])),
            "issuers[0].jwks",
            "JWKS object",
        ),
        (
            with_issuer0(|i| i.jwks = json!({"keys": {}})),
            "issuers[0].jwks",
            "JWKS object",
        ),
        (
            with_issuer0(|i| i.jwks = json!({"keys": []})),
            "issuers[0].jwks",
            "no signature keys",
        ),
        (
            with_issuer0(|i| i.jwks = json!({"keys": [{"kty": "RSA", "use": "enc"}]})),
            "issuers[0].jwks",
            "no signature keys",
        ),
    ];
    for (c, path, reason) in cases {
        let e = compile_err(&c);
        assert_eq!(e.path(), path, "{e}");
        assert!(e.reason().contains(reason), "{e}");
        assert!(e.to_string().starts_with(path), "{e}");
    }
}

#[test]
fn bad_keys_name_issuer_key_and_kid() {
    let cases: Vec<(VerifyConfig, &str, Option<&str>, &str)> = vec![
        (
            with_key(1, jwk("rsa_1024", json!({"kid": "weak"}))),
            "issuers[0].jwks.keys[1]",
            Some("weak"),
            "2048",
        ),
        (
            with_key(2, jwk("ec_p256", json!({"kid": "rsa-a"}))),
            "issuers[0].jwks.keys[2]",
            Some("rsa-a"),
            "duplicate kid",
        ),
        (
            with_key(3, json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"})),
            "issuers[0].jwks.keys[3]",
            Some("hmac"),
            "symmetric",
        ),
        (
            with_key(0, jwk("ec_p256", json!({"d": "AAAA"}))),
            "issuers[0].jwks.keys[0]",
            None,
            "private",
        ),
        (
            with_key(4, jwk("ed25519", json!({"alg": "ES256"}))),
            "issuers[0].jwks.keys[4]",
            None,
            "does not fit",
        ),
        (
            with_key(4, jwk("ed25519", json!({"alg": "HS256"}))),
            "issuers[0].jwks.keys[4]",
            None,
            "HMAC",
        ),
        (
            with_key(
                4,
                json!({"kty": "OKP", "crv": "X25519", "x": b64(&[9; 32])}),
            ),
            "issuers[0].jwks.keys[4]",
            None,
            "X25519",
        ),
        (
            with_key(0, json!({"kty": "RSA", "e": "AQAB"})),
            "issuers[0].jwks.keys[0]",
            None,
            "missing `n`",
        ),
        (
            with_key(
                0,
                json!({"kty": "EC", "crv": "P-256", "x": "!!", "y": "AA"}),
            ),
            "issuers[0].jwks.keys[0]",
            None,
            "base64url",
        ),
        (
            with_key(
                0,
                json!({"kty": "EC", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])}),
            ),
            "issuers[0].jwks.keys[0]",
            None,
            "not a valid",
        ),
        (
            with_key(0, json!(null)),
            "issuers[0].jwks.keys[0]",
            None,
            "object",
        ),
        (
            with_key(5, jwk("rsa_b", json!({"use": "signature"}))),
            "issuers[0].jwks.keys[5]",
            None,
            "`use`",
        ),
    ];
    for (c, path, kid, reason) in cases {
        let e = compile_err(&c);
        assert_eq!(e.path(), path, "{e}");
        match &e {
            JwtConfigError::BadKey { issuer, kid: k, .. } => {
                assert_eq!(*issuer, 0);
                assert_eq!(k.as_deref(), kid, "{e}");
            }
            other => panic!("expected BadKey, got {other:?}"),
        }
        assert!(e.reason().contains(reason), "{e}");
    }
    // A key the issuer's algorithms cannot use is a configuration mistake.
    let mut c = config();
    c.issuers[1].jwks = json!({"keys": [jwk("rsa_a", json!({"kid": "r"}))]});
    let e = compile_err(&c);
    assert_eq!(e.path(), "issuers[1].jwks.keys[0]");
    assert!(
        e.reason()
            .contains("none of the issuer's algorithms [ES256]"),
        "{e}"
    );
}

#[test]
fn config_parses_from_bundle_json() {
    let text = json!({
        "issuers": [{
            "iss": ISS,
            "audiences": [AUD],
            "jwks": {"keys": [jwk("ec_p256", json!({"kid": "k1", "use": "sig", "x5t": "ignored"}))]},
            "algorithms": ["ES256"],
        }],
        "clock_skew_secs": 30,
    });
    let c: VerifyConfig = serde_json::from_value(text).unwrap();
    assert_eq!(c.clock_skew_secs, 30);
    let v = Verifier::new(&c).unwrap();
    let t = sign(
        json!({"kid": "k1"}),
        &claims(),
        "ec_p256",
        jsonwebtoken::Algorithm::ES256,
    );
    assert!(v.verify(&t, NOW).is_ok());
    let typo = json!({"issuers": [], "max_token_size": 10});
    assert!(serde_json::from_value::<VerifyConfig>(typo).is_err());
}
