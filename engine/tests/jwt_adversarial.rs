//! The verifier against good tokens of every algorithm and a catalogue of
//! attacks and malformations, each expected to fail with a specific reason.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod jwt_common;

use jsonwebtoken::{Algorithm, EncodingKey};
use jwt_common::*;
use mcp_guard_engine::jwt::{JwtError, Verifier, VerifyConfig, REASON_CODES};
use serde_json::json;

fn reason(v: &Verifier, token: &str) -> &'static str {
    match v.verify(token, NOW) {
        Ok(_) => "accepted",
        Err(e) => {
            assert!(REASON_CODES.contains(&e.reason_code()));
            e.reason_code()
        }
    }
}

#[test]
fn every_supported_algorithm_accepts_a_good_token() {
    let v = verifier();
    let cases = [
        ("rsa-a", "rsa_a", Algorithm::RS256),
        ("rsa-a", "rsa_a", Algorithm::RS384),
        ("rsa-a", "rsa_a", Algorithm::RS512),
        ("rsa-a", "rsa_a", Algorithm::PS256),
        ("rsa-a", "rsa_a", Algorithm::PS384),
        ("rsa-a", "rsa_a", Algorithm::PS512),
        ("rsa-b", "rsa_b", Algorithm::RS256),
        ("ec256", "ec_p256", Algorithm::ES256),
        ("ec384", "ec_p384", Algorithm::ES384),
        ("ed", "ed25519", Algorithm::EdDSA),
    ];
    for (kid, key, alg) in cases {
        let token = sign(json!({ "kid": kid }), &claims(), key, alg);
        let c = v
            .verify(&token, NOW)
            .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(c.get_str("sub"), Some("alice"), "{alg:?}");
        assert_eq!(c.get("roles").unwrap()[0], "reader");
    }
}

#[test]
fn token_without_kid_uses_the_single_compatible_key() {
    let v = verifier();
    // Issuer 0 has one P-256 key: usable without a kid.
    let t = sign(json!({}), &claims(), "ec_p256", Algorithm::ES256);
    assert_eq!(reason(&v, &t), "accepted");
    // ...but two RSA keys accept RS256: ambiguous, refused.
    let t = sign(json!({}), &claims(), "rsa_a", Algorithm::RS256);
    assert_eq!(reason(&v, &t), "unknown_kid");
    // Issuer 1's only key has no kid at all.
    let payload = claims_with(json!({"iss": OTHER_ISS, "aud": "other"}));
    let t = sign(json!({}), &payload, "ec_p256_other", Algorithm::ES256);
    assert_eq!(reason(&v, &t), "accepted");
}

#[test]
fn alg_none_is_refused_in_any_spelling() {
    let v = verifier();
    let payload = b64(claims().to_string().as_bytes());
    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = b64(json!({ "alg": alg, "kid": "ec256" }).to_string().as_bytes());
        assert_eq!(
            reason(&v, &format!("{header}.{payload}.")),
            "alg_none",
            "{alg}"
        );
        // With a (meaningless) signature too.
        assert_eq!(reason(&v, &format!("{header}.{payload}.c2ln")), "alg_none");
    }
}

#[test]
fn hmac_signed_with_the_public_key_is_refused() {
    let v = verifier();
    // Classic algorithm confusion: HS256 keyed with the RSA public key bytes
    // (PEM text, and the raw modulus), which a naive verifier would accept.
    let pem = data("rsa_a.pub.pem");
    let n = jwk("rsa_a", json!({}))["n"].as_str().unwrap().to_owned();
    for secret in [pem.clone(), n.into_bytes()] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let header = json!({"alg": format!("{alg:?}"), "kid": "rsa-a"}).to_string();
            let t = sign_raw(
                &header,
                &claims().to_string(),
                &EncodingKey::from_secret(&secret),
                alg,
            );
            assert_eq!(reason(&v, &t), "alg_not_allowed", "{alg:?}");
        }
    }
}

