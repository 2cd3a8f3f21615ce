//! What Envoy returns for the property `metadata` alone: the request's
//! dynamic metadata as a serialised `envoy.config.core.v3.Metadata`
//! (protobuf binary), because Envoy hands a message-typed property to the
//! guest with protobuf's `SerializeToString`. Verified against Envoy 1.40
//! with a real `jwt_authn` payload: `filter_metadata` is field 1, a map of
//! namespace to `google.protobuf.Struct`, each map entry written with both
//! key (1) and value (2); JSON numbers are `number_value` doubles (field 2,
//! fixed64), and `null`, `false`, `0` and `""` are written explicitly.
//!
//! Written independently of the filter's decoder so the host tests check
//! the decoder against a second reading of the schema.

use serde_json::{Map, Value};

/// Encodes `{"filter_metadata": {namespace: {key: value}}}` as a
/// `Metadata` message. Other top-level keys and namespaces that are not
/// objects are left out (a `Metadata` cannot hold them).
pub fn metadata_message(metadata: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(namespaces) = metadata.get("filter_metadata").and_then(Value::as_object) else {
        return out;
    };
    for (namespace, fields) in namespaces {
        if let Some(fields) = fields.as_object() {
            map_entry(1, namespace, &struct_message(fields), &mut out);
        }
    }
    out
}

/// Encodes a `google.protobuf.Struct`.
pub fn struct_message(fields: &Map<String, Value>) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in fields {
        map_entry(1, key, &value_message(value), &mut out);
    }
    out
}

/// Encodes a `google.protobuf.Value`. Numbers become doubles, as in
/// Envoy's JSON-to-`Struct` conversion.
pub fn value_message(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Null => out.extend_from_slice(&[0x08, 0x00]),
        Value::Number(n) => {
            out.push(0x11);
            out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_le_bytes());
        }
        Value::String(s) => len_field(3, s.as_bytes(), &mut out),
        Value::Bool(b) => out.extend_from_slice(&[0x20, u8::from(*b)]),
        Value::Object(fields) => len_field(5, &struct_message(fields), &mut out),
        Value::Array(items) => {
            let mut list = Vec::new();
            for item in items {
                len_field(1, &value_message(item), &mut list);
            }
            len_field(6, &list, &mut out);
        }
    }
    out
}

fn map_entry(field: u32, key: &str, value: &[u8], out: &mut Vec<u8>) {
    let mut entry = Vec::new();
    len_field(1, key.as_bytes(), &mut entry);
    len_field(2, value, &mut entry);
    len_field(field, &entry, out);
}

fn len_field(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint((u64::from(field) << 3) | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn values_match_envoy_bytes() {
        // Each expected string was cut from a message Envoy 1.40 returned.
        let cases = [
            (json!(0.95), "11666666666666ee3f"),
            (json!(-0.0), "110000000000000080"),
            (json!(true), "2001"),
            (json!(false), "2000"),
            (json!(null), "0800"),
            (json!("ab"), "1a026162"),
            (json!(""), "1a00"),
            (json!(["a", "b"]), "320a0a031a01610a031a0162"),
            (json!({"k": "v"}), "2a0a0a080a016b12031a0176"),
            (json!({}), "2a00"),
            (json!([]), "3200"),
        ];
        for (value, expected) in cases {
            assert_eq!(hex(&value_message(&value)), expected, "{value}");
        }
    }

    #[test]
    fn metadata_matches_envoy_bytes() {
        let meta = json!({"filter_metadata": {"envoy.filters.http.jwt_authn": {
            "jwt_payload": {"s": "ab"}
        }}});
        let namespace = hex(b"envoy.filters.http.jwt_authn");
        let key = hex(b"jwt_payload");
        // Namespace entry { key, Struct { entry { key, Value { struct_value
        // { entry { "s", Value { string_value "ab" } } } } } } }.
        let expected =
            format!("0a3e0a1c{namespace}121e0a1c0a0b{key}120d2a0b0a090a017312041a026162");
        assert_eq!(hex(&metadata_message(&meta)), expected);
        assert!(metadata_message(&json!({})).is_empty());
    }
}
