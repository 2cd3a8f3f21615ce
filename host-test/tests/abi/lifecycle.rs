//! VM start, configuration and context creation.

use mcp_guard_host_test::{Action, Host, HostError, PluginOptions};

use super::guest::{emitted_i32, host};

const LIFECYCLE: &str = r#"
  (func (export "proxy_on_context_create") (param $id i32) (param $parent i32)
    (if (i32.eqz (local.get $parent))
      (then (call $emit_i32 @root_id (local.get $id)))
      (else
        (call $emit_i32 @stream_id (local.get $id))
        (call $emit_i32 @stream_parent (local.get $parent)))))
  (func (export "proxy_on_vm_start") (param $id i32) (param $size i32) (result i32)
    (call $emit_i32 @vm_size (local.get $size))
    (drop (call $proxy_get_buffer_bytes (i32.const 6) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
    (call $emit_out @vm)
    (i32.const 1))
  (func (export "proxy_on_configure") (param $id i32) (param $size i32) (result i32)
    (drop (call $proxy_get_buffer_bytes (i32.const 7) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
    (call $emit_out @config)
    ;; a configuration of exactly three bytes is rejected
    (i32.ne (local.get $size) (i32.const 3)))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $emit_i32 @config_later (call $proxy_get_buffer_bytes (i32.const 7) (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 4)))
    (i32.const 0))
"#;

#[test]
fn configure_sees_the_plugin_configuration_and_contexts_have_parents() {
    let host = host(&[], LIFECYCLE);
    let options = PluginOptions {
        vm_config: b"vm-cfg".to_vec(),
        ..PluginOptions::default()
    };
    let plugin = host.plugin_with(br#"{"a":1}"#, options).unwrap();
    assert_eq!(plugin.shared_data("config").unwrap(), br#"{"a":1}"#);
    assert_eq!(plugin.shared_data("vm").unwrap(), b"vm-cfg");
    assert_eq!(emitted_i32(&plugin, "vm_size"), 6);
    assert_eq!(emitted_i32(&plugin, "root_id"), 1);
    let stream = plugin.stream().unwrap();
    assert_eq!(stream.id(), 2);
    assert_eq!(emitted_i32(&plugin, "stream_id"), 2);
    assert_eq!(emitted_i32(&plugin, "stream_parent"), 1);
    assert_eq!(
        stream.request_headers(&[(":path", "/")], true).unwrap(),
        Action::Continue
    );
    // The plugin configuration is only visible during proxy_on_configure.
    assert_eq!(emitted_i32(&plugin, "config_later"), 1);
    let second = plugin.stream().unwrap();
    assert_eq!(second.id(), 3);
}

#[test]
fn a_rejected_configuration_is_an_error() {
    let host = host(&[], LIFECYCLE);
    assert!(matches!(
        host.plugin(b"bad"),
        Err(HostError::ConfigureFailed { .. })
    ));
    assert!(host.plugin(b"good").is_ok());
}

#[test]
fn a_module_without_callbacks_lets_everything_through() {
    let host = host(&[], "");
    let plugin = host.plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    assert_eq!(
        stream.request_headers(&[(":path", "/x")], false).unwrap(),
        Action::Continue
    );
    assert_eq!(stream.request_body(b"abc", true).unwrap(), Action::Continue);
    assert_eq!(
        stream.response_headers(&[], false).unwrap(),
        Action::Continue
    );
    assert_eq!(stream.response_body(b"ok", true).unwrap(), Action::Continue);
    let upstream = stream.upstream_request().unwrap();
    assert_eq!(upstream.body, b"abc");
    assert!(upstream.complete);
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text(), "ok");
    stream.finish().unwrap();
    stream.finish().unwrap();
}

#[test]
fn modules_that_are_not_proxy_wasm_filters_are_refused() {
    let no_abi = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    let host = Host::from_bytes(&no_abi).unwrap();
    assert!(matches!(host.plugin(b""), Err(HostError::AbiVersion)));

    let wrong_signature = super::guest::host(
        &[],
        r#"(func (export "proxy_on_request_headers") (param i32 i32) (result i32) (i32.const 0))"#,
    );
    match wrong_signature.plugin(b"") {
        Err(HostError::ExportSignature { name, .. }) => {
            assert_eq!(name, "proxy_on_request_headers")
        }
        other => panic!("expected a signature error, got {:?}", other.err()),
    }

    assert!(matches!(
        Host::from_bytes(b"not wasm"),
        Err(HostError::Compile(_))
    ));
    assert!(matches!(
        Host::load("/nonexistent/mcp_guard.wasm"),
        Err(HostError::ModuleNotFound(_))
    ));
}

#[test]
fn vm_start_refusal_is_an_error() {
    let host = host(
        &[],
        r#"(func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 0))"#,
    );
    assert!(matches!(
        host.plugin(b""),
        Err(HostError::VmStartFailed { .. })
    ));
}