#[test]
fn algorithm_policy_and_key_binding() {
    let v = verifier();
    // Issuer 1 allows ES256 only.
    let payload = claims_with(json!({"iss": OTHER_ISS, "aud": "other"}));
    let t = sign(json!({}), &payload, "ec_p384", Algorithm::ES384);
    assert_eq!(reason(&v, &t), "alg_not_allowed");
    // rsa-b pins RS256: a PS256 token for it is refused even though the
    // issuer allows PS256 and the key is RSA.
    let t = sign(
        json!({"kid": "rsa-b"}),
        &claims(),
        "rsa_b",
        Algorithm::PS256,
    );
    assert_eq!(reason(&v, &t), "alg_key_mismatch");
    // An EC key named for an RSA algorithm, and the other way round.
    let t = sign(
        json!({"kid": "ec256"}),
        &claims(),
        "rsa_a",
        Algorithm::RS256,
    );
    assert_eq!(reason(&v, &t), "alg_key_mismatch");
    let t = sign(
        json!({"kid": "rsa-a"}),
        &claims(),
        "ec_p256",
        Algorithm::ES256,
    );
    assert_eq!(reason(&v, &t), "alg_key_mismatch");
    // Curve binding: ES384 against the P-256 key.
    let t = sign(
        json!({"kid": "ec256"}),
        &claims(),
        "ec_p384",
        Algorithm::ES384,
    );
    assert_eq!(reason(&v, &t), "alg_key_mismatch");
    // Unsupported algorithms are refused by name, before any key lookup.
    let header = b64(br#"{"alg":"ES512","kid":"ec256"}"#);
    let body = b64(claims().to_string().as_bytes());
    assert_eq!(
        reason(&v, &format!("{header}.{body}.c2ln")),
        "alg_not_allowed"
    );
    // The encryption key is skipped, so its kid is unknown.
    let t = sign(
        json!({"kid": "enc-key"}),
        &claims(),
        "rsa_a",
        Algorithm::RS256,
    );
    assert_eq!(reason(&v, &t), "unknown_kid");
}

#[test]
fn unknown_kid_and_wrong_key() {
    let v = verifier();
    let t = sign(
        json!({"kid": "nope"}),
        &claims(),
        "ec_p256",
        Algorithm::ES256,
    );
    assert_eq!(reason(&v, &t), "unknown_kid");
    // Another issuer's kid is not looked up across issuers.
    let payload = claims_with(json!({"iss": OTHER_ISS, "aud": "other"}));
    let t = sign(
        json!({"kid": "ec256"}),
        &payload,
        "ec_p256",
        Algorithm::ES256,
    );
    assert_eq!(reason(&v, &t), "unknown_kid");
    // Right kid, signed by a different key.
    let t = sign(
        json!({"kid": "ec256"}),
        &claims(),
        "ec_p256_other",
        Algorithm::ES256,
    );
    assert_eq!(reason(&v, &t), "bad_signature");
}

#[test]
fn keys_in_the_token_header_are_ignored() {
    let v = verifier();
    // The attacker embeds their own key (jwk / jku / x5u) and signs with it.
    let header = json!({
        "kid": "ec256",
        "jwk": jwk("ec_p256_other", json!({})),
        "jku": "https://attacker.example/jwks.json",
        "x5u": "https://attacker.example/cert.pem",
    });
    let t = sign(header, &claims(), "ec_p256_other", Algorithm::ES256);
    assert_eq!(reason(&v, &t), "bad_signature");
}

#[test]
fn tampered_and_truncated_tokens() {
    let v = verifier();
    let good = es256(&claims());
    assert_eq!(reason(&v, &good), "accepted");
    let [h, _, s] = parts(&good);
    // Flip a claim, keep header and signature.
    let forged = b64(claims_with(json!({"sub": "admin"})).to_string().as_bytes());
    assert_eq!(reason(&v, &format!("{h}.{forged}.{s}")), "bad_signature");
    let forged = b64(claims_with(json!({"roles": ["admin"]}))
        .to_string()
        .as_bytes());
    assert_eq!(reason(&v, &format!("{h}.{forged}.{s}")), "bad_signature");
    // Swap the header for one claiming another key.
    let other_h = b64(br#"{"alg":"ES256","kid":"ec256","typ":"at+jwt"}"#);
    let p = parts(&good)[1];
    assert_eq!(reason(&v, &format!("{other_h}.{p}.{s}")), "bad_signature");
    // Truncations: two characters off an 86-character ES256 signature leave
    // valid base64url (63 bytes); other cuts leave non-canonical base64.
    assert_eq!(s.len(), 86);
    assert_eq!(reason(&v, &good[..good.len() - 2]), "bad_signature");
    assert_eq!(reason(&v, &good[..good.len() - 1]), "malformed");
    assert_eq!(reason(&v, &good[..good.len() - s.len()]), "malformed");
    assert_eq!(reason(&v, &good[..h.len() + 5]), "malformed");
    assert_eq!(reason(&v, &good[..h.len()]), "malformed");
    // Signature of a different length (RSA-size) for an EC key.
    let big = b64(&[7u8; 256]);
    assert_eq!(reason(&v, &format!("{h}.{p}.{big}")), "bad_signature");
}

fn parts(token: &str) -> [&str; 3] {
    let v: Vec<&str> = token.split('.').collect();
    [v[0], v[1], v[2]]
}

#[test]
fn time_claims() {
    let v = verifier(); // 60 s of skew
    let cases = [
        (json!({"exp": NOW - 61}), "expired"),
        (json!({"exp": NOW - 60}), "expired"),
        (json!({"exp": NOW - 59}), "accepted"),
        (json!({"exp": NOW}), "accepted"),
        (json!({"exp": 0}), "expired"),
        (json!({"nbf": NOW + 61}), "not_yet_valid"),
        (json!({"nbf": NOW + 60}), "accepted"),
        (json!({"iat": NOW + 61}), "issued_in_future"),
        (json!({"iat": NOW + 60}), "accepted"),
        (json!({"exp": null}), "missing_exp"),
        (json!({"exp": (NOW + 600) as f64 + 0.5}), "accepted"),
        (json!({"exp": 1e30}), "accepted"),
        (json!({"nbf": null, "iat": null}), "accepted"),
    ];
    for (change, expected) in cases {
        let t = es256(&claims_with(change.clone()));
        assert_eq!(reason(&v, &t), expected, "{change}");
    }
    // The caller's clock is what counts, not the system's.
    let t = es256(&claims());
    assert!(v.verify(&t, NOW + 10_000).is_err());
    assert!(v.verify(&t, NOW).is_ok());
    // Zero skew.
    let strict = Verifier::new(&VerifyConfig {
        clock_skew_secs: 0,
        ..config()
    })
    .unwrap();
    let t = es256(&claims_with(json!({"exp": NOW})));
    assert_eq!(reason(&strict, &t), "expired");
    let t = es256(&claims_with(json!({"nbf": NOW + 1})));
    assert_eq!(reason(&strict, &t), "not_yet_valid");
}

#[test]
fn issuer_and_audience() {
    let v = verifier();
    let cases = [
        (json!({"iss": "https://evil.example"}), "wrong_issuer"),
        (json!({"iss": "https://idp.example/"}), "wrong_issuer"),
        (json!({"iss": null}), "wrong_issuer"),
        (json!({"iss": 7}), "bad_claims"),
        (json!({"aud": "someone-else"}), "wrong_audience"),
        (json!({"aud": ["a", "b"]}), "wrong_audience"),
        (json!({"aud": []}), "wrong_audience"),
        (json!({"aud": null}), "wrong_audience"),
        (json!({"aud": "MCP-GUARD"}), "wrong_audience"),
        (json!({"aud": ["x", "mcp-guard-admin"]}), "accepted"),
        (json!({"aud": 42}), "bad_claims"),
        (json!({"aud": ["mcp-guard", 1]}), "bad_claims"),
    ];
    for (change, expected) in cases {
        let t = es256(&claims_with(change.clone()));
        assert_eq!(reason(&v, &t), expected, "{change}");
    }
    // Issuer 1's audience is not accepted for issuer 0 and vice versa.
    let t = es256(&claims_with(json!({"aud": "other"})));
    assert_eq!(reason(&v, &t), "wrong_audience");
}

#[test]
fn claims_of_the_wrong_type() {
    let v = verifier();
    let cases = [
        json!({"exp": (NOW + 600).to_string()}),
        json!({"exp": true}),
        json!({"exp": -5}),
        json!({"exp": [NOW + 600]}),
        json!({"nbf": "yesterday"}),
        json!({"iat": {"t": 1}}),
        json!({"sub": 12}),
        json!({"jti": false}),
    ];
    for change in cases {
        let t = es256(&claims_with(change.clone()));
        assert_eq!(reason(&v, &t), "bad_claims", "{change}");
    }
}

#[test]
fn structural_malformations() {
    let v = verifier();
    let good = es256(&claims());
    let [h, p, s] = parts(&good);
    let key = signing_key("ec_p256");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "malformed"),
        (format!("{h}.{p}"), "malformed"),
        (format!("{h}.{p}.{s}.{s}"), "malformed"),
        (format!("{h}.{p}.{s}."), "malformed"),
        (format!(".{p}.{s}"), "malformed"),
        (format!("{h}..{s}"), "malformed"),
        (format!("{h}.{p}.{s}="), "malformed"),
        (format!("{h}=.{p}.{s}"), "malformed"),
        (
            format!("{h}.{p}.{}", s.replace('-', "+").replace('_', "/")),
            "malformed",
        ),
        (format!(" {good}"), "malformed"),
        (format!("{good}\n"), "malformed"),
        (format!("{h}.{p}.{s}%"), "malformed"),
        (good.replacen('.', "\u{ff0e}", 1), "malformed"),
        // Base64 with an impossible length, and non-canonical trailing bits.
        (format!("{h}.{p}A.{s}"), "malformed"),
        (format!("{h}.{p}.{}", flip_last_bits(s)), "malformed"),
        // Header and payload that decode to non-UTF-8 or non-objects.
        (format!("{}.{p}.{s}", b64(b"\xff\xfe\xfd")), "malformed"),
        (
            format!("{h}.{}.{s}", b64(b"{\"sub\":\"\xff\"}")),
            "malformed",
        ),
        (format!("{}.{p}.{s}", b64(b"[\"ES256\"]")), "malformed"),
        (format!("{h}.{}.{s}", b64(b"\"payload\"")), "malformed"),
        (format!("{h}.{}.{s}", b64(b"{} trailing")), "malformed"),
        // Header problems, validly signed so only the header is at fault.
        (
            sign_raw(
                r#"{"kid":"ec256"}"#,
                &claims().to_string(),
                &key,
                Algorithm::ES256,
            ),
            "malformed",
        ),
        (
            sign_raw(
                r#"{"alg":null}"#,
                &claims().to_string(),
                &key,
                Algorithm::ES256,
            ),
            "malformed",
        ),
        (
            sign_raw(
                r#"{"alg":"ES256","kid":7}"#,
                &claims().to_string(),
                &key,
                Algorithm::ES256,
            ),
            "malformed",
        ),
        (
            sign_raw(
                r#"{"alg":"ES256","crit":["exp"],"exp":1}"#,
                &claims().to_string(),
                &key,
                Algorithm::ES256,
            ),
            "malformed",
        ),
        // Duplicate keys: header alg twice, payload sub twice, nested twice.
        (
            sign_raw(
                r#"{"alg":"none","alg":"ES256"}"#,
                &claims().to_string(),
                &key,
                Algorithm::ES256,
            ),
            "malformed",
        ),
        (
            sign_raw(
                r#"{"alg":"ES256","kid":"ec256"}"#,
                &dup_payload(r#""sub":"alice","sub":"admin""#),
                &key,
                Algorithm::ES256,
            ),
            "malformed",
        ),
        (
            sign_raw(
                r#"{"alg":"ES256","kid":"ec256"}"#,
                &dup_payload(r#""realm":{"roles":["a"],"roles":["admin"]}"#),
                &key,
                Algorithm::ES256,
            ),
            "malformed",
        ),
    ];
    for (token, expected) in &cases {
        assert_eq!(reason(&v, token), *expected, "{token:?}");
    }
}

fn dup_payload(extra: &str) -> String {
    format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},{extra}}}"#,
        NOW + 600
    )
}

