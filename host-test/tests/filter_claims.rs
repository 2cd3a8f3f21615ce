//! Claims from `jwt_authn` metadata through the real `.wasm`: every value
//! keeps the type Envoy stored it with. A fraction is a number, and a string
//! whose bytes happen to look like a number, a boolean or a map stays a
//! string (the per-path property encoding is untyped and invited guessing).

use mcp_guard_host_test::envoy_proto::metadata_message;
use mcp_guard_host_test::{Action, Host, Plugin, Stream};
use serde_json::{json, Value};

const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

fn plugin() -> Plugin {
    let bundle = json!({
        "name": "claims", "version": 1,
        "rules": [
            {"id": "low-risk", "effect": "allow",
             "when": {"path": {"exact": "/low"}, "claims": [{"claim": "risk", "lt": 0.9}]}},
            {"id": "high-risk", "effect": "allow",
             "when": {"path": {"exact": "/high"}, "claims": [{"claim": "risk", "gt": 0.9}]}},
            {"id": "admins", "effect": "allow",
             "when": {"path": {"exact": "/admin"}, "claims": [{"claim": "admin", "equals": true}]}},
            {"id": "ops", "effect": "allow",
             "when": {"path": {"exact": "/ops"},
                      "claims": [{"claim": "realm.roles", "contains_any": ["ops"]}]}}
        ]
    });
    Host::from_env()
        .unwrap_or_else(|e| panic!("{e}"))
        .plugin(json!({ "bundle": bundle }).to_string())
        .expect("filter starts")
}

/// Sends a body-less GET with the given claims; the local reply's status
/// and details, or `None` when the request went upstream.
fn get(plugin: &Plugin, claims: Value, path: &str) -> Option<(u32, String)> {
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", claims);
    send(&stream, path)
}

fn send(stream: &Stream, path: &str) -> Option<(u32, String)> {
    let action = stream
        .request_headers(
            &[(":method", "GET"), (":path", path), (":authority", "api")],
            true,
        )
        .unwrap();
    let outcome = stream.local_reply().map(|r| (r.status, r.details));
    match &outcome {
        None => {
            assert_eq!(action, Action::Continue);
            assert!(stream.upstream_request().is_some());
        }
        Some(_) => assert!(stream.upstream_request().is_none()),
    }
    stream.finish().unwrap();
    outcome
}

fn denied() -> Option<(u32, String)> {
    Some((403, "mcp_default_deny".into()))
}

#[test]
fn fractional_claims_compare_as_numbers() {
    let plugin = plugin();
    // 0.95 is 66 66 66 66 66 66 ee 3f: no byte below 0x20, so a decoder
    // guessing from bytes took it for a string and both rules failed.
    assert_eq!(
        get(&plugin, json!({"sub": "a", "risk": 0.95}), "/high"),
        None
    );
    assert_eq!(
        get(&plugin, json!({"sub": "a", "risk": 0.95}), "/low"),
        denied()
    );
    assert_eq!(
        get(&plugin, json!({"sub": "a", "risk": 0.85}), "/low"),
        None
    );
    assert_eq!(
        get(&plugin, json!({"sub": "a", "risk": 0.85}), "/high"),
        denied()
    );
    assert_eq!(
        get(&plugin, json!({"sub": "a", "risk": -0.5}), "/low"),
        None
    );
    assert_eq!(
        get(&plugin, json!({"sub": "a", "risk": 1e308}), "/high"),
        None
    );
    assert_eq!(
        get(&plugin, json!({"sub": "a", "risk": 5e-324}), "/low"),
        None
    );
    assert_eq!(get(&plugin, json!({"sub": "a", "risk": 0}), "/low"), None);
}

