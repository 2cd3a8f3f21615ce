//! The verified `jwt_authn` payload, as the flow reads it.
//!
//! The flow reads claims from the `metadata` property: the stream's
//! dynamic metadata as a `Metadata` message, where `jwt_authn` put the
//! verified payload (a `Struct` under `payload_in_metadata`). Envoy 1.40's
//! dynamic-module ABI reads only scalar metadata values (string, number,
//! bool, lists of them) and the key names of a namespace, not a nested
//! `Struct`. So the module takes the payload from where `jwt_authn` also
//! writes it on success, its `forward_payload_header`, and accepts it only
//! with proof that `jwt_authn` verified a token on this very request:
//!
//! * `jwt_authn` removes that header from every incoming request before it
//!   verifies anything (it sanitises its forward headers), so a client
//!   cannot send one;
//! * the `envoy.filters.http.jwt_authn` metadata namespace must hold
//!   exactly one key (the payload `jwt_authn` stored), and the header
//!   exactly one value;
//! * when the request still carries a bearer token, its payload segment
//!   must be the header's value byte for byte.
//!
//! A header without the metadata, metadata without the header, or anything
//! ambiguous is refused as an invalid token, never read as "no token".
//! The payload is then placed under the namespace key, exactly where
//! `jwt_authn` put it, and encoded as the `Metadata` message the wasm
//! filter receives, so the flow's claim reading (types included) is shared.

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use serde_json::{json, Map, Value};

use mcp_guard_flow::envoy_proto::metadata_message;

/// The namespace `jwt_authn` writes verified payloads under.
pub const JWT_AUTHN_NAMESPACE: &str = "envoy.filters.http.jwt_authn";

/// Default name of the `jwt_authn` `forward_payload_header` the module
/// reads (`jwt_payload_header` in the plugin configuration overrides it).
pub const DEFAULT_PAYLOAD_HEADER: &str = "x-mcp-guard-jwt-payload";

/// Status returned (as the flow's property error) for every refusal; the
/// flow turns it into `invalid_token`.
pub const REFUSED: u32 = 2;

/// base64url with or without padding (`jwt_authn` pads only when told to).
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What the request showed about its verified token.
#[derive(Debug, Default)]
pub struct Evidence<'a> {
    /// Keys of the `jwt_authn` metadata namespace.
    pub keys: Vec<String>,
    /// Values of the payload header.
    pub payloads: Vec<Vec<u8>>,
    /// `Authorization` values.
    pub authorization: Vec<&'a str>,
}

/// The `Metadata` message for `property(["metadata"])`: `Ok(None)` when no
/// token was verified, `Err` when the evidence does not add up.
pub fn metadata(evidence: &Evidence<'_>) -> Result<Option<Vec<u8>>, u32> {
    match (evidence.keys.as_slice(), evidence.payloads.as_slice()) {
        ([], []) => Ok(None),
        ([key], [payload]) => {
            let text = std::str::from_utf8(payload).map_err(|_| REFUSED)?;
            for auth in &evidence.authorization {
                if let Some(token) = bearer(auth) {
                    if token.split('.').nth(1) != Some(text.trim_end_matches('=')) {
                        return Err(REFUSED);
                    }
                }
            }
            let decoded = BASE64URL.decode(text).map_err(|_| REFUSED)?;
            let claims: Map<String, Value> =
                serde_json::from_slice(&decoded).map_err(|_| REFUSED)?;
            let mut fields = Map::new();
            fields.insert(key.clone(), Value::Object(claims));
            Ok(Some(metadata_message(&json!({
                "filter_metadata": { JWT_AUTHN_NAMESPACE: fields }
            }))))
        }
        _ => Err(REFUSED),
    }
}

