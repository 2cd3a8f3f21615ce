//! Binding the subject of a token exchange to the caller: the token traded
//! at the identity provider must be the very token whose claims the
//! policy decided on. Otherwise a caller identified by one token (another
//! header, another `jwt_authn` location, a workload certificate, a
//! dry-run bundle passing an invalid token) could have a second token it
//! carries in `Authorization` exchanged — a victim's token issued for
//! another server, say — and reach the upstream as someone else.
//!
//! The token's payload is decoded without verifying it (the policy's
//! identity source verified the token it read) and compared with the
//! claims: the same members, numbers by value (Envoy's metadata holds
//! every number as a double), and a space-separated string equal to the
//! array Envoy's `space_delimited_claims` normalization makes of it.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::claims::Claims;

/// Whether `token` is a JWT whose payload is the caller's `claims`. No
/// claims (no token identified the caller) never match.
pub fn subject_is_caller(token: &str, claims: &Claims) -> bool {
    if claims.0.is_empty() {
        return false;
    }
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(payload) else {
        return false;
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(payload)) => same_object(&payload, &claims.0),
        _ => false,
    }
}

fn same_object(token: &Map<String, Value>, claims: &Map<String, Value>) -> bool {
    token.len() == claims.len()
        && token
            .iter()
            .all(|(k, v)| claims.get(k).is_some_and(|c| same_value(v, c)))
}

/// `token` as read from the JWT, `claims` as the identity source gave it.
fn same_value(token: &Value, claims: &Value) -> bool {
    match (token, claims) {
        (Value::Number(a), Value::Number(b)) => a == b || a.as_f64() == b.as_f64(),
        (Value::Object(a), Value::Object(b)) => same_object(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        (Value::String(s), Value::Array(items)) => {
            let words: Vec<&str> = s.split(' ').filter(|w| !w.is_empty()).collect();
            words.len() == items.len()
                && words.iter().zip(items).all(|(w, i)| i.as_str() == Some(*w))
        }
        _ => token == claims,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn jwt(payload: &Value) -> String {
        format!("e30.{}.c2ln", URL_SAFE_NO_PAD.encode(payload.to_string()))
    }

    fn claims(v: Value) -> Claims {
        Claims::new(v.as_object().unwrap().clone())
    }

    #[test]
    fn only_the_token_that_identified_the_caller_matches() {
        let p = json!({"iss": "i", "sub": "alice", "exp": 1_800_000_000u64,
            "scope": "a b", "x": {"y": [1, null]}});
        let t = jwt(&p);
        assert!(subject_is_caller(&t, &claims(p.clone())));
        // Envoy's metadata: numbers as doubles, normalized scope.
        let envoy = json!({"iss": "i", "sub": "alice", "exp": 1.8e9,
            "scope": ["a", "b"], "x": {"y": [1.0, null]}});
        assert!(subject_is_caller(&t, &claims(envoy)));
        for other in [
            json!({"iss": "i", "sub": "bob", "exp": 1_800_000_000u64, "scope": "a b", "x": {"y": [1, null]}}),
            json!({"iss": "i", "sub": "alice", "exp": 1_800_000_001u64, "scope": "a b", "x": {"y": [1, null]}}),
            json!({"iss": "i", "sub": "alice", "exp": 1_800_000_000u64, "scope": "a", "x": {"y": [1, null]}}),
            json!({"iss": "i", "sub": "alice", "exp": 1_800_000_000u64, "scope": "a b"}),
            json!({"iss": "i", "sub": "alice", "exp": 1_800_000_000u64, "scope": "a b", "x": {"y": [1, null]}, "aud": "z"}),
        ] {
            assert!(!subject_is_caller(&t, &claims(other.clone())), "{other}");
            assert!(
                !subject_is_caller(&jwt(&other), &claims(p.clone())),
                "{other}"
            );
        }
        // No identity, not a JWT, not an object.
        assert!(!subject_is_caller(&jwt(&json!({})), &Claims::default()));
        for t in ["opaque", "a.b", "a.!!.c", "a.e30.c.d", &jwt(&json!([1]))] {
            assert!(!subject_is_caller(t, &claims(json!({"sub": "a"}))), "{t}");
        }
    }
}
