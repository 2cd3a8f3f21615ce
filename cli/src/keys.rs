//! `keygen` and `hash-token`: the secrets an operator prepares for the
//! control service, made locally so they never cross the network.

use mcp_guard_engine::signing::{self, SigningKey};
use serde_json::json;
use sha2::{Digest as _, Sha256};

/// A new Ed25519 signing key as JSON: the seed (base64; keep it secret,
/// give it to `mcp-guard-control --signing-key FILE`), the public key
/// (base64; what filters trust) and its key id.
pub fn keygen() -> Result<String, getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)?;
    let key = SigningKey::from_bytes(&seed);
    let public = key.verifying_key();
    Ok(json!({
        "seed": signing::seed_base64(&key),
        "ed25519": signing::public_key_base64(&public),
        "id": signing::key_id(&public),
    })
    .to_string()
        + "\n")
}

/// The hex SHA-256 of a token (surrounding whitespace, e.g. the newline of
/// `echo`, removed), the form the service's tokens file keeps.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.trim().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_like_sha256sum() {
        // printf abc | sha256sum
        assert_eq!(
            hash_token("abc\n"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn keygen_output_round_trips() {
        let out: serde_json::Value =
            serde_json::from_str(&keygen().expect("random")).expect("json");
        let key =
            signing::signing_key_from_text(out["seed"].as_str().expect("seed")).expect("seed");
        assert_eq!(
            out["ed25519"],
            signing::public_key_base64(&key.verifying_key())
        );
        assert_eq!(out["id"], signing::key_id(&key.verifying_key()));
    }
}
