//! `mcp-guard pins` against live MCP servers on loopback: the demo
//! upstream (JSON answers) and a small server of this test (a session id
//! to carry, event-stream answers, pagination). The printed pins are the
//! digests the engine computes for the definitions the servers serve.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use mcp_guard_engine::pins::tool_digest;
use serde_json::{json, Value};

fn pins(url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcp-guard"))
        // The services in these tests listen on plain http (loopback).
        .env("MCP_GUARD_ALLOW_PLAIN_HTTP", "1")
        .arg("pins")
        .arg("--url")
        .arg(url)
        .args(extra)
        .output()
        .expect("binary runs")
}

fn pin(tool: Value) -> String {
    tool_digest(tool.as_object().unwrap()).to_string()
}

#[test]
fn pins_the_demo_upstreams_tools() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (port, stop) = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(mcp_guard_demo_upstream::serve(listener, async {
            let _ = rx.await;
        }));
        (port, tx)
    });
    let out = pins(&format!("http://127.0.0.1:{port}/mcp"), &[]);
    let _ = stop.send(());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let section = &printed["tool_pins"];
    assert_eq!(section["on_change"], "filter");
    let names: Vec<&String> = section["tools"].as_object().unwrap().keys().collect();
    assert_eq!(
        names,
        ["delete_customer", "get_weather", "search_customers"]
    );
    // The demo's definition, written here in another member order.
    let weather = json!({"inputSchema": {"required": ["city"], "type": "object",
        "properties": {"city": {"type": "string"}}},
        "description": "Current weather for a city.", "name": "get_weather"});
    assert_eq!(section["tools"]["get_weather"], pin(weather));
    // The output is a valid bundle section.
    let bundle = json!({"name": "b", "version": 1, "tool_pins": section});
    mcp_guard_engine::Bundle::parse(bundle.to_string().as_bytes()).unwrap();
}

/// What the small server saw.
#[derive(Default)]
struct Seen {
    methods: Vec<String>,
    sessions: Vec<Option<String>>,
    tokens: Vec<Option<String>>,
}

/// Serves `count` requests: `initialize` sets a session, `tools/list`
/// answers page 1 as JSON with a cursor and page 2 as an event stream.
fn small_server(count: usize) -> (u16, Arc<Mutex<Seen>>, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = Arc::clone(&seen);
    let handle = std::thread::spawn(move || {
        for _ in 0..count {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end().to_owned();
                if line.is_empty() {
                    break;
                }
                headers.push(line.to_ascii_lowercase());
            }
            let header = |name: &str| {
                headers
                    .iter()
                    .find_map(|h| h.strip_prefix(&format!("{name}: ")).map(str::to_owned))
            };
            let len: usize = header("content-length").unwrap().parse().unwrap();
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let message: Value = serde_json::from_slice(&body).unwrap();
            let method = message["method"].as_str().unwrap().to_owned();
            {
                let mut s = record.lock().unwrap();
                s.methods.push(method.clone());
                s.sessions.push(header("mcp-session-id"));
                s.tokens.push(header("authorization"));
            }
            let id = message["id"].clone();
            let (content_type, extra, payload) = match method.as_str() {
                "initialize" => (
                    "application/json",
                    "mcp-session-id: s-42\r\n",
                    json!({"jsonrpc": "2.0", "id": id, "result": {"protocolVersion": "2025-06-18",
                        "capabilities": {}, "serverInfo": {"name": "small", "version": "1"}}})
                    .to_string(),
                ),
                "notifications/initialized" => ("application/json", "", String::new()),
                _ if message["params"]["cursor"].is_null() => (
                    "application/json",
                    "",
                    json!({"jsonrpc": "2.0", "id": id, "result": {"nextCursor": "p2",
                        "tools": [{"name": "zeta", "description": "last", "inputSchema": {"type": "object"}}]}})
                    .to_string(),
                ),
                _ => {
                    let answer = json!({"jsonrpc": "2.0", "id": id, "result": {"tools": [
                        {"name": "alpha", "description": "first", "inputSchema": {"type": "object",
                            "properties": {"n": {"type": "number", "default": 1.5e3}}}}]}});
                    (
                        "text/event-stream",
                        "",
                        format!(": ping\n\nevent: message\ndata: {{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}}\n\nevent: message\ndata: {answer}\n\n"),
                    )
                }
            };
            let status = if payload.is_empty() {
                "202 Accepted"
            } else {
                "200 OK"
            };
            let mut out = stream;
            write!(
                out,
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{payload}",
                payload.len()
            )
            .unwrap();
        }
    });
    (port, seen, handle)
}

#[test]
fn follows_sessions_event_streams_and_pages() {
    let (port, seen, handle) = small_server(4);
    let out = pins(&format!("http://127.0.0.1:{port}/mcp"), &["--token", "tok"]);
    handle.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let printed: Value = serde_json::from_str(&text).unwrap();
    let tools = printed["tool_pins"]["tools"].as_object().unwrap();
    assert_eq!(
        tools.keys().collect::<Vec<_>>(),
        ["alpha", "zeta"],
        "sorted by name"
    );
    assert!(text.find("alpha").unwrap() < text.find("zeta").unwrap());
    // 1.5e3 is pinned as 1500: the same tool written either way.
    let alpha = json!({"name": "alpha", "description": "first", "inputSchema": {"type": "object",
        "properties": {"n": {"type": "number", "default": 1500}}}});
    assert_eq!(tools["alpha"], pin(alpha));
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/list"
        ]
    );
    assert_eq!(seen.sessions[0], None);
    assert!(seen.sessions[1..]
        .iter()
        .all(|s| s.as_deref() == Some("s-42")));
    assert!(seen
        .tokens
        .iter()
        .all(|t| t.as_deref() == Some("bearer tok")));
}

#[test]
fn an_unreachable_server_is_a_usage_error() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = pins(&format!("http://127.0.0.1:{port}/mcp"), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("initialize"));
}