/// Changes the unused low bits of the last base64url character, giving a
/// different text that lenient decoders map to the same bytes.
fn flip_last_bits(part: &str) -> String {
    assert_ne!(part.len() % 4, 0, "needs a partial final quantum");
    let mut chars: Vec<u8> = part.bytes().collect();
    let last = chars.last_mut().unwrap();
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let idx = alphabet.iter().position(|c| c == last).unwrap();
    *last = alphabet[idx ^ 1];
    String::from_utf8(chars).unwrap()
}

#[test]
fn oversize_tokens_are_refused_before_decoding() {
    let v = verifier();
    // Garbage that would be malformed, if it were looked at.
    let huge = "%".repeat(8193);
    assert_eq!(reason(&v, &huge), "token_too_large");
    let huge = "a.".repeat(5000);
    assert_eq!(reason(&v, &huge), "token_too_large");
    // A validly signed token with a big claim.
    let t = es256(&claims_with(json!({"pad": "x".repeat(9000)})));
    assert_eq!(reason(&v, &t), "token_too_large");
    // Exactly at the limit is fine size-wise.
    let small = Verifier::new(&VerifyConfig {
        max_token_bytes: 300,
        ..config()
    })
    .unwrap();
    let t = es256(&claims());
    assert!(t.len() > 300);
    assert_eq!(reason(&small, &t), "token_too_large");
    let limit = Verifier::new(&VerifyConfig {
        max_token_bytes: t.len(),
        ..config()
    })
    .unwrap();
    assert_eq!(reason(&limit, &t), "accepted");
}

