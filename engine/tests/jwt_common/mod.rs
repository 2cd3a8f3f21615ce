//! Shared fixtures for the JWT tests: checked-in test keys, a two-issuer
//! config and a signer that signs arbitrary header/payload text (so tests
//! can craft tokens no well-behaved library would produce).

#![allow(dead_code)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use mcp_guard_engine::jwt::{IssuerConfig, Verifier, VerifyConfig};
use serde_json::{json, Value};

pub const NOW: u64 = 1_700_000_000;
pub const ISS: &str = "https://idp.example";
pub const AUD: &str = "mcp-guard";
pub const OTHER_ISS: &str = "https://other.example";

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jwt/");

pub fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DATA}{name}")).unwrap()
}

/// The public JWK of a checked-in key, with extra members merged in.
pub fn jwk(name: &str, extra: Value) -> Value {
    let all: Value = serde_json::from_slice(&data("public_jwks.json")).unwrap();
    let mut key = all[name].clone();
    if let (Some(k), Value::Object(e)) = (key.as_object_mut(), extra) {
        k.extend(e);
    }
    key
}

/// Issuer 0 (`ISS`): every algorithm, five keys with kids (`rsa-b` pins
/// RS256). Issuer 1 (`OTHER_ISS`): ES256 only, one key without a kid.
pub fn config() -> VerifyConfig {
    VerifyConfig::with_issuers(vec![
        IssuerConfig {
            iss: ISS.into(),
            audiences: vec![AUD.into(), "mcp-guard-admin".into()],
            jwks: json!({"keys": [
                jwk("rsa_a", json!({"kid": "rsa-a", "use": "sig"})),
                jwk("rsa_b", json!({"kid": "rsa-b", "alg": "RS256"})),
                jwk("ec_p256", json!({"kid": "ec256"})),
                jwk("ec_p384", json!({"kid": "ec384"})),
                jwk("ed25519", json!({"kid": "ed"})),
                {"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "enc-key"},
            ]}),
            algorithms: [
                "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
            ]
            .map(String::from)
            .to_vec(),
            discovery: None,
        },
        IssuerConfig {
            iss: OTHER_ISS.into(),
            audiences: vec!["other".into()],
            jwks: json!({"keys": [jwk("ec_p256_other", json!({}))]}),
            algorithms: vec!["ES256".into()],
            discovery: None,
        },
    ])
}

pub fn verifier() -> Verifier {
    Verifier::new(&config()).unwrap()
}

/// Signing key for a checked-in private key.
pub fn signing_key(name: &str) -> EncodingKey {
    let pem = data(&format!("{name}.pem"));
    if name.starts_with("rsa") {
        EncodingKey::from_rsa_pem(&pem).unwrap()
    } else if name.starts_with("ec") {
        EncodingKey::from_ec_pem(&pem).unwrap()
    } else {
        EncodingKey::from_ed_pem(&pem).unwrap()
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs exactly the given header and payload texts.
pub fn sign_raw(header: &str, payload: &str, key: &EncodingKey, alg: Algorithm) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
    format!("{message}.{signature}")
}

/// Signs JSON values (header gets `alg` from `alg` unless given).
pub fn sign(header: Value, payload: &Value, key_name: &str, alg: Algorithm) -> String {
    let mut header = header;
    if header.get("alg").is_none() {
        header["alg"] = json!(format!("{alg:?}"));
    }
    sign_raw(
        &header.to_string(),
        &payload.to_string(),
        &signing_key(key_name),
        alg,
    )
}

/// A valid payload for issuer 0 at `NOW`.
pub fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "alice",
        "exp": NOW + 600,
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "roles": ["reader"],
    })
}

/// `claims()` with fields replaced (a `null` removes the field).
pub fn claims_with(changes: Value) -> Value {
    let mut c = claims();
    let obj = c.as_object_mut().unwrap();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            obj.remove(k);
        } else {
            obj.insert(k.clone(), v.clone());
        }
    }
    c
}

/// A good ES256 token for issuer 0.
pub fn es256(payload: &Value) -> String {
    sign(
        json!({"kid": "ec256", "typ": "JWT"}),
        payload,
        "ec_p256",
        Algorithm::ES256,
    )
}
