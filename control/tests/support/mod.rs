//! The control service in-process or as its binary, the test tokens and
//! bundles; the raw-socket HTTP client is the shared one
//! ([`mcp_guard_test_support::http`]).

#![allow(dead_code, unused_imports)] // each test file uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcp_guard_control::BundleStore;
pub use mcp_guard_test_support::http::{blocking_request, exchange, get, request, Reply};
use mcp_guard_test_support::Running;

/// The control service running in this process, and the means to stop it.
pub struct Server {
    pub addr: SocketAddr,
    running: Running,
}

impl Server {
    /// Starts the control service over `store` on a free loopback port.
    pub async fn start(store: BundleStore) -> Server {
        start_with(store, mcp_guard_control::Options::default()).await
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(self) -> std::io::Result<()> {
        self.running.stop().await
    }
}

/// Starts the control service with write tokens and options.
pub async fn start_with(store: BundleStore, options: mcp_guard_control::Options) -> Server {
    let running = Running::spawn(|listener, shutdown| {
        mcp_guard_control::serve_with(listener, Arc::new(store), options, shutdown)
    })
    .await;
    Server {
        addr: running.addr,
        running,
    }
}

/// A fresh, empty directory under cargo's scratch space for this test.
pub fn scratch_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("mcp-guard-control-tests")
        .join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// The token every test pushes with, and its scope.
pub const TEAM_A_TOKEN: &str = "team-a-secret-token";
/// A token scoped to other bundles only.
pub const TEAM_B_TOKEN: &str = "team-b-secret-token";

/// The tokens-file JSON for [`TEAM_A_TOKEN`] (bundles `demo`, `team-a-*`)
/// and [`TEAM_B_TOKEN`] (`team-b-*`).
pub fn tokens_json() -> String {
    format!(
        r#"{{"tokens":[
            {{"id":"team-a","sha256":"{}","bundles":["demo","team-a-*"]}},
            {{"id":"team-b","sha256":"{}","bundles":["team-b-*"]}}]}}"#,
        mcp_guard_control::auth::token_digest_hex(TEAM_A_TOKEN),
        mcp_guard_control::auth::token_digest_hex(TEAM_B_TOKEN)
    )
}

/// Options with the test tokens and no key refresh.
pub fn options() -> mcp_guard_control::Options {
    mcp_guard_control::Options {
        tokens: mcp_guard_control::Tokens::parse(tokens_json().as_bytes()).expect("tokens"),
        jwks_refresh: None,
        ..mcp_guard_control::Options::default()
    }
}

/// `Authorization` header value for a token.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A minimal valid bundle called `name` with one allow rule `rule`.
pub fn bundle(name: &str, rule: &str) -> String {
    format!(r#"{{"name":"{name}","version":1,"rules":[{{"id":"{rule}","effect":"allow"}}]}}"#)
}

/// Starts the `mcp-guard-control` binary with `args` (plus a free loopback
/// port) and reads the address from its first line, `listening on ADDR`.
pub fn spawn_binary(
    args: &[&std::ffi::OsStr],
    stderr: std::process::Stdio,
) -> (std::process::Child, SocketAddr) {
    use std::io::{BufRead as _, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-guard-control"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn binary");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read line");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    (child, addr)
}

/// `PUT /v1/bundles/{name}` with `extra` headers and, when given, a bearer
/// `token`.
pub async fn put(
    addr: SocketAddr,
    name: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
    body: &str,
) -> Reply {
    let auth = token.map(bearer);
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(auth) = &auth {
        headers.push(("authorization", auth));
    }
    request(
        addr,
        "PUT",
        &format!("/v1/bundles/{name}"),
        &headers,
        body.as_bytes(),
    )
    .await
}

/// Team A pushes bundle `demo` with one allow rule named `rule`.
pub async fn push_demo(addr: SocketAddr, rule: &str) -> Reply {
    put(addr, "demo", Some(TEAM_A_TOKEN), &[], &bundle("demo", rule)).await
}