#[test]
fn strings_never_turn_into_numbers_booleans_or_maps() {
    let plugin = plugin();
    // The bytes of the f64 2.0: eight bytes with control bytes, which the
    // guessing decoder read as the number 2.
    let two = "\0\0\0\0\0\0\0@";
    assert_eq!(
        get(&plugin, json!({"sub": "a", "risk": two}), "/high"),
        denied()
    );
    assert_eq!(
        get(&plugin, json!({"sub": "a", "risk": "0.95"}), "/high"),
        denied()
    );
    // One byte 0x01 was read as `true`.
    assert_eq!(
        get(&plugin, json!({"sub": "a", "admin": "\u{1}"}), "/admin"),
        denied()
    );
    assert_eq!(
        get(&plugin, json!({"sub": "a", "admin": true}), "/admin"),
        None
    );
    // A string holding the pairs encoding of {"roles": ["ops"]}.
    let ops = pairs(&[(b"ops", b"")]);
    let realm = String::from_utf8(pairs(&[(b"roles", &ops)])).unwrap();
    assert_eq!(
        get(&plugin, json!({"sub": "a", "realm": realm}), "/ops"),
        denied()
    );
    assert_eq!(
        get(
            &plugin,
            json!({"sub": "a", "realm": {"roles": ["ops"]}}),
            "/ops"
        ),
        None
    );
}

/// The proxy-wasm pairs encoding (what the per-path property returns).
fn pairs(items: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = (items.len() as u32).to_le_bytes().to_vec();
    for (k, v) in items {
        out.extend((k.len() as u32).to_le_bytes());
        out.extend((v.len() as u32).to_le_bytes());
    }
    for (k, v) in items {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[test]
fn other_filters_metadata_is_ignored() {
    let plugin = plugin();
    let stream = plugin.stream().unwrap();
    stream.set_property_json(
        &["metadata", "filter_metadata", "envoy.lb"],
        json!({"risk": 0.95, "jwt_payload": {"risk": 0.95}}),
    );
    stream.set_jwt_payload("jwt_payload", json!({"sub": "a", "risk": 0.5}));
    assert_eq!(send(&stream, "/high"), denied());
    // Only another filter's metadata: no token.
    let stream = plugin.stream().unwrap();
    stream.set_property_json(
        &["metadata", "filter_metadata", "envoy.lb"],
        json!({"jwt_payload": {"sub": "a", "risk": 0.95}}),
    );
    assert_eq!(
        send(&stream, "/high"),
        Some((401, "mcp_missing_token".into()))
    );
}

/// Raw `metadata` bytes: the claims {"sub": "a", "risk": 0.5} with the
/// number's eight bytes replaced.
fn metadata_with_risk_bytes(bytes: [u8; 8]) -> Vec<u8> {
    let meta = metadata_message(&json!({"filter_metadata": {JWT_AUTHN: {
        "jwt_payload": {"sub": "a", "risk": 0.5}
    }}}));
    let half = 0.5f64.to_le_bytes();
    let at = meta.windows(8).position(|w| w == half).unwrap();
    let mut out = meta;
    out[at..at + 8].copy_from_slice(&bytes);
    out
}

#[test]
fn hostile_metadata_is_an_invalid_token_never_allowed() {
    let plugin = plugin();
    let invalid = Some((401, "mcp_invalid_token".into()));
    let mut hostile = vec![
        b"\xff\xff\xff\xffnot protobuf".to_vec(),
        metadata_with_risk_bytes(f64::NAN.to_le_bytes()),
        metadata_with_risk_bytes(f64::INFINITY.to_le_bytes()),
    ];
    // Every truncation of a valid message.
    let valid = metadata_with_risk_bytes(0.95f64.to_le_bytes());
    hostile.extend((1..valid.len()).map(|cut| valid[..cut].to_vec()));
    for bytes in hostile {
        let stream = plugin.stream().unwrap();
        stream.set_property(&["metadata"], &bytes);
        assert_eq!(send(&stream, "/high"), invalid, "{bytes:02x?}");
    }
    // The untouched message decodes and allows.
    let stream = plugin.stream().unwrap();
    stream.set_property(&["metadata"], &valid);
    assert_eq!(send(&stream, "/high"), None);
    assert!(
        plugin.failure().is_none(),
        "the VM survives hostile metadata"
    );
}