/// The token of a `Bearer` credential (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mcp_guard_engine::envoy_metadata::jwt_payload_from_metadata;

    fn b64(value: &Value) -> Vec<u8> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(value.to_string())
            .into_bytes()
    }

    fn evidence<'a>(keys: &[&str], payloads: Vec<Vec<u8>>, auth: &[&'a str]) -> Evidence<'a> {
        Evidence {
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            payloads,
            authorization: auth.to_vec(),
        }
    }

    fn claims_of(bytes: &[u8], key: &str) -> Option<Map<String, Value>> {
        jwt_payload_from_metadata(bytes, JWT_AUTHN_NAMESPACE, key)
            .ok()
            .flatten()
    }

    #[test]
    fn a_verified_payload_reads_back_with_its_types() {
        let claims = json!({"sub": "alice", "exp": 1_900_000_000u64, "admin": false,
                            "roles": ["a", "b"], "org": {"id": 7}});
        let payload = b64(&claims);
        let token = format!(
            "Bearer hdr.{}.sig",
            String::from_utf8(payload.clone()).unwrap()
        );
        let got = metadata(&evidence(&["jwt_payload"], vec![payload], &[&token]))
            .unwrap()
            .unwrap();
        let map = claims_of(&got, "jwt_payload").unwrap();
        assert_eq!(map.get("sub"), Some(&json!("alice")));
        assert_eq!(map.get("admin"), Some(&json!(false)));
        assert_eq!(map.get("roles"), Some(&json!(["a", "b"])));
        assert_eq!(
            map.get("exp").and_then(Value::as_f64),
            Some(1_900_000_000.0)
        );
        assert!(claims_of(&got, "other_key").is_none());
    }

    #[test]
    fn nothing_verified_is_no_token() {
        assert_eq!(metadata(&evidence(&[], vec![], &[])), Ok(None));
        // A bearer token jwt_authn did not verify (allow_missing passes
        // none; a failed one never gets here) is still "no claims".
        assert_eq!(
            metadata(&evidence(&[], vec![], &["Bearer a.b.c"])),
            Ok(None)
        );
    }

    #[test]
    fn a_forged_payload_header_without_verification_is_refused() {
        // jwt_authn strips the header; if it ever got through without
        // jwt_authn having verified a token, it must not become claims.
        let forged = b64(&json!({"sub": "root", "roles": ["admin"]}));
        assert_eq!(metadata(&evidence(&[], vec![forged], &[])), Err(REFUSED));
    }

    #[test]
    fn a_payload_that_is_not_the_bearer_tokens_is_refused() {
        // An attacker with a valid token of their own adds a forged
        // header (a misconfigured jwt_authn that forwards under another
        // name): the bearer token's payload segment differs.
        let own = b64(&json!({"sub": "mallory"}));
        let forged = b64(&json!({"sub": "mallory", "roles": ["admin"]}));
        let token = format!("Bearer h.{}.s", String::from_utf8(own).unwrap());
        assert_eq!(
            metadata(&evidence(&["jwt_payload"], vec![forged], &[&token])),
            Err(REFUSED)
        );
    }

    #[test]
    fn ambiguous_or_broken_evidence_is_refused() {
        let p = b64(&json!({"sub": "a"}));
        // Two payload values (forged one appended next to the real one).
        assert_eq!(
            metadata(&evidence(&["jwt_payload"], vec![p.clone(), p.clone()], &[])),
            Err(REFUSED)
        );
        // Verified (metadata present) but no payload header: misconfigured.
        assert_eq!(
            metadata(&evidence(&["jwt_payload"], vec![], &[])),
            Err(REFUSED)
        );
        // Two namespace keys: which one holds the payload is unknown.
        assert_eq!(
            metadata(&evidence(&["jwt_payload", "jwt_header"], vec![p], &[])),
            Err(REFUSED)
        );
        // Not base64url, not JSON, not an object.
        for bad in [b"%%%".to_vec(), b64(&json!("text")), b"e30".to_vec()] {
            let result = metadata(&evidence(&["k"], vec![bad.clone()], &[]));
            if bad == b"e30" {
                // `{}`: an empty payload is still a verified payload.
                assert!(matches!(result, Ok(Some(_))));
            } else {
                assert_eq!(result, Err(REFUSED));
            }
        }
    }
}
