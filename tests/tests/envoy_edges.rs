//! Request-line edge cases through the real Envoy: paths and hosts that
//! are spelled differently from what a rule names must either be refused
//! by Envoy (400) or be rewritten by Envoy into the normal form before the
//! filter decides, so that the decision and the upstream see one path.
//!
//! Requests are written byte for byte over a TCP socket: an HTTP client
//! library would normalise `..`, `//` or escapes before sending them.
//!
//! These cases hold with Envoy's own settings alone (the shipped
//! `envoy.yaml.tmpl`); the filter's own refusal of paths not in normal form
//! is a second line for proxies configured otherwise.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mcp_guard_e2e::{target, tokens, Stack, StackOptions, Target};
use serde_json::{json, Value};

/// The bundle these cases run under: a health check reachable only on the
/// internal host, and tenant paths reachable only by the tenant's members.
fn bundle() -> String {
    json!({
        "name": "edges",
        "version": 1,
        "rules": [
            {
                "id": "internal-health",
                "effect": "allow",
                "when": {
                    "methods": ["GET"],
                    "hosts": ["internal.local"],
                    "path": { "exact": "/healthz" }
                }
            },
            {
                "id": "own-tenant",
                "effect": "allow",
                "when": {
                    "methods": ["GET"],
                    "path": { "template": "/tenants/{tenant}/{rest*}" },
                    "relations": [{ "claim": "tenant", "equals_path": "tenant" }]
                }
            }
        ]
    })
    .to_string()
}

/// A reply as read off the socket.
#[derive(Debug)]
struct RawReply {
    status: u16,
    head: String,
    body: String,
}

impl RawReply {
    /// Parses a complete reply, or `None` while more bytes are due.
    fn parse(raw: &[u8]) -> Option<Self> {
        let text = String::from_utf8_lossy(raw);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let complete = match header("content-length") {
            Some(len) => body.len() >= len.parse().ok()?,
            None if header("transfer-encoding").is_some() => body.ends_with("0\r\n\r\n"),
            None => false,
        };
        complete.then(|| Self {
            status,
            head: head.to_string(),
            body: body.to_string(),
        })
    }

    /// Whether the demo upstream produced this reply (it stamps every
    /// response), i.e. the request got past Envoy and the filter.
    fn reached_upstream(&self) -> bool {
        self.head
            .lines()
            .any(|l| l.eq_ignore_ascii_case("x-demo-upstream: 1"))
    }
}

