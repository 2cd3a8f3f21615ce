//! How Envoy serialises a property value for `proxy_get_property`.
//!
//! Envoy turns the CEL value found at a property path into bytes by type:
//! strings and bytes raw, numbers as 8-byte little-endian `f64` (metadata
//! numbers are protobuf `double`s), booleans as one byte, null as nothing,
//! and maps in the pairs encoding whose values are themselves encoded this
//! way (nested). Lists use the pairs encoding too, but with each encoded
//! element as the *key* and an empty value (checked against Envoy 1.40 with a
//! real `jwt_authn` payload: `["model-user","x"]` arrives as the pairs
//! `("model-user","")`, `("x","")`).

use serde_json::Value;

/// Encodes a JSON value the way Envoy encodes the equivalent
/// `google.protobuf.Value` (e.g. a `jwt_authn` claim) for the guest.
pub fn encode_envoy_value(value: &Value) -> Vec<u8> {
    match value {
        Value::Null => Vec::new(),
        Value::Bool(b) => vec![u8::from(*b)],
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN).to_le_bytes().to_vec(),
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Array(items) => {
            let pairs: Vec<(Vec<u8>, &[u8])> = items
                .iter()
                .map(|item| (encode_envoy_value(item), &b""[..]))
                .collect();
            crate::pairs::encode(&pairs)
        }
        Value::Object(map) => {
            let pairs: Vec<(&str, Vec<u8>)> = map
                .iter()
                .map(|(k, v)| (k.as_str(), encode_envoy_value(v)))
                .collect();
            crate::pairs::encode(&pairs)
        }
    }
}

/// Encodes an integer the way Envoy encodes a CEL `int` (e.g.
/// `response.code`): 8-byte little-endian two's complement.
pub fn encode_envoy_int(value: i64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs;
    use serde_json::json;

    #[test]
    fn scalars() {
        assert_eq!(encode_envoy_value(&json!("alice")), b"alice");
        assert_eq!(encode_envoy_value(&json!(true)), [1]);
        assert_eq!(encode_envoy_value(&json!(false)), [0]);
        assert_eq!(
            encode_envoy_value(&json!(1700000000)),
            1.7e9f64.to_le_bytes()
        );
        assert_eq!(encode_envoy_value(&json!(0.5)), 0.5f64.to_le_bytes());
        assert!(encode_envoy_value(&Value::Null).is_empty());
        assert_eq!(encode_envoy_int(200), 200i64.to_le_bytes());
    }

    #[test]
    fn maps_are_nested_pairs() {
        let bytes = encode_envoy_value(&json!({"sub": "bob", "n": 2, "inner": {"k": "v"}}));
        let decoded = pairs::decode(&bytes).unwrap();
        let lookup = |key: &str| {
            decoded
                .iter()
                .find(|(k, _)| k == key.as_bytes())
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(lookup("sub"), b"bob");
        assert_eq!(lookup("n"), 2f64.to_le_bytes());
        assert_eq!(
            pairs::decode(&lookup("inner")).unwrap(),
            vec![(b"k".to_vec(), b"v".to_vec())]
        );
    }

    #[test]
    fn lists_are_pairs_of_elements_with_empty_values() {
        let bytes = encode_envoy_value(&json!(["a", "bc"]));
        assert_eq!(
            pairs::decode(&bytes).unwrap(),
            vec![(b"a".to_vec(), Vec::new()), (b"bc".to_vec(), Vec::new())]
        );
        // The exact bytes Envoy 1.40 produced for `["model-user","x"]`.
        assert_eq!(
            encode_envoy_value(&json!(["model-user", "x"])),
            b"\x02\0\0\0\x0a\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0model-user\0\0x\0\0"
        );
        assert_eq!(encode_envoy_value(&json!([])), 0u32.to_le_bytes());
    }
}
