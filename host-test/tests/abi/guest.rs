//! Builds small proxy-wasm guests in WAT for the ABI tests.
//!
//! Every guest gets the same prelude: all hostcall imports, a memory, a bump
//! allocator as `proxy_on_memory_allocate` (setting the global `$bad_alloc`
//! makes it return a pointer near the end of the address space), the ABI
//! version marker, and helpers that report values to the test through
//! shared data: `$emit(key_ptr, key_len, ptr, len)`, `$emit_i32(key_ptr,
//! key_len, x)` and `$emit_out(key_ptr, key_len)` (the buffer whose pointer
//! and size a hostcall wrote at addresses 0 and 4), plus `$store_pair(at,
//! a, b)` to build an iovec or pointer/size pair. Test-specific byte
//! strings are placed in data segments; in the function text `@name`
//! expands to `(i32.const OFFSET) (i32.const LEN)` of the string `name`; a
//! name used without being declared stands for its own text (handy for
//! emit keys).

use mcp_guard_host_test::Host;

const PRELUDE: &str = r#"
  (import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_log_level" (func $proxy_get_log_level (param i32) (result i32)))
  (import "env" "proxy_get_current_time_nanoseconds" (func $proxy_get_current_time_nanoseconds (param i32) (result i32)))
  (import "env" "proxy_set_tick_period_milliseconds" (func $proxy_set_tick_period_milliseconds (param i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes" (func $proxy_get_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_buffer_bytes" (func $proxy_set_buffer_bytes (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs" (func $proxy_get_header_map_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_set_header_map_pairs" (func $proxy_set_header_map_pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value" (func $proxy_get_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $proxy_add_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_replace_header_map_value" (func $proxy_replace_header_map_value (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $proxy_remove_header_map_value (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property" (func $proxy_get_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_property" (func $proxy_set_property (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data" (func $proxy_get_shared_data (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data" (func $proxy_set_shared_data (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_register_shared_queue" (func $proxy_register_shared_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_resolve_shared_queue" (func $proxy_resolve_shared_queue (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue" (func $proxy_enqueue_shared_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue" (func $proxy_dequeue_shared_queue (param i32 i32 i32) (result i32)))
  (import "env" "proxy_continue_stream" (func $proxy_continue_stream (param i32) (result i32)))
  (import "env" "proxy_close_stream" (func $proxy_close_stream (param i32) (result i32)))
  (import "env" "proxy_send_local_response" (func $proxy_send_local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_http_call" (func $proxy_http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_define_metric" (func $proxy_define_metric (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $proxy_increment_metric (param i32 i64) (result i32)))
  (import "env" "proxy_record_metric" (func $proxy_record_metric (param i32 i64) (result i32)))
  (import "env" "proxy_get_metric" (func $proxy_get_metric (param i32 i32) (result i32)))
  (import "env" "proxy_set_effective_context" (func $proxy_set_effective_context (param i32) (result i32)))
  (import "env" "proxy_done" (func $proxy_done (result i32)))
  (import "env" "proxy_call_foreign_function" (func $proxy_call_foreign_function (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_grpc_cancel" (func $proxy_grpc_cancel (param i32) (result i32)))
  (import "env" "not_a_real_hostcall" (func $not_a_real_hostcall))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 131072))
  (global $bad_alloc (mut i32) (i32.const 0))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (if (global.get $bad_alloc) (then (return (i32.const -8))))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $size)))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func $emit (param $k i32) (param $kl i32) (param $v i32) (param $vl i32)
    (drop (call $proxy_set_shared_data (local.get $k) (local.get $kl) (local.get $v) (local.get $vl) (i32.const 0))))
  (func $emit_i32 (param $k i32) (param $kl i32) (param $x i32)
    (i32.store (i32.const 200) (local.get $x))
    (call $emit (local.get $k) (local.get $kl) (i32.const 200) (i32.const 4)))
  (func $store_pair (param $at i32) (param $a i32) (param $b i32)
    (i32.store (local.get $at) (local.get $a))
    (i32.store (i32.add (local.get $at) (i32.const 4)) (local.get $b)))
  (func $emit_out (param $k i32) (param $kl i32)
    (call $emit (local.get $k) (local.get $kl) (i32.load (i32.const 0)) (i32.load (i32.const 4))))
"#;

/// First offset used for test strings (below it: scratch out-parameters).
const DATA_START: usize = 1024;

/// Escapes bytes for a WAT string literal.
fn wat_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

/// Builds the module text: prelude, data segments, then `funcs`.
pub fn wat(declared: &[(&str, &[u8])], funcs: &str) -> String {
    let mut strings: Vec<(&str, &[u8])> = declared.to_vec();
    for (at, _) in funcs.match_indices('@') {
        let name_len = funcs[at + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(funcs.len() - at - 1);
        let name = &funcs[at + 1..at + 1 + name_len];
        if !name.is_empty() && !strings.iter().any(|(n, _)| *n == name) {
            strings.push((name, name.as_bytes()));
        }
    }
    let mut data = String::new();
    let mut funcs = funcs.to_string();
    let mut offset = DATA_START;
    // Longest names first so `@ab` is not expanded inside `@abc`.
    let mut order: Vec<usize> = (0..strings.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(strings[i].0.len()));
    let mut offsets = vec![0; strings.len()];
    for (i, (_, bytes)) in strings.iter().enumerate() {
        offsets[i] = offset;
        data.push_str(&format!(
            "  (data (i32.const {offset}) \"{}\")\n",
            wat_bytes(bytes)
        ));
        offset += bytes.len().div_ceil(8) * 8 + 8;
    }
    assert!(offset < 131072, "test strings overflow the data area");
    for i in order {
        let (name, bytes) = strings[i];
        funcs = funcs.replace(
            &format!("@{name}"),
            &format!("(i32.const {}) (i32.const {})", offsets[i], bytes.len()),
        );
    }
    format!("(module\n{PRELUDE}\n{data}\n{funcs}\n)")
}

/// Compiles a guest.
pub fn host(strings: &[(&str, &[u8])], funcs: &str) -> Host {
    let text = wat(strings, funcs);
    let binary = wat::parse_str(&text).unwrap_or_else(|e| panic!("bad WAT: {e}\n{text}"));
    Host::from_bytes(&binary).expect("module compiles")
}

/// Reads a value a guest emitted as `$emit_i32`.
pub fn emitted_i32(plugin: &mcp_guard_host_test::Plugin, key: &str) -> i32 {
    let bytes = plugin
        .shared_data(key)
        .unwrap_or_else(|| panic!("guest did not emit {key:?}"));
    i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))
}
