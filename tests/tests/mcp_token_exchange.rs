//! RFC 8693 token exchange in a real Envoy, on every target: allowed
//! requests reach the upstream with a token the identity provider issued
//! for it, never the caller's own; exchanged tokens are cached per caller;
//! every failure of the token endpoint (error status, garbage, hang, down)
//! is a 503 `token_exchange_failed`. The token endpoint is a small HTTP/1.1
//! server started here on a free loopback port; it checks what RFC 8693
//! §2.1 and RFC 6749 §2.3.1 require of each request and counts them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_guard_e2e::h2::{Answer, H2Upstream, Message, Parts};
use mcp_guard_e2e::http::{send, Reply};
use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target};
use serde_json::json;

const CLIENT_SECRET: &str = "s3cret";
/// base64 of `guard:s3cret` (HTTP Basic of the bundle's client).
const BASIC: &str = "Basic Z3VhcmQ6czNjcmV0";
const AUDIENCE: &str = "mcp-tools";
const SCOPE: &str = "tools.call tools.list";

/// What the token endpoint does with the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Issue,
    Status500,
    Garbage,
    Hang,
}

#[derive(Default)]
struct IdpState {
    mode: Option<Mode>,
    /// (subject token, issued token) per successful exchange.
    issued: Vec<(String, String)>,
    /// Requests that broke RFC 8693 / client authentication.
    problems: Vec<String>,
    calls: usize,
}