/// Sends one HTTP/1.1 request exactly as given (request target, Host and
/// extra header lines unmodified) with a token for `sub`, and reads the
/// reply.
fn raw_get(stack: &Stack, target: &str, host: &str, sub: &str, extra: &[&str]) -> RawReply {
    let token = tokens::mint(json!({"sub": sub, "tenant": "acme"})).expect("token");
    let mut request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n"
    );
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut socket = TcpStream::connect(("127.0.0.1", stack.envoy.port)).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    socket.write_all(request.as_bytes()).expect("send");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(reply) = RawReply::parse(&raw) {
            return reply;
        }
        match socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    RawReply {
        status: head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no reply to {target:?}: {text:?}")),
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// The filter's decision records (access-log lines with a decision) for
/// `sub`, waiting briefly for the log to be written.
fn decided_lines(stack: &Stack, sub: &str, wait: bool) -> Vec<Value> {
    for _ in 0..if wait { 200 } else { 1 } {
        let found: Vec<Value> = stack
            .envoy
            .access_log_lines()
            .into_iter()
            .filter(|line| decision(line)["sub"] == sub)
            .collect();
        if !found.is_empty() {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Vec::new()
}

/// The decision record, embedded as JSON in the access-log line.
fn decision(line: &Value) -> Value {
    line["mcp"].clone()
}

/// What must happen to one request.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Envoy rewrote it: the filter allowed it under `rule` deciding on
    /// `path`, and the upstream answered `status` for that path.
    Rewritten {
        path: &'static str,
        rule: &'static str,
        status: u16,
    },
    /// Envoy answered 400 itself (access-log `details`); the filter never
    /// decided and the upstream never saw it.
    EnvoyRejects { details: &'static str },
    /// Envoy rewrote it to `path`, which the rules refuse: it must not
    /// reach the upstream.
    DeniedAs { path: &'static str },
    /// Envoy let it through unchanged; it must not reach the upstream
    /// (today the rules miss it: 403; with the filter's own normal-form
    /// check: 400).
    Refused,
}

struct Case {
    target: &'static str,
    host: &'static str,
    extra: &'static [&'static str],
    expect: Expect,
}

const HOST: &str = "internal.local";

const fn case(target: &'static str, expect: Expect) -> Case {
    Case {
        target,
        host: HOST,
        extra: &[],
        expect,
    }
}

const HEALTH: Expect = Expect::Rewritten {
    path: "/healthz",
    rule: "internal-health",
    status: 200,
};

const GLOBEX: Expect = Expect::DeniedAs {
    path: "/tenants/globex/x",
};

const fn rejects(details: &'static str) -> Expect {
    Expect::EnvoyRejects { details }
}

const CASES: &[Case] = &[
    // Baselines: the rules do what they say.
    case("/healthz", HEALTH),
    case(
        "/tenants/acme/x",
        Expect::Rewritten {
            path: "/tenants/acme/x",
            rule: "own-tenant",
            status: 404,
        },
    ),
    // Dot segments, raw and escaped, and backslashes: Envoy resolves them
    // before the filter, so the decision is on the path the upstream gets.
    case("/x/../healthz", HEALTH),
    case("/./healthz", HEALTH),
    case("/x/./healthz", Expect::DeniedAs { path: "/x/healthz" }),
    case("/x/%2e%2e/healthz", HEALTH),
    case("/x/%2E./healthz", HEALTH),
    case("/x\\..\\healthz", HEALTH),
    // Escaped unreserved characters are decoded, slashes merged.
    case("/%68ealthz", HEALTH),
    case("/%68%65%61%6C%74%68%7A", HEALTH),
    case("//healthz", HEALTH),
    // Envoy removes dot segments before merging slashes, as the upstream
    // then sees: `..` cancels the empty segment, not `x`.
    case("///x//..//healthz", Expect::DeniedAs { path: "/x/healthz" }),
    // Escaping out of one's tenant lands on the other tenant's path, which
    // the tenant rule then refuses.
    case("/tenants/acme/../globex/x", GLOBEX),
    case("/tenants/acme/%2e%2e/globex/x", GLOBEX),
    case("/tenants/acme/.%2E/globex/x", GLOBEX),
    case(r"/tenants/acme\..\globex/x", GLOBEX),
    case(
        "/tenants/acme/..%2Fglobex/x",
        rejects("path_normalization_failed"),
    ),
    // Escaped separators, fragments and NUL are refused by Envoy.
    case("/a%2Fb", rejects("path_normalization_failed")),
    case("/a%2fb", rejects("path_normalization_failed")),
    case("/a%5Cb", rejects("path_normalization_failed")),
    case("/a%5cb", rejects("path_normalization_failed")),
    case("/healthz#frag", rejects("path_normalization_failed")),
    case("/healthz%00", rejects("path_normalization_failed")),
    // Left alone by Envoy; never reach the upstream under the exact rule.
    case("/healthz;x=1", Expect::Refused),
    case("/healthz/", Expect::Refused),
    // Hosts.
    Case {
        target: "/healthz",
        host: "internal.local.",
        extra: &[],
        expect: HEALTH,
    },
    Case {
        target: "/healthz",
        host: "INTERNAL.local:80",
        extra: &[],
        expect: HEALTH,
    },
    Case {
        target: "/healthz",
        host: "evil.local",
        extra: &[],
        expect: Expect::Refused,
    },
    Case {
        target: "/healthz",
        host: "internal.local..",
        extra: &[],
        expect: Expect::Refused,
    },
    Case {
        target: "/healthz",
        host: "user@internal.local",
        extra: &[],
        expect: Expect::Refused,
    },
    // A header an upstream framework may read as `x-mcp-tenant`.
    Case {
        target: "/healthz",
        host: HOST,
        extra: &["x_mcp_tenant: evil"],
        expect: rejects("http1.unexpected_underscore"),
    },
    Case {
        target: "/tenants/acme/x",
        host: HOST,
        extra: &["X_Mcp_Subject: root"],
        expect: rejects("http1.unexpected_underscore"),
    },
];

#[test]
fn envoy_normalises_or_refuses_edge_requests() {
    for target in target::available() {
        eprintln!(
            "envoy_normalises_or_refuses_edge_requests: {}",
            target.name()
        );
        envoy_normalises_or_refuses_edge_requests_on(&target);
    }
}

fn envoy_normalises_or_refuses_edge_requests_on(target: &Target) {
    let stack = Stack::start(StackOptions {
        target: target.clone(),
        bundles: vec![("edges".into(), bundle())],
        bundle_name: "edges".into(),
        concurrency: 1,
        ..StackOptions::default()
    })
    .expect("stack starts");
    let mut failures = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let sub = format!("probe-{i}");
        let reply = raw_get(&stack, c.target, c.host, &sub, c.extra);
        let what = format!(
            "{:?} Host {:?} {:?}: {} upstream={} {:?}",
            c.target,
            c.host,
            c.extra,
            reply.status,
            reply.reached_upstream(),
            reply.body
        );
        if let Err(e) = check(&stack, &sub, &reply, c.expect) {
            failures.push(format!("{what}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn check(stack: &Stack, sub: &str, reply: &RawReply, expect: Expect) -> Result<(), String> {
    match expect {
        Expect::Rewritten { path, rule, status } => {
            if reply.status != status || !reply.reached_upstream() {
                return Err(format!("expected {status} from the upstream"));
            }
            if status == 200 && !reply.body.contains("ok") {
                return Err("the upstream did not serve /healthz".into());
            }
            let lines = decided_lines(stack, sub, true);
            let line = lines.first().ok_or("no decision logged")?;
            let d = decision(line);
            if d["path"] != path || d["decision"] != "allow" || d["rule"] != rule {
                return Err(format!("expected allow by {rule} on {path}, logged {line}"));
            }
        }
        Expect::EnvoyRejects { details } => {
            if reply.status != 400 || reply.reached_upstream() {
                return Err("expected 400 from Envoy".into());
            }
            let logged = (0..100).any(|_| {
                let hit = stack
                    .envoy
                    .flat_log_lines()
                    .iter()
                    .any(|l| l["status"] == 400 && l["details"] == details);
                if !hit {
                    std::thread::sleep(Duration::from_millis(20));
                }
                hit
            });
            if !logged {
                return Err(format!("no 400 logged with details {details}"));
            }
            if !decided_lines(stack, sub, false).is_empty() {
                return Err("the filter decided a request Envoy refused".into());
            }
        }
        Expect::DeniedAs { path } => {
            if reply.status != 403 || reply.reached_upstream() {
                return Err("expected 403 without reaching the upstream".into());
            }
            let lines = decided_lines(stack, sub, true);
            let line = lines.first().ok_or("no decision logged")?;
            if decision(line)["path"] != path || decision(line)["decision"] != "deny" {
                return Err(format!("expected a deny on {path}, logged {line}"));
            }
        }
        Expect::Refused => {
            if !matches!(reply.status, 400 | 403) || reply.reached_upstream() {
                return Err("expected 400 or 403 without reaching the upstream".into());
            }
            let lines = decided_lines(stack, sub, true);
            let line = lines.first().ok_or("no decision logged")?;
            if decision(line)["decision"] != "deny" {
                return Err(format!("expected a deny decision, logged {line}"));
            }
        }
    }
    Ok(())
}
