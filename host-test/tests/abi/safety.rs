//! A misbehaving guest cannot crash or hang the host.

use mcp_guard_host_test::{HostError, PluginOptions};

use super::guest::{emitted_i32, host};

#[test]
fn bad_arguments_get_statuses_not_crashes() {
    let garbage: &[u8] = &[5, 0, 0, 0, 1, 0, 0, 0];
    let plugin = host(
        &[("garbage", garbage), ("x", b"x")],
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $emit_i32 @log_status (call $proxy_log (i32.const 2) (i32.const -16) (i32.const 100)))
          (call $emit_i32 @out_status (call $proxy_get_header_map_pairs (i32.const 0) (i32.const -2) (i32.const 4)))
          (call $emit_i32 @len_status (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 65536) (i32.const -1)))
          (call $emit_i32 @pairs_status (call $proxy_set_header_map_pairs (i32.const 0) @garbage))
          (call $emit_i32 @type_status (call $proxy_get_buffer_bytes (i32.const 99) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 4)))
          (call $emit_i32 @map_status (call $proxy_get_header_map_pairs (i32.const 42) (i32.const 0) (i32.const 4)))
          (call $emit_i32 @ctx_status (call $proxy_set_effective_context (i32.const 999)))
          (call $emit_i32 @foreign_status (call $proxy_call_foreign_function @x @x (i32.const 0) (i32.const 4)))
          (call $emit_i32 @grpc_status (call $proxy_grpc_cancel (i32.const 1)))
          (call $emit_i32 @level_status (call $proxy_log (i32.const 9) @x))
          (call $emit_i32 @metric_status (call $proxy_increment_metric (i32.const 77) (i64.const 1)))
          (call $emit_i32 @middle_status (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 5) (i32.const 1) @x))
          (global.set $bad_alloc (i32.const 1))
          (call $emit_i32 @alloc_status (call $proxy_get_header_map_pairs (i32.const 0) (i32.const 0) (i32.const 4)))
          (global.set $bad_alloc (i32.const 0))
          (i32.const 0))
        "#,
    )
    .plugin(b"")
    .unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/")], false).unwrap();
    for (key, status) in [
        ("log_status", 11),
        ("out_status", 11),
        ("len_status", 11),
        ("pairs_status", 2),
        ("type_status", 2),
        ("map_status", 2),
        ("ctx_status", 2),
        ("foreign_status", 1),
        ("grpc_status", 12),
        ("level_status", 2),
        ("metric_status", 1),
        ("alloc_status", 11),
    ] {
        assert_eq!(emitted_i32(&plugin, key), status, "{key}");
    }
    // In the headers callback Envoy has no body buffer at all: any write
    // to it is refused (BadArgument), wherever it would land.
    assert_eq!(emitted_i32(&plugin, "middle_status"), 2);
    assert!(plugin.failure().is_none());
}

#[test]
fn a_trap_is_an_error_and_kills_the_vm() {
    let plugin = host(
        &[],
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (unreachable))
        "#,
    )
    .plugin(b"")
    .unwrap();
    let stream = plugin.stream().unwrap();
    match stream.request_headers(&[(":path", "/")], false) {
        Err(HostError::Trap { callback, .. }) => assert_eq!(callback, "proxy_on_request_headers"),
        other => panic!("expected a trap, got {other:?}"),
    }
    assert!(plugin.failure().is_some());
    assert!(matches!(plugin.stream(), Err(HostError::VmFailed(_))));
    assert!(matches!(stream.finish(), Err(HostError::VmFailed(_))));
}

#[test]
fn a_panic_message_on_stderr_is_part_of_the_trap() {
    let plugin = host(
        &[("boom", b"panicked at src/lib.rs: boom\n")],
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $store_pair (i32.const 16) @boom)
          (drop (call $fd_write (i32.const 2) (i32.const 16) (i32.const 1) (i32.const 32)))
          (unreachable))
        "#,
    )
    .plugin(b"")
    .unwrap();
    let err = plugin
        .stream()
        .unwrap()
        .request_headers(&[(":path", "/")], true)
        .unwrap_err();
    assert!(
        err.to_string().contains("panicked at src/lib.rs: boom"),
        "{err}"
    );
    assert!(plugin
        .logs()
        .iter()
        .any(|l| l.to_string() == "stderr: panicked at src/lib.rs: boom"));
}

#[test]
fn unknown_imports_and_proc_exit_trap() {
    let plugin = host(
        &[],
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $not_a_real_hostcall)
          (i32.const 0))
        "#,
    )
    .plugin(b"")
    .unwrap();
    let err = plugin
        .stream()
        .unwrap()
        .request_headers(&[], true)
        .unwrap_err();
    assert!(matches!(err, HostError::Trap { .. }), "{err}");

    let plugin = host(
        &[],
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $proc_exit (i32.const 3))
          (i32.const 0))
        "#,
    )
    .plugin(b"")
    .unwrap();
    let err = plugin
        .stream()
        .unwrap()
        .request_headers(&[], true)
        .unwrap_err();
    assert!(err.to_string().contains("proc_exit(3)"), "{err}");
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let options = PluginOptions {
        fuel_per_call: Some(1_000_000),
        ..PluginOptions::default()
    };
    let plugin = host(
        &[],
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (loop $forever (br $forever))
          (i32.const 0))
        "#,
    )
    .plugin_with(b"", options)
    .unwrap();
    let err = plugin
        .stream()
        .unwrap()
        .request_headers(&[], true)
        .unwrap_err();
    assert!(err.to_string().contains("fuel"), "{err}");
}

#[test]
fn memory_growth_is_capped() {
    let options = PluginOptions {
        max_memory_bytes: 1 << 20,
        ..PluginOptions::default()
    };
    let plugin = host(
        &[],
        r#"
        (func (export "proxy_on_configure") (param i32 i32) (result i32)
          (call $emit_i32 @grow (memory.grow (i32.const 100)))
          (i32.const 1))
        "#,
    )
    .plugin_with(b"", options)
    .unwrap();
    assert_eq!(emitted_i32(&plugin, "grow"), -1);
}
