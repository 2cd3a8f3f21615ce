//! A minimal HTTP/1.1 client over a raw socket, so tests see the bytes on
//! the wire, chunk boundaries included.

#![allow(dead_code)] // each test file uses a different part

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mcp_guard_control::BundleStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and the means to stop it.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Starts the control service over `store` on a free loopback port.
    pub async fn start(store: BundleStore) -> Server {
        start_with(store, mcp_guard_control::Options::default()).await
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task does not panic")
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

/// A response as read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
    /// The chunks as sent, when the body was chunked.
    pub chunks: Option<Vec<Vec<u8>>>,
}

impl Reply {
    /// The first value of a header (name compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8.
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Sends one request with `connection: close` and reads the whole reply.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    exchange(addr, &bytes).await
}

/// Sends `request` as is and reads the reply until the server closes.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("write request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("reply in time")
        .expect("read reply");
    parse(&raw)
}

/// `GET` with extra headers.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    request(addr, "GET", path, headers, b"").await
}

fn parse(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = std::str::from_utf8(&raw[..end]).expect("ascii head");
    let rest = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        let chunks = dechunk(rest);
        Reply {
            status,
            headers,
            body: chunks.concat(),
            chunks: Some(chunks),
        }
    } else {
        Reply {
            status,
            headers,
            body: rest.to_vec(),
            chunks: None,
        }
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    loop {
        let line_end = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = std::str::from_utf8(&raw[..line_end]).expect("ascii size");
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("hex chunk size");
        raw = &raw[line_end + 2..];
        if size == 0 {
            return chunks;
        }
        chunks.push(raw[..size].to_vec());
        assert_eq!(&raw[size..size + 2], b"\r\n", "chunk terminator");
        raw = &raw[size + 2..];
    }
}

/// Starts the control service with write tokens and options.
pub async fn start_with(store: BundleStore, options: mcp_guard_control::Options) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(mcp_guard_control::serve_with(
        listener,
        Arc::new(store),
        options,
        async move {
            let _ = stopped.await;
        },
    ));
    Server {
        addr,
        stop: Some(stop),
        task,
    }
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

/// Blocking variant of [`request`], for threads outside the runtime.
pub fn blocking_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Reply> {
    use std::io::{Read as _, Write as _};
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::other("connection closed before a reply"));
    }
    Ok(parse(&raw))
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
