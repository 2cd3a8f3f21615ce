//! Properties, the jwt_authn payload encoding, and filter state.

use mcp_guard_host_test::encode_envoy_value;
use serde_json::json;

use super::guest::{emitted_i32, host};

const READER: &str = r#"
  (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $proxy_get_property @jwt_map (i32.const 0) (i32.const 4)))
    (call $emit_out @got_map)
    (call $emit_i32 @sub_status (call $proxy_get_property @jwt_sub (i32.const 0) (i32.const 4)))
    (call $emit_out @got_sub)
    (drop (call $proxy_get_property @jwt_exp (i32.const 0) (i32.const 4)))
    (call $emit_out @got_exp)
    (call $emit_i32 @missing_status (call $proxy_get_property @nope (i32.const 0) (i32.const 4)))
    (drop (call $proxy_get_property @request_id (i32.const 0) (i32.const 4)))
    (call $emit_out @got_request_id)
    (drop (call $proxy_get_property @request_path (i32.const 0) (i32.const 4)))
    (call $emit_out @got_path)
    (drop (call $proxy_get_property @plugin_name (i32.const 0) (i32.const 4)))
    (call $emit_out @got_plugin)
    (call $emit_i32 @set_status (call $proxy_set_property @decision @allow))
    (drop (call $proxy_get_property @decision (i32.const 0) (i32.const 4)))
    (call $emit_out @got_decision)
    (drop (call $proxy_set_property @nested @allow))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $proxy_get_property @response_code (i32.const 0) (i32.const 4)))
    (call $emit_out @got_code)
    (i32.const 0))
"#;

const JWT: &[u8] = b"metadata\0filter_metadata\0envoy.filters.http.jwt_authn\0jwt_payload";

#[test]
fn the_jwt_payload_reads_as_envoy_encodes_it() {
    let mut jwt_sub = JWT.to_vec();
    jwt_sub.extend_from_slice(b"\0sub");
    let mut jwt_exp = JWT.to_vec();
    jwt_exp.extend_from_slice(b"\0exp");
    let plugin = host(
        &[
            ("jwt_map", JWT),
            ("jwt_sub", &jwt_sub),
            ("jwt_exp", &jwt_exp),
            ("nope", b"metadata\0filter_metadata\0nope"),
            ("request_id", b"request\0id"),
            ("request_path", b"request\0path"),
            ("plugin_name", b"plugin_name"),
            ("decision", b"mcp_decision"),
            ("nested", b"a\0b"),
            ("allow", b"allow"),
            ("response_code", b"response\0code"),
        ],
        READER,
    )
    .plugin(b"")
    .unwrap();
    plugin.set_root_property(&["plugin_name"], "mcp-guard");
    let stream = plugin.stream().unwrap();
    let payload = json!({"sub": "alice", "exp": 1700000000, "groups": ["a", "b"], "admin": false});
    stream.set_jwt_payload("jwt_payload", payload.clone());
    stream.set_property(&["request", "id"], "rid-1");
    stream
        .request_headers(&[(":method", "POST"), (":path", "/mcp")], true)
        .unwrap();
    assert_eq!(
        plugin.shared_data("got_map").unwrap(),
        encode_envoy_value(&payload)
    );
    assert_eq!(emitted_i32(&plugin, "sub_status"), 0);
    assert_eq!(plugin.shared_data("got_sub").unwrap(), b"alice");
    assert_eq!(
        plugin.shared_data("got_exp").unwrap(),
        1.7e9f64.to_le_bytes()
    );
    assert_eq!(emitted_i32(&plugin, "missing_status"), 1);
    assert_eq!(plugin.shared_data("got_request_id").unwrap(), b"rid-1");
    assert_eq!(plugin.shared_data("got_path").unwrap(), b"/mcp");
    assert_eq!(plugin.shared_data("got_plugin").unwrap(), b"mcp-guard");
    assert_eq!(emitted_i32(&plugin, "set_status"), 0);
    assert_eq!(plugin.shared_data("got_decision").unwrap(), b"allow");
    let state = stream.filter_state();
    assert_eq!(
        state.get("wasm.mcp_decision").map(String::as_str),
        Some("allow")
    );
    assert_eq!(state.get("wasm.a\0b").map(String::as_str), Some("allow"));

    stream
        .response_headers(&[(":status", "418")], true)
        .unwrap();
    assert_eq!(
        plugin.shared_data("got_code").unwrap(),
        418i64.to_le_bytes()
    );
}

#[test]
fn stream_properties_do_not_leak_into_other_streams() {
    let plugin = host(&[("request_id", b"request\0id")], READER_ID)
        .plugin(b"")
        .unwrap();
    let first = plugin.stream().unwrap();
    first.set_property(&["request", "id"], "one");
    first.request_headers(&[(":path", "/")], true).unwrap();
    assert_eq!(emitted_i32(&plugin, "id_status"), 0);
    let second = plugin.stream().unwrap();
    second.request_headers(&[(":path", "/")], true).unwrap();
    assert_eq!(emitted_i32(&plugin, "id_status"), 1);
}

const READER_ID: &str = r#"
  (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (call $emit_i32 @id_status (call $proxy_get_property @request_id (i32.const 0) (i32.const 4)))
    (i32.const 0))
"#;