/// A local OAuth token endpoint.
struct Idp {
    port: u16,
    state: Arc<Mutex<IdpState>>,
    down: Arc<AtomicBool>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

impl Idp {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(IdpState {
            mode: Some(Mode::Issue),
            ..IdpState::default()
        }));
        let down = Arc::new(AtomicBool::new(false));
        let (s, d) = (Arc::clone(&state), Arc::clone(&down));
        std::thread::spawn(move || {
            // Accepts until told the endpoint is down; then the listener
            // closes (connections are refused).
            while !d.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (s, d) = (Arc::clone(&s), Arc::clone(&d));
                        std::thread::spawn(move || serve(conn, &s, &d));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { port, state, down }
    }

    fn set(&self, mode: Mode) {
        self.state.lock().unwrap().mode = Some(mode);
    }

    fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    fn issued_for(&self, subject: &str) -> Vec<String> {
        let state = self.state.lock().unwrap();
        state
            .issued
            .iter()
            .filter(|(s, _)| s == subject)
            .map(|(_, t)| t.clone())
            .collect()
    }
}

/// Serves one keep-alive connection.
fn serve(mut conn: TcpStream, state: &Mutex<IdpState>, down: &AtomicBool) {
    conn.set_nonblocking(false).ok();
    conn.set_read_timeout(Some(Duration::from_millis(50))).ok();
    let mut buf = Vec::new();
    loop {
        if down.load(Ordering::SeqCst) {
            return;
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return,
        }
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if buf.len() < end + 4 + len {
            continue;
        }
        let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
        buf.drain(..end + 4 + len);
        let (status, answer) = answer(state, &head, &header, &body);
        let Some(status) = status else {
            // Hang: never answer; Envoy gives up and closes.
            while conn.read(&mut [0u8; 64]).map_or_else(
                |e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
                |n| n > 0,
            ) {
                if down.load(Ordering::SeqCst) {
                    return;
                }
            }
            return;
        };
        let reply = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncache-control: no-store\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if conn.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Checks one exchange request and picks the answer.
fn answer(
    state: &Mutex<IdpState>,
    head: &str,
    header: &dyn Fn(&str) -> Option<String>,
    body: &str,
) -> (Option<&'static str>, String) {
    let mut state = state.lock().unwrap();
    state.calls += 1;
    let params = form(body);
    let param = |name: &str| {
        let values: Vec<&String> = params
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect();
        match values.as_slice() {
            [one] => Some((*one).clone()),
            _ => None,
        }
    };
    let mut problems = Vec::new();
    let mut expect = |what: &str, ok: bool| {
        if !ok {
            problems.push(what.to_owned());
        }
    };
    expect(
        "request line",
        head.starts_with("POST /oauth2/token HTTP/1.1"),
    );
    expect("host", header("host").as_deref() == Some("idp.local"));
    expect(
        "content-type",
        header("content-type").as_deref() == Some("application/x-www-form-urlencoded"),
    );
    expect(
        "client auth",
        header("authorization").as_deref() == Some(BASIC),
    );
    expect(
        "grant_type",
        param("grant_type").as_deref() == Some("urn:ietf:params:oauth:grant-type:token-exchange"),
    );
    expect(
        "subject_token_type",
        param("subject_token_type").as_deref()
            == Some("urn:ietf:params:oauth:token-type:access_token"),
    );
    expect("audience", param("audience").as_deref() == Some(AUDIENCE));
    expect("scope", param("scope").as_deref() == Some(SCOPE));
    let subject = param("subject_token").unwrap_or_default();
    expect("subject_token", subject.split('.').count() == 3);
    if !problems.is_empty() {
        state.problems.extend(problems);
        return (
            Some("400 Bad Request"),
            r#"{"error":"invalid_request"}"#.into(),
        );
    }
    match state.mode.unwrap_or(Mode::Issue) {
        Mode::Issue => {
            let token = format!("xchg-{}", state.issued.len() + 1);
            state.issued.push((subject, token.clone()));
            let answer = json!({
                "access_token": token,
                "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer",
                "expires_in": 300
            });
            (Some("200 OK"), answer.to_string())
        }
        Mode::Status500 => (
            Some("500 Internal Server Error"),
            r#"{"error":"server_error"}"#.into(),
        ),
        Mode::Garbage => (Some("200 OK"), "<html>hello</html>".into()),
        Mode::Hang => (None, String::new()),
    }
}

fn bundle(with_exchange: bool) -> String {
    let mut bundle = json!({
        "name": "txchg",
        "version": if with_exchange { 1 } else { 2 },
        "rules": [
            {"id": "tools", "effect": "allow", "when": {
                "methods": ["GET"], "path": {"prefix": "/h2/tools/"}}},
            // Latency runs go to the HTTP/1.1 demo upstream: the HTTP/2
            // test upstream adds a delayed-ACK floor of ~40 ms.
            {"id": "latency", "effect": "allow", "when": {
                "methods": ["GET"], "path": {"prefix": "/lat/"}}}
        ]
    });
    if with_exchange {
        bundle["token_exchange"] = json!({
            "cluster": "mcp_guard_token",
            "authority": "idp.local",
            "path": "/oauth2/token",
            "audience": AUDIENCE,
            "scopes": ["tools.call", "tools.list"],
            "client_id": "guard",
            "timeout_ms": 500
        });
    }
    bundle.to_string()
}

fn script(_request: &Message) -> Answer {
    Answer {
        status: 200,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: Parts {
            data: vec![b"ok".to_vec()],
            trailers: None,
            gap: Duration::ZERO,
        },
    }
}

fn get(stack: &Stack, token: &str) -> Reply {
    send("GET", &stack.url("/h2/tools/x"), Some(token), &[], None).expect("request")
}

/// One timed request to the demo upstream (its answer's status does not
/// matter, only that it was forwarded).
fn timed(stack: &Stack, token: &str) -> Duration {
    let t = Instant::now();
    let reply = send("GET", &stack.url("/lat/x"), Some(token), &[], None).expect("request");
    let elapsed = t.elapsed();
    assert!(reply.status < 500, "{}: {}", reply.status, reply.body);
    elapsed
}

fn caller(sub: &str) -> String {
    tokens::mint(json!({"sub": sub})).expect("token")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn assert_refused(reply: &Reply, details: &[&str], what: &str) {
    assert_eq!(reply.status, 503, "{what}: {}", reply.body);
    let body = reply.json();
    assert_eq!(body["reason"], "token_exchange_failed", "{what}: {body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(details.contains(&detail), "{what}: detail {detail}");
}

#[test]
fn token_exchange_end_to_end() {
    for target in target::available() {
        eprintln!("token_exchange_end_to_end: {}", target.name());
        token_exchange_on(&target);
    }
}

fn token_exchange_on(target: &Target) {
    let idp = Idp::start();
    let upstream = H2Upstream::start(Arc::new(script)).expect("upstream");
    let mut extra = serde_json::Map::new();
    extra.insert(
        "token_exchange".into(),
        json!({"client_secret": CLIENT_SECRET}),
    );
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        bundles: vec![("txchg".into(), bundle(true))],
        bundle_name: "txchg".into(),
        concurrency: 1,
        h2_upstream_port: Some(upstream.port),
        token_port: Some(idp.port),
        plugin_extra: extra,
        ..StackOptions::default()
    })
    .expect("stack starts");
    let (alice, bob) = (caller("alice"), caller("bob"));

    // A miss: one exchange; the upstream sees the issued token.
    let reply = get(&stack, &alice);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(idp.calls(), 1);
    let alices = idp.issued_for(&alice);
    assert_eq!(alices.len(), 1);
    let seen = upstream.seen();
    assert_eq!(
        seen.last().and_then(|m| m.header("authorization")),
        Some(format!("Bearer {}", alices[0]).as_str())
    );

    // A hit: no call to the token endpoint, the same token upstream.
    let reply = get(&stack, &alice);
    assert_eq!(reply.status, 200);
    assert_eq!(idp.calls(), 1, "served from the cache");
    assert_eq!(
        upstream
            .seen()
            .last()
            .and_then(|m| m.header("authorization")),
        Some(format!("Bearer {}", alices[0]).as_str())
    );

    // Another caller gets its own token.
    let reply = get(&stack, &bob);
    assert_eq!(reply.status, 200);
    assert_eq!(idp.calls(), 2);
    let bobs = idp.issued_for(&bob);
    assert_eq!(bobs.len(), 1);
    assert_ne!(bobs[0], alices[0]);
    assert_eq!(
        upstream
            .seen()
            .last()
            .and_then(|m| m.header("authorization")),
        Some(format!("Bearer {}", bobs[0]).as_str())
    );

    // Latency: cache hits and misses (fresh callers).
    let hits: Vec<Duration> = (0..50).map(|_| timed(&stack, &alice)).collect();
    let misses: Vec<Duration> = (0..30)
        .map(|i| timed(&stack, &caller(&format!("user-{i}"))))
        .collect();

    // Failures: never forwarded, never with the caller's token.
    let before = upstream.seen().len();
    let carol = caller("carol");
    idp.set(Mode::Status500);
    assert_refused(
        &get(&stack, &carol),
        &["error_status"],
        "token endpoint 500",
    );
    idp.set(Mode::Garbage);
    assert_refused(
        &get(&stack, &carol),
        &["unparseable_answer"],
        "garbage answer",
    );
    idp.set(Mode::Hang);
    let t = Instant::now();
    assert_refused(
        &get(&stack, &carol),
        &["error_status", "no_answer"],
        "hanging endpoint",
    );
    assert!(t.elapsed() < Duration::from_secs(5), "the timeout applies");
    // The client goes away while its exchange is pending: the stream is
    // reset under the held request; Envoy and the filter carry on.
    let pending = idp.calls();
    let mut conn = TcpStream::connect(("127.0.0.1", stack.envoy.port)).expect("connect");
    write!(
        conn,
        "GET /h2/tools/x HTTP/1.1\r\nHost: api.local\r\nAuthorization: Bearer {carol}\r\n\r\n"
    )
    .expect("write");
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(idp.calls(), pending + 1, "the exchange is pending");
    drop(conn);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        get(&stack, &alice).status,
        200,
        "still serving after a reset"
    );
    // No bearer token at all: jwt_authn lets it pass (allow_missing), the
    // policy has no identity to allow: 401, no exchange.
    let calls = idp.calls();
    let reply = send("GET", &stack.url("/h2/tools/x"), None, &[], None).expect("request");
    assert_eq!(reply.status, 401);
    assert_eq!(idp.calls(), calls);
    idp.down.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    assert_refused(
        &get(&stack, &carol),
        &["error_status", "no_answer"],
        "endpoint down",
    );
    // A cached caller still works while the endpoint is down.
    assert_eq!(get(&stack, &alice).status, 200);
    assert_eq!(
        upstream.seen().len(),
        before + 2,
        "refused requests never reached the upstream (two cached alice requests did)"
    );

    // The upstream never saw a caller's token.
    let callers = [&alice, &bob, &carol];
    for m in upstream.seen() {
        let auth = m.header("authorization").unwrap_or_default();
        assert!(auth.starts_with("Bearer xchg-"), "upstream saw {auth}");
        for c in callers {
            assert!(!auth.contains(c.as_str()));
        }
    }
    assert!(
        idp.state.lock().unwrap().problems.is_empty(),
        "every exchange request was well-formed: {:?}",
        idp.state.lock().unwrap().problems
    );
    let access = stack.envoy.access_log_lines();
    assert!(access
        .iter()
        .any(|l| l["mcp"]["details"] == "mcp_token_exchange_failed"));

    // Baseline without token exchange, for the latency report.
    stack.push("txchg", &bundle(false)).expect("push");
    stack
        .wait_for_version(2, 1, Duration::from_secs(30))
        .expect("v2 active");
    let base: Vec<Duration> = (0..50).map(|_| timed(&stack, &alice)).collect();
    let (base, hit, miss) = (median(base), median(hits), median(misses));
    eprintln!(
        "token exchange latency ({}): baseline {base:?}, cache hit {hit:?} (+{:?}), miss {miss:?} (+{:?})",
        target.name(),
        hit.saturating_sub(base),
        miss.saturating_sub(base)
    );
}
