//! Header map hostcalls and what leaves the filter.

use mcp_guard_host_test::{pairs, Action};

use super::guest::{emitted_i32, host};

const HEADERS: &str = r#"
  (func (export "proxy_on_request_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (call $emit_i32 @num (local.get $n))
    (call $emit_i32 @eos (local.get $eos))
    (call $emit_i32 @path_status (call $proxy_get_header_map_value (i32.const 0) @path (i32.const 0) (i32.const 4)))
    (call $emit_out @path_value)
    (call $emit_i32 @missing_status (call $proxy_get_header_map_value (i32.const 0) @missing (i32.const 0) (i32.const 4)))
    (call $emit_i32 @response_status (call $proxy_get_header_map_pairs (i32.const 2) (i32.const 0) (i32.const 4)))
    (drop (call $proxy_add_header_map_value (i32.const 0) @added @one))
    (drop (call $proxy_add_header_map_value (i32.const 0) @added @two))
    (drop (call $proxy_replace_header_map_value (i32.const 0) @agent @one))
    (drop (call $proxy_remove_header_map_value (i32.const 0) @remove))
    (drop (call $proxy_get_header_map_pairs (i32.const 0) (i32.const 0) (i32.const 4)))
    (call $emit_out @pairs)
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param $id i32) (param $n i32) (param $eos i32) (result i32)
    (call $emit_i32 @set_status (call $proxy_set_header_map_pairs (i32.const 2) @new_map))
    ;; an empty header value comes back as a null pointer and size 0
    (drop (call $proxy_add_header_map_value (i32.const 2) @empty_name (i32.const 0) (i32.const 0)))
    (call $emit_i32 @empty_status (call $proxy_get_header_map_value (i32.const 2) @empty_name (i32.const 0) (i32.const 4)))
    (call $emit_i32 @empty_size (i32.load (i32.const 4)))
    (i32.const 0))
"#;

fn guest() -> mcp_guard_host_test::Host {
    let new_map = pairs::encode(&[(":status", "201"), ("X-New", "v")]);
    host(
        &[
            ("path", b":path"),
            ("missing", b"x-nope"),
            ("added", b"x-added"),
            ("one", b"one"),
            ("two", b"two"),
            ("agent", b"User-Agent"),
            ("remove", b"x-remove"),
            ("new_map", &new_map),
            ("empty_name", b"x-empty"),
        ],
        HEADERS,
    )
}

fn text(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_filter_reads_and_edits_request_headers() {
    let plugin = guest().plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    let action = stream
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/mcp"),
                ("User-Agent", "curl"),
                ("X-Remove", "1"),
            ],
            true,
        )
        .unwrap();
    assert_eq!(action, Action::Continue);
    assert_eq!(emitted_i32(&plugin, "num"), 4);
    assert_eq!(emitted_i32(&plugin, "eos"), 1);
    assert_eq!(emitted_i32(&plugin, "path_status"), 0);
    assert_eq!(plugin.shared_data("path_value").unwrap(), b"/mcp");
    assert_eq!(emitted_i32(&plugin, "missing_status"), 1, "NotFound");
    assert_eq!(
        emitted_i32(&plugin, "response_status"),
        2,
        "BadArgument before response"
    );
    let expected = text(&[
        (":method", "GET"),
        (":path", "/mcp"),
        ("user-agent", "one"),
        ("x-added", "one"),
        ("x-added", "two"),
    ]);
    let upstream = stream.upstream_request().unwrap();
    assert_eq!(upstream.headers, expected);
    assert!(upstream.complete);
    assert!(upstream.body.is_empty());
    let seen: Vec<(String, String)> = pairs::decode(&plugin.shared_data("pairs").unwrap())
        .unwrap()
        .into_iter()
        .map(|(k, v)| (String::from_utf8(k).unwrap(), String::from_utf8(v).unwrap()))
        .collect();
    assert_eq!(seen, expected);
}

#[test]
fn the_filter_replaces_response_headers() {
    let plugin = guest().plugin(b"").unwrap();
    let stream = plugin.stream().unwrap();
    stream.request_headers(&[(":path", "/")], true).unwrap();
    stream
        .response_headers(&[(":status", "200"), ("server", "up")], true)
        .unwrap();
    assert_eq!(emitted_i32(&plugin, "set_status"), 0);
    assert_eq!(emitted_i32(&plugin, "empty_status"), 0);
    assert_eq!(emitted_i32(&plugin, "empty_size"), 0);
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 201);
    assert_eq!(
        response.headers,
        text(&[(":status", "201"), ("x-new", "v"), ("x-empty", "")])
    );
    assert!(response.complete);
}
