use super::*;
use serde_json::json;

const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

/// `get_property(["metadata"])` as returned by Envoy 1.40 (jwt_authn with
/// `payload_in_metadata: jwt_payload`) for a token whose payload was
/// `{"sub":"alice","risk":0.95,"n":-2.5,"z":0,"big":1e308,"tiny":5e-324,
/// "i":9007199254740993,"ok":true,"no":false,"nul":null,"roles":["a","b"],
/// "nest":{"k":"v"},"s":"ab","iss":…,"aud":…,"exp":…}`.
const ENVOY_1_40_METADATA: &str = "0ad9020a1c656e766f792e66696c746572732e687474702e6a77745f617574686e12b8020ab5020a0b6a77745f7061796c6f616412a5022aa2020a080a026f6b120220010a0e0a0373756212071a05616c6963650a0e0a016912091100000000000040430a260a03697373121f1a1d68747470733a2f2f6973737565722e6d63702d67756172642e64656d6f0a110a047269736b120911666666666666ee3f0a170a0361756412101a0e6d63702d67756172642d64656d6f0a150a05726f6c6573120c320a0a031a01610a031a01620a080a026e6f120220000a090a017312041a0261620a100a036578701209110000c08f56c3da410a140a046e657374120c2a0a0a080a016b12031a01760a0e0a016e12091100000000000004c00a090a036e756c120208000a110a0474696e7912091101000000000000000a100a03626967120911a0c8eb85f3cce17f0a0e0a017a1209110000000000000000";

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

// A test-only encoder, written from the protobuf schema.

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_field(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    varint(u64::from(field) << 3 | 2, out);
    varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn entry(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    len_field(1, key, &mut out);
    len_field(2, value, &mut out);
    out
}

fn number_value(n: f64) -> Vec<u8> {
    let mut out = vec![0x11];
    out.extend_from_slice(&n.to_le_bytes());
    out
}

fn string_value(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    len_field(3, s, &mut out);
    out
}

fn value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match v {
        Value::Null => out.extend_from_slice(&[0x08, 0]),
        Value::Number(n) => out = number_value(n.as_f64().unwrap()),
        Value::String(s) => out = string_value(s.as_bytes()),
        Value::Bool(b) => out.extend_from_slice(&[0x20, u8::from(*b)]),
        Value::Object(map) => len_field(5, &struct_fields(map), &mut out),
        Value::Array(items) => {
            let mut list = Vec::new();
            for item in items {
                len_field(1, &value(item), &mut list);
            }
            len_field(6, &list, &mut out);
        }
    }
    out
}

