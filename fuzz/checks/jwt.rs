//! `jwt`: the in-filter token verifier on arbitrary tokens.
//!
//! Input: a mode byte, then either a raw token, or header and payload
//! JSON text that are signed with the fixed Ed25519 test key (so the
//! fuzzer reaches the claim checks behind the signature).
//!
//! Invariants: no panic; `verify` and `verify_cached` (miss, then hit)
//! agree; a token that verifies has three unpadded base64url parts, a
//! JSON object header with an allowed `alg`, a JSON object payload equal
//! to the returned claims, a trusted `iss`, an unexpired `exp` and an
//! accepted audience.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use mcp_guard_engine::jwt::{IssuerConfig, Verifier, VerifyConfig};
use mcp_guard_engine::Claims;
use serde_json::{json, Map, Value};

use super::Input;

pub const NOW: u64 = 1_700_000_000;
pub const ISS: &str = "https://idp.fuzz";
pub const AUD: &str = "mcp-guard";
const SKEW: u64 = 60;
const ED_SEED: [u8; 32] = [7; 32];
const ALLOWED: &[&str] = &["RS256", "PS256", "ES256", "EdDSA"];

/// The public JWKs of the engine's checked-in test keys.
const TEST_JWKS: &str = include_str!("../../engine/tests/data/jwt/public_jwks.json");

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&ED_SEED)
}

fn config() -> VerifyConfig {
    let test: Value = serde_json::from_str(TEST_JWKS).expect("test JWKS");
    let with_kid = |name: &str, kid: &str| {
        let mut key = test[name].clone();
        key["kid"] = json!(kid);
        key
    };
    let ed = URL_SAFE_NO_PAD.encode(signing_key().verifying_key().as_bytes());
    let mut config = VerifyConfig::with_issuers(vec![
        IssuerConfig {
            iss: ISS.into(),
            audiences: vec![AUD.into(), "admin".into()],
            jwks: json!({"keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": ed, "kid": "fz"},
                with_kid("rsa_a", "rsa"),
                with_kid("ec_p256", "ec"),
            ]}),
            algorithms: ALLOWED.iter().map(|s| s.to_string()).collect(),
            discovery: None,
        },
        IssuerConfig {
            iss: "other".into(),
            audiences: vec!["o".into()],
            jwks: json!({"keys": [
                {"kty": "OKP", "crv": "Ed25519", "x": ed},
            ]}),
            algorithms: vec!["EdDSA".into()],
            discovery: None,
        },
    ]);
    config.clock_skew_secs = SKEW;
    config.max_token_bytes = 4096;
    config.cache_entries = 8;
    config
}

thread_local! {
    static VERIFIER: Verifier = Verifier::new(&config()).expect("fuzz verifier config");
}

/// `header.payload.signature`, signed with the Ed25519 test key.
pub fn sign(header: &[u8], payload: &[u8]) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = signing_key().sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.to_bytes()))
}

fn token_of(data: &[u8]) -> String {
    let mut input = Input::new(data);
    match input.u8() % 4 {
        // A raw token.
        0 => super::text(input.rest()),
        // Arbitrary header and payload, signed.
        1 => {
            let header = input.until(0);
            sign(header, input.rest())
        }
        // A fixed valid header, an arbitrary payload, signed.
        2 => sign(br#"{"alg":"EdDSA","kid":"fz","typ":"JWT"}"#, input.rest()),
        // A valid header and payload, then a mutation of the token text.
        _ => {
            let payload = json!({"iss": ISS, "aud": AUD, "exp": NOW + 600, "sub": "s"});
            let mut token =
                sign(br#"{"alg":"EdDSA"}"#, payload.to_string().as_bytes()).into_bytes();
            let at = usize::from(input.u16()) % (token.len() + 1);
            let cut = usize::from(input.u8()) % 8;
            let end = (at + cut).min(token.len());
            token.splice(at..end, input.rest().iter().copied());
            String::from_utf8_lossy(&token).into_owned()
        }
    }
}

fn decode_object(part: &str) -> Map<String, Value> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .unwrap_or_else(|e| panic!("accepted part {part:?} is not base64url: {e}"));
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => map,
        other => panic!("accepted part is not a JSON object: {other:?}"),
    }
}

fn numeric(payload: &Map<String, Value>, name: &str) -> Option<f64> {
    payload.get(name).map(|v| {
        v.as_f64()
            .unwrap_or_else(|| panic!("accepted {name} is not a number: {v}"))
    })
}

/// What a verified token must look like.
fn assert_well_formed(token: &str, claims: &Claims) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted {token:?}");
    assert!(
        parts.iter().all(|p| !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')),
        "accepted {token:?}: not three unpadded base64url parts"
    );
    let header = decode_object(parts[0]);
    let alg = header.get("alg").and_then(Value::as_str);
    assert!(
        alg.is_some_and(|a| ALLOWED.contains(&a)),
        "accepted alg {alg:?}"
    );
    assert!(!header.contains_key("crit"), "accepted a crit header");
    let payload = decode_object(parts[1]);
    assert_eq!(
        claims,
        &Claims::new(payload.clone()),
        "claims differ from the payload"
    );
    let iss = payload.get("iss").and_then(Value::as_str);
    let accepted_aud: &[&str] = match iss {
        Some(ISS) => &[AUD, "admin"],
        Some("other") => &["o"],
        _ => panic!("accepted iss {iss:?}"),
    };
    let exp = numeric(&payload, "exp").expect("accepted without exp");
    assert!(
        exp >= 0.0 && (NOW as f64) < exp + SKEW as f64,
        "expired exp {exp}"
    );
    for name in ["nbf", "iat"] {
        if let Some(t) = numeric(&payload, name) {
            assert!(t < (NOW + SKEW + 1) as f64, "{name} {t} in the future");
        }
    }
    let auds: Vec<&str> = match payload.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().expect("accepted a non-string aud"))
            .collect(),
        other => panic!("accepted aud {other:?}"),
    };
    assert!(
        auds.iter().any(|a| accepted_aud.contains(a)),
        "accepted audiences {auds:?}"
    );
}

pub fn check(data: &[u8]) {
    let token = token_of(data);
    VERIFIER.with(|verifier| {
        let plain = verifier.verify(&token, NOW);
        let mut cache = verifier.new_cache();
        let miss = verifier.verify_cached(&mut cache, &token, NOW);
        let hit = verifier.verify_cached(&mut cache, &token, NOW);
        assert_eq!(plain, miss, "verify and a cache miss differ");
        assert_eq!(plain, hit, "verify and a cache hit differ");
        if let Ok(claims) = &plain {
            assert_well_formed(&token, claims);
        }
        // Later, the same token must not outlive its exp through the cache.
        let later = NOW + 1_000_000_000;
        if let Ok(claims) = verifier.verify_cached(&mut cache, &token, later) {
            assert_well_formed_at(&token, &claims, later);
        }
    });
}

fn assert_well_formed_at(token: &str, claims: &Claims, now: u64) {
    let exp = claims
        .get("exp")
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("accepted {token:?} without a numeric exp"));
    assert!(
        (now as f64) < exp + SKEW as f64,
        "cache served {token:?} after exp"
    );
}
