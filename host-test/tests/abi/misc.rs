//! Metrics, shared data, queues, ticks, time, logs and WASI.

use std::time::{Duration, UNIX_EPOCH};

use mcp_guard_host_test::{LogLevel, LogSource, PluginOptions};

use super::guest::{emitted_i32, host};

#[test]
fn metrics_follow_envoy_rules() {
    let plugin = host(
        &[],
        r#"
        (func (export "proxy_on_configure") (param i32 i32) (result i32)
          (drop (call $proxy_define_metric (i32.const 0) @requests (i32.const 40)))
          (drop (call $proxy_define_metric (i32.const 1) @inflight (i32.const 44)))
          (drop (call $proxy_define_metric (i32.const 2) @latency (i32.const 48)))
          (call $emit_i32 @bad_type (call $proxy_define_metric (i32.const 9) @x (i32.const 52)))
          (drop (call $proxy_increment_metric (i32.load (i32.const 40)) (i64.const 2)))
          (call $emit_i32 @negative_counter (call $proxy_increment_metric (i32.load (i32.const 40)) (i64.const -1)))
          (drop (call $proxy_increment_metric (i32.load (i32.const 44)) (i64.const 5)))
          (drop (call $proxy_increment_metric (i32.load (i32.const 44)) (i64.const -2)))
          (drop (call $proxy_record_metric (i32.load (i32.const 48)) (i64.const 7)))
          (drop (call $proxy_get_metric (i32.load (i32.const 40)) (i32.const 56)))
          (call $emit_i32 @counter (i32.load (i32.const 56)))
          (call $emit_i32 @histogram_get (call $proxy_get_metric (i32.load (i32.const 48)) (i32.const 56)))
          (i32.const 1))
        "#,
    )
    .plugin(b"")
    .unwrap();
    let metrics = plugin.metrics();
    assert_eq!(metrics["requests"], 2);
    assert_eq!(metrics["inflight"], 3);
    assert_eq!(plugin.histograms()["latency"], vec![7]);
    assert_eq!(emitted_i32(&plugin, "counter"), 2);
    assert_eq!(emitted_i32(&plugin, "bad_type"), 2);
    assert_eq!(emitted_i32(&plugin, "negative_counter"), 2);
    assert_eq!(emitted_i32(&plugin, "histogram_get"), 2);
}

#[test]
fn shared_data_compare_and_swap() {
    let plugin = host(
        &[("key", b"k"), ("v1", b"one"), ("v2", b"two")],
        r#"
        (func (export "proxy_on_configure") (param i32 i32) (result i32)
          (call $emit_i32 @missing (call $proxy_get_shared_data @key (i32.const 0) (i32.const 4) (i32.const 12)))
          (drop (call $proxy_set_shared_data @key @v1 (i32.const 0)))
          (call $emit_i32 @found (call $proxy_get_shared_data @key (i32.const 0) (i32.const 4) (i32.const 12)))
          (call $emit_out @value)
          (call $emit_i32 @stale
            (call $proxy_set_shared_data @key @v2 (i32.add (i32.load (i32.const 12)) (i32.const 1))))
          (call $emit_i32 @fresh
            (call $proxy_set_shared_data @key @v2 (i32.load (i32.const 12))))
          (i32.const 1))
        "#,
    )
    .plugin(b"")
    .unwrap();
    assert_eq!(emitted_i32(&plugin, "missing"), 1);
    assert_eq!(emitted_i32(&plugin, "found"), 0);
    assert_eq!(plugin.shared_data("value").unwrap(), b"one");
    assert_eq!(emitted_i32(&plugin, "stale"), 8, "CasMismatch");
    assert_eq!(emitted_i32(&plugin, "fresh"), 0);
    assert_eq!(plugin.shared_data("k").unwrap(), b"two");
    plugin.set_shared_data("from-test", "x");
    assert_eq!(plugin.all_shared_data()["from-test"], b"x");
}