fn struct_of(fields: &[(&[u8], Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in fields {
        len_field(1, &entry(k, v), &mut out);
    }
    out
}

fn struct_fields(map: &Map<String, Value>) -> Vec<u8> {
    let fields: Vec<(&[u8], Vec<u8>)> = map.iter().map(|(k, v)| (k.as_bytes(), value(v))).collect();
    struct_of(&fields)
}

/// `Metadata` with `payload` (a `Value`'s bytes) at `jwt_payload`.
fn metadata_with_value(payload: Vec<u8>) -> Vec<u8> {
    let jwt = struct_of(&[(b"jwt_payload", payload)]);
    struct_of(&[(JWT_AUTHN.as_bytes(), jwt)])
}

fn metadata(claims: Value) -> Vec<u8> {
    metadata_with_value(value(&claims))
}

fn payload(bytes: &[u8]) -> Result<Option<Map<String, Value>>, MetadataError> {
    jwt_payload_from_metadata(bytes, JWT_AUTHN, "jwt_payload")
}

fn claim_of(bytes: &[u8], name: &str) -> Value {
    payload(bytes).unwrap().unwrap().remove(name).unwrap()
}

#[test]
fn decodes_real_envoy_bytes() {
    let map = payload(&unhex(ENVOY_1_40_METADATA)).unwrap().unwrap();
    assert_eq!(map["sub"], "alice");
    assert_eq!(map["risk"].as_f64(), Some(0.95));
    assert_eq!(map["n"].as_f64(), Some(-2.5));
    assert_eq!(map["z"].as_f64(), Some(0.0));
    assert_eq!(map["big"].as_f64(), Some(1e308));
    assert_eq!(map["tiny"].as_f64(), Some(5e-324));
    // Envoy parsed the JSON into a double: 2^53 + 1 became 2^53.
    assert_eq!(map["i"].as_f64(), Some(9_007_199_254_740_992.0));
    assert_eq!(map["ok"], true);
    assert_eq!(map["no"], false);
    assert_eq!(map["nul"], Value::Null);
    assert_eq!(map["roles"], json!(["a", "b"]));
    assert_eq!(map["nest"], json!({"k": "v"}));
    assert_eq!(map["s"], "ab");
    assert_eq!(map["aud"], "mcp-guard-demo");
    assert_eq!(map.len(), 16);
}

#[test]
fn round_trips_claims() {
    let claims = json!({
        "sub": "bob", "groups": ["x", {"deep": [1.5, null, true]}], "empty": {},
        "none": [], "blank": "", "": "empty key", "scope": "a b"
    });
    let map = payload(&metadata(claims.clone())).unwrap().unwrap();
    assert_eq!(Value::Object(map), claims);
}

#[test]
fn every_finite_f64_class_is_kept_exactly() {
    let cases = [
        0.95,
        -0.95,
        0.9,
        -2.5,
        0.0,
        1e308,
        -1e308,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        9_007_199_254_740_994.0,
        18_446_744_073_709_551_616.0,
        1.7e9,
    ];
    for n in cases {
        let got = claim_of(&metadata_with_value_at("x", number_value(n)), "x");
        assert_eq!(got.as_f64().map(f64::to_bits), Some(n.to_bits()), "{n}");
    }
    let neg_zero = claim_of(&metadata_with_value_at("x", number_value(-0.0)), "x");
    assert!(neg_zero.as_f64().unwrap().is_sign_negative());
}

fn metadata_with_value_at(claim: &str, value: Vec<u8>) -> Vec<u8> {
    let claims = struct_of(&[(claim.as_bytes(), value)]);
    let mut payload = Vec::new();
    len_field(5, &claims, &mut payload);
    metadata_with_value(payload)
}

#[test]
fn non_finite_numbers_are_errors() {
    for n in [f64::NAN, -f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            payload(&metadata_with_value_at("x", number_value(n))),
            Err(MetadataError::NonFinite)
        );
    }
}

#[test]
fn strings_that_look_like_other_encodings_stay_strings() {
    let pairs_map = [1u8, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, b'k', 0, b'v', 0];
    let looks_like = [
        &2.0f64.to_le_bytes()[..],
        &8.0f64.to_le_bytes()[..],
        b"\x01",
        b"\x00",
        b"\0\0\0\0",
        &pairs_map[..],
        b"\x2a\x00",
        b"\x11\x00\x00\x00\x00\x00\x00\x00\x40",
    ];
    for bytes in looks_like {
        let text = std::str::from_utf8(bytes).unwrap();
        let got = claim_of(&metadata_with_value_at("x", string_value(bytes)), "x");
        assert_eq!(got, Value::String(text.to_owned()), "{bytes:?}");
    }
    // Bytes that are not UTF-8 (like 0.95's) cannot be a JSON string.
    assert_eq!(
        payload(&metadata_with_value_at(
            "x",
            string_value(&0.95f64.to_le_bytes())
        )),
        Err(MetadataError::Malformed("invalid UTF-8"))
    );
}

#[test]
fn absent_payload_is_none() {
    assert_eq!(payload(&[]), Ok(None));
    let other_key = struct_of(&[(b"other", value(&json!({"sub": "x"})))]);
    let meta = struct_of(&[(JWT_AUTHN.as_bytes(), other_key)]);
    assert_eq!(payload(&meta), Ok(None));
    let other_filter = struct_of(&[(
        b"envoy.lb",
        struct_of(&[(b"jwt_payload", value(&json!({})))]),
    )]);
    assert_eq!(payload(&other_filter), Ok(None));
    // A payload key that is only a prefix or extension of the wanted one.
    let near = struct_of(&[(b"jwt_payload_", value(&json!({"sub": "x"})))]);
    assert_eq!(
        payload(&struct_of(&[(JWT_AUTHN.as_bytes(), near)])),
        Ok(None)
    );
}

#[test]
fn other_namespaces_and_unknown_fields_are_skipped() {
    let mut meta = struct_of(&[(b"envoy.lb", struct_of(&[(b"canary", value(&json!(true)))]))]);
    // typed_filter_metadata (field 2) holding an Any.
    len_field(2, &entry(b"x", b"\x0a\x03abc"), &mut meta);
    meta.extend(metadata(json!({"sub": "alice"})));
    // Unknown fields of every skippable wire type at the top level.
    meta.extend_from_slice(&[0x18, 0x96, 0x01]); // field 3 varint
    meta.extend_from_slice(&[0x21, 0, 0, 0, 0, 0, 0, 0, 0]); // field 4 fixed64
    meta.extend_from_slice(&[0x2d, 0, 0, 0, 0]); // field 5 fixed32
    assert_eq!(payload(&meta).unwrap().unwrap()["sub"], "alice");

    // An unknown field inside a Value beside its kind.
    let mut v = string_value(b"alice");
    v.extend_from_slice(&[0x38, 0x01]); // field 7 varint
    assert_eq!(claim_of(&metadata_with_value_at("sub", v), "sub"), "alice");
}

#[test]
fn duplicate_keys_are_errors() {
    let twice = |a: Vec<u8>, b: Vec<u8>| {
        let mut out = a;
        out.extend(b);
        out
    };
    // The same claim twice in the payload.
    let claims = struct_of(&[
        (b"sub", string_value(b"alice")),
        (b"sub", string_value(b"root")),
    ]);
    let mut v = Vec::new();
    len_field(5, &claims, &mut v);
    assert_eq!(
        payload(&metadata_with_value(v)),
        Err(MetadataError::DuplicateKey)
    );
    // The payload key twice in jwt_authn's namespace.
    let jwt = struct_of(&[
        (b"jwt_payload", value(&json!({"sub": "alice"}))),
        (b"jwt_payload", value(&json!({"sub": "root"}))),
    ]);
    let meta = struct_of(&[(JWT_AUTHN.as_bytes(), jwt)]);
    assert_eq!(payload(&meta), Err(MetadataError::DuplicateKey));
    // The jwt_authn namespace twice.
    let meta = twice(
        metadata(json!({"sub": "alice"})),
        metadata(json!({"sub": "root"})),
    );
    assert_eq!(payload(&meta), Err(MetadataError::DuplicateKey));
}

#[test]
fn malformed_values_are_errors() {
    let bad_values: [&[u8]; 11] = [
        b"",                   // no kind
        b"\x08\x01",           // null_value 1
        b"\x20\x02",           // bool_value 2
        b"\x10\x01",           // number_value as a varint
        b"\x1d\0\0\0\0",       // string_value as fixed32
        b"\x20\x01\x1a\x01x",  // two kinds
        b"\x1a\x01x\x1a\x01y", // the same kind twice
        b"\x13",               // group start
        b"\x11\0\0\0",         // truncated double
        b"\x2a\x02\x0a\x05",   // struct entry past its end
        b"\x32\x02\x08\x00",   // list element as a varint
    ];
    for bad in bad_values {
        let got = payload(&metadata_with_value_at("x", bad.to_vec()));
        assert!(
            matches!(got, Err(MetadataError::Malformed(_))),
            "{bad:?}: {got:?}"
        );
    }
}

#[test]
fn malformed_map_entries_are_errors() {
    let key_only = {
        let mut out = Vec::new();
        len_field(1, b"sub", &mut out);
        out
    };
    let value_only = {
        let mut out = Vec::new();
        len_field(2, &string_value(b"x"), &mut out);
        out
    };
    let two_keys = {
        let mut out = entry(b"sub", &string_value(b"x"));
        len_field(1, b"sub", &mut out);
        out
    };
    let varint_key = vec![0x08, 0x01, 0x12, 0x00];
    for bad_entry in [key_only, value_only, two_keys, varint_key] {
        let mut claims = Vec::new();
        len_field(1, &bad_entry, &mut claims);
        let mut v = Vec::new();
        len_field(5, &claims, &mut v);
        let got = payload(&metadata_with_value(v));
        assert!(matches!(got, Err(MetadataError::Malformed(_))), "{got:?}");
    }
    // Invalid UTF-8 claim name.
    let claims = struct_of(&[(b"\xff", string_value(b"x"))]);
    let mut v = Vec::new();
    len_field(5, &claims, &mut v);
    assert!(payload(&metadata_with_value(v)).is_err());
    // filter_metadata with the wrong wire type.
    assert!(payload(&[0x08, 0x01]).is_err());
}

#[test]
fn payload_must_be_an_object() {
    for v in [
        json!("alice"),
        json!(["a"]),
        json!(1),
        json!(null),
        json!(true),
    ] {
        assert_eq!(payload(&metadata(v)), Err(MetadataError::NotAnObject));
    }
}

#[test]
fn every_truncation_of_real_bytes_is_an_error() {
    let full = unhex(ENVOY_1_40_METADATA);
    for cut in 1..full.len() {
        assert!(payload(&full[..cut]).is_err(), "prefix {cut} accepted");
    }
}

#[test]
fn mutated_bytes_never_panic() {
    let full = unhex(ENVOY_1_40_METADATA);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut bytes = full.clone();
        for _ in 0..(next() % 4 + 1) {
            let i = (next() % bytes.len() as u64) as usize;
            bytes[i] = next() as u8;
        }
        let _ = payload(&bytes);
    }
}

#[test]
fn depth_is_bounded() {
    let nested = |levels: usize| {
        let mut v = json!("leaf");
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    };
    // The payload object is depth 0, so MAX_DEPTH nested objects fit.
    assert!(payload(&metadata(nested(MAX_DEPTH))).is_ok());
    assert_eq!(
        payload(&metadata(nested(MAX_DEPTH + 1))),
        Err(MetadataError::TooDeep)
    );
    let mut list = json!("leaf");
    for _ in 0..MAX_DEPTH + 1 {
        list = json!([list]);
    }
    assert_eq!(
        payload(&metadata(json!({ "l": list }))),
        Err(MetadataError::TooDeep)
    );
}

#[test]
fn value_count_and_size_are_bounded() {
    // The payload object itself is one value.
    let fits = vec![Value::Null; MAX_VALUES - 2];
    assert!(payload(&metadata(json!({ "l": fits }))).is_ok());
    let over = vec![Value::Null; MAX_VALUES - 1];
    assert_eq!(
        payload(&metadata(json!({ "l": over }))),
        Err(MetadataError::TooManyValues)
    );
    let big = vec![0u8; MAX_METADATA_BYTES + 1];
    assert_eq!(payload(&big), Err(MetadataError::TooLarge));
}