#[test]
fn error_messages_never_echo_the_token() {
    let v = verifier();
    let secret_sub = "sub-9f2c-SECRET";
    let tokens = [
        es256(&claims_with(json!({"sub": secret_sub, "aud": "x"}))),
        es256(&claims_with(json!({"sub": secret_sub, "exp": NOW - 1000}))),
        es256(&claims_with(json!({"sub": secret_sub, "iss": secret_sub}))),
        sign(
            json!({"kid": secret_sub}),
            &claims(),
            "ec_p256",
            Algorithm::ES256,
        ),
        sign(
            json!({"alg": secret_sub}),
            &claims(),
            "ec_p256",
            Algorithm::ES256,
        ),
    ];
    for t in &tokens {
        let e: JwtError = v.verify(t, NOW).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains(secret_sub), "{text}");
        assert!(!text.contains(&t[..20]), "{text}");
    }
}

#[test]
fn mutations_never_verify_and_never_panic() {
    let v = verifier();
    let good = es256(&claims());
    let bytes = good.as_bytes();
    let mut rejected = 0;
    for i in 0..bytes.len() {
        // Truncate here, and substitute two different characters here.
        let truncated = &good[..i];
        assert!(v.verify(truncated, NOW).is_err());
        for sub in [b'A', b'_', b'.'] {
            if bytes[i] == sub {
                continue;
            }
            let mut m = bytes.to_vec();
            m[i] = sub;
            let m = String::from_utf8(m).unwrap();
            assert!(v.verify(&m, NOW).is_err(), "mutation at {i} verified");
            rejected += 1;
        }
    }
    assert!(rejected > 2 * bytes.len());
}
