//! Demo identities: ES256 tokens signed with the demo key that the demo
//! Envoy's `jwt_authn` trusts. Never use the demo key outside a demo.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// Issuer the demo `jwt_authn` provider accepts.
pub const DEMO_ISSUER: &str = "https://issuer.mcp-guard.demo";
/// Audience the demo `jwt_authn` provider accepts.
pub const DEMO_AUDIENCE: &str = "mcp-guard-demo";
/// Key id of the demo signing key in the demo JWKS.
pub const DEMO_KID: &str = "mcp-guard-demo-1";
/// The demo private key (PKCS#8 PEM); public in this repository on purpose.
pub const DEMO_SIGNING_KEY_PEM: &str = include_str!("../../envoy/demo-keys/demo-signing-key.pem");
/// The JWKS holding the demo public key.
pub const DEMO_JWKS: &str = include_str!("../../envoy/demo-keys/demo-jwks.json");

/// Why a token could not be minted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The key or claims were rejected by the signer.
    #[error("cannot sign demo token: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Signs `claims` (plus `iss`, `aud`, `iat`, `exp` one hour ahead, unless
/// already present) with the demo key.
pub fn mint(mut claims: Value) -> Result<String, TokenError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if let Some(map) = claims.as_object_mut() {
        map.entry("iss").or_insert(json!(DEMO_ISSUER));
        map.entry("aud").or_insert(json!(DEMO_AUDIENCE));
        map.entry("iat").or_insert(json!(now));
        map.entry("exp").or_insert(json!(now + 3600));
    }
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(DEMO_KID.into());
    let key = EncodingKey::from_ec_pem(DEMO_SIGNING_KEY_PEM.as_bytes())?;
    Ok(encode(&header, &claims, &key)?)
}

/// A caller the default bundle allows.
pub fn alice() -> Result<String, TokenError> {
    mint(
        json!({"sub": "alice", "tenant": "acme", "roles": ["model-user"], "scope": "openid mcp:tools"}),
    )
}

/// A caller the default bundle denies (no model role).
pub fn mallory() -> Result<String, TokenError> {
    mint(json!({"sub": "mallory", "tenant": "acme", "roles": ["viewer"]}))
}