#[test]
fn queues_notify_their_owner() {
    let plugin = host(
        &[("name", b"q"), ("vm", b""), ("hello", b"hello")],
        r#"
        (func (export "proxy_on_configure") (param i32 i32) (result i32)
          (drop (call $proxy_register_shared_queue @name (i32.const 40)))
          (drop (call $proxy_resolve_shared_queue @vm @name (i32.const 44)))
          (call $emit_i32 @same (i32.eq (i32.load (i32.const 40)) (i32.load (i32.const 44))))
          (call $emit_i32 @unknown (call $proxy_resolve_shared_queue @name @name (i32.const 44)))
          (drop (call $proxy_enqueue_shared_queue (i32.load (i32.const 40)) @hello))
          (i32.const 1))
        (func (export "proxy_on_queue_ready") (param $ctx i32) (param $queue i32)
          (call $emit_i32 @ready_ctx (local.get $ctx))
          (drop (call $proxy_dequeue_shared_queue (local.get $queue) (i32.const 0) (i32.const 4)))
          (call $emit_out @dequeued)
          (call $emit_i32 @empty (call $proxy_dequeue_shared_queue (local.get $queue) (i32.const 0) (i32.const 4))))
        "#,
    )
    .plugin(b"")
    .unwrap();
    assert_eq!(emitted_i32(&plugin, "same"), 1);
    assert_eq!(emitted_i32(&plugin, "unknown"), 1);
    assert_eq!(emitted_i32(&plugin, "ready_ctx"), 1);
    assert_eq!(plugin.shared_data("dequeued").unwrap(), b"hello");
    assert_eq!(emitted_i32(&plugin, "empty"), 7);
}

const CLOCK: &str = r#"
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_set_tick_period_milliseconds (i32.const 100)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $proxy_get_current_time_nanoseconds (i32.const 16)))
    (call $emit @proxy_time (i32.const 16) (i32.const 8))
    (drop (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 24)))
    (call $emit @wasi_time (i32.const 24) (i32.const 8))
    (drop (call $random_get (i32.const 32) (i32.const 16)))
    (call $emit @random (i32.const 32) (i32.const 16)))
"#;

#[test]
fn ticks_read_the_settable_clock() {
    let plugin = host(&[], CLOCK).plugin(b"").unwrap();
    assert_eq!(plugin.tick_period(), Some(Duration::from_millis(100)));
    plugin
        .set_time(UNIX_EPOCH + Duration::from_secs(1234))
        .unwrap();
    assert!(plugin.tick().unwrap());
    let expected = 1_234_000_000_000u64.to_le_bytes();
    assert_eq!(plugin.shared_data("proxy_time").unwrap(), expected);
    assert_eq!(plugin.shared_data("wasi_time").unwrap(), expected);
    plugin.advance(Duration::from_millis(1500)).unwrap();
    plugin.tick().unwrap();
    assert_eq!(
        plugin.shared_data("proxy_time").unwrap(),
        1_235_500_000_000u64.to_le_bytes()
    );
    assert_eq!(plugin.now(), UNIX_EPOCH + Duration::from_millis(1_235_500));

    let no_ticks = host(&[], "").plugin(b"").unwrap();
    assert_eq!(no_ticks.tick_period(), None);
    assert!(!no_ticks.tick().unwrap());
}

#[test]
fn randomness_is_deterministic_per_seed() {
    let random = |seed| {
        let options = PluginOptions {
            random_seed: seed,
            ..PluginOptions::default()
        };
        let plugin = host(&[], CLOCK).plugin_with(b"", options).unwrap();
        plugin.tick().unwrap();
        plugin.shared_data("random").unwrap()
    };
    assert_eq!(random(1), random(1));
    assert_ne!(random(1), random(2));
    assert_ne!(random(1), vec![0; 16]);
}

#[test]
fn logs_are_captured_and_filtered_by_level() {
    let guest = host(
        &[
            ("hello", b"hello"),
            ("quiet", b"trace line"),
            ("out", b"out line\n"),
        ],
        r#"
        (func (export "proxy_on_configure") (param i32 i32) (result i32)
          (drop (call $proxy_log (i32.const 2) @hello))
          (drop (call $proxy_log (i32.const 0) @quiet))
          (call $store_pair (i32.const 16) @out)
          (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
          (drop (call $proxy_get_log_level (i32.const 28)))
          (call $emit_i32 @level (i32.load (i32.const 28)))
          (i32.const 1))
        "#,
    );
    let options = PluginOptions {
        log_level: LogLevel::Info,
        ..PluginOptions::default()
    };
    let plugin = guest.plugin_with(b"", options).unwrap();
    let lines: Vec<String> = plugin.logs().iter().map(ToString::to_string).collect();
    assert_eq!(lines, vec!["info: hello", "stdout: out line"]);
    assert_eq!(plugin.logs()[0].context_id, 1);
    assert_eq!(plugin.logs()[1].source, LogSource::Stdout);
    assert_eq!(emitted_i32(&plugin, "level"), 2);

    let everything = guest.plugin(b"").unwrap();
    assert_eq!(everything.logs().len(), 3);
    assert_eq!(everything.logs()[1].level, LogLevel::Trace);
    assert_eq!(everything.log_count(), 3);
    assert_eq!(everything.logs_since(2).len(), 1);
    everything.clear_logs();
    assert!(everything.logs().is_empty());
}
