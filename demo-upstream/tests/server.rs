//! Routing, the common headers, shutdown and the binary.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{post_json, request, Server};

#[tokio::test]
async fn healthz_is_ok() {
    let server = Server::start().await;
    let reply = request(server.addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok");
    assert_eq!(reply.header("x-demo-upstream"), Some("1"));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let server = Server::start().await;
    let reply = request(server.addr, "GET", "/nope", &[], b"").await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"], "not_found");
    let reply = request(server.addr, "GET", "/mcp", &[], b"").await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = request(server.addr, "DELETE", "/healthz", &[], b"").await;
    assert_eq!(reply.status, 405);
}

#[tokio::test]
async fn reports_which_identity_headers_arrived() {
    let server = Server::start().await;
    let reply = request(
        server.addr,
        "GET",
        "/healthz",
        &[
            ("X-MCP-Subject", "alice"),
            ("x-mcp-decision", "allow"),
            ("x-other", "1"),
            ("authorization", "Bearer t"),
        ],
        b"",
    )
    .await;
    assert_eq!(
        reply.header("x-seen-headers"),
        Some("x-mcp-decision,x-mcp-subject")
    );
    assert_eq!(reply.header("x-seen-authorization"), Some("1"));
    let reply = post_json(server.addr, "/mcp", "{}").await;
    assert_eq!(reply.header("x-seen-headers"), Some(""));
    assert_eq!(reply.header("x-seen-authorization"), Some("0"));
}

#[tokio::test]
async fn shutdown_lets_a_stream_in_flight_finish() {
    let server = Server::start().await;
    let addr = server.addr;
    let in_flight = tokio::spawn(async move {
        post_json(
            addr,
            "/v1/chat/completions",
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(15)).await;
    server.stop().await.expect("clean shutdown");
    let reply = in_flight.await.expect("client task");
    assert_eq!(reply.status, 200);
    assert!(reply.text().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn binary_prints_its_address_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-guard-demo-upstream"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn binary");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read line");
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert_ne!(addr.port(), 0);

    let reply = request(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!(reply.status, 200);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "binary did not stop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn binary_rejects_unknown_arguments() {
    let output = Command::new(env!("CARGO_BIN_EXE_mcp-guard-demo-upstream"))
        .arg("--bogus")
        .output()
        .expect("run binary");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--bogus"));
}

#[test]
fn binary_prints_its_version_and_help() {
    let run = |arg: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_mcp-guard-demo-upstream"))
            .arg(arg)
            .output()
            .expect("run binary");
        assert!(output.status.success(), "{arg}: {output:?}");
        String::from_utf8(output.stdout).expect("utf-8")
    };
    let version = run("--version");
    assert!(
        version.starts_with(&format!(
            "mcp-guard-demo-upstream {}",
            env!("CARGO_PKG_VERSION")
        )),
        "{version}"
    );
    let help = run("--help");
    for expected in [
        "--listen <ADDR>",
        "MCP_GUARD_DEMO_UPSTREAM_LISTEN",
        "--version",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
}
