//! `exchange`: the flow state machine under any sequence of callbacks.
//!
//! Input: a setup byte (bundle, claims), request-line picks, then a program
//! of callbacks (request/response headers, body chunks, trailers, in any
//! order, any sizes and end-of-stream flags) run against `MemoryHost`,
//! which buffers bodies as Envoy does: while a side is paused its chunks
//! accumulate; once it continues each callback sees only its own chunk,
//! and what a callback lets through has left the proxy.
//!
//! Invariants:
//! - no panic;
//! - the request side is released (a request callback returns
//!   `Next::Continue`) only when `ex.forwarded()` holds at that moment; so
//!   a request that was never decided released nothing;
//! - once answered (decided and not forwarded), a request stays answered
//!   and no request callback returns `Continue` again;
//! - at most one local reply is sent from request callbacks and at most
//!   one from response callbacks;
//! - once the response side refused (a local reply, a counted refusal or a
//!   reset), nothing more of the upstream's body leaves;
//! - with scrubbing on for this caller, a `text/plain` answer to a
//!   forwarded request never lets a space-delimited test e-mail address
//!   through.

use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde_json::{json, Value};

use super::Input;

const NOW_MS: u64 = 1_800_000_000_000;
pub const CANARY: &[u8] = b" jane.doe@example.com ";

fn bundle(variant: u8) -> Value {
    let pii = match variant {
        0 => json!({"enabled": true}),
        1 => json!({"enabled": true, "scrub_requests": true, "max_body_bytes": 256,
                    "on_overflow": "stream", "safe_content_types": ["image/*"]}),
        2 => json!({"enabled": false}),
        _ => json!({"enabled": true, "on_compressed": "block", "max_body_bytes": 64,
                    "exempt": [{"claim": "roles", "contains_any": ["auditor"]}]}),
    };
    let max_request = if variant == 3 { 300 } else { 4096 };
    json!({
        "name": "fuzz",
        "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "attributes": {"model_header": "x-model"},
        "limits": {"max_request_body_bytes": max_request},
        "inject": [{"claim": "tenant", "header": "x-mcp-tenant"}],
        "rules": [
            {"id": "deny-delete", "effect": "deny", "when": {"mcp": {"tools": ["delete_*"]}}},
            {"id": "tools", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"tools": ["get_weather"]}}},
            {"id": "session", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"methods": ["tools/list", "initialize"]}}},
            {"id": "chat", "effect": "allow", "when": {
                "path": {"exact": "/v1/chat"}, "models": ["demo-*"]}},
            {"id": "plain", "effect": "allow", "when": {"path": {"prefix": "/plain/"}}}
        ],
        "pii": pii
    })
}

thread_local! {
    static POLICIES: Vec<Arc<ActivePolicy>> = (0..4)
        .map(|v| {
            let policy = Policy::compile(bundle(v).to_string().as_bytes())
                .expect("fixed exchange bundle");
            Arc::new(ActivePolicy::new(policy, None))
        })
        .collect();
}

const PATHS: &[&str] = &[
    "/mcp",
    "/plain/x",
    "/v1/chat",
    "/plain/../admin",
    "/plain/x?q=1",
    "//mcp",
    "/plain/%2e%2e",
    "",
    "*",
];
const AUTHORITIES: &[&str] = &["api.local", "API.local.:8080", "a@b", "[::1]:80", ""];
const METHODS: &[&str] = &["POST", "GET", ""];
const REQUEST_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    None,
    Some("text/plain"),
    Some("application/octet-stream"),
    Some("application/x-whatever"),
    Some("text/event-stream"),
];
const RESPONSE_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("text/plain"),
    Some("text/event-stream"),
    None,
    Some("application/octet-stream"),
    Some("image/png"),
    Some("application/x-ndjson"),
    Some("TEXT/PLAIN; charset=utf-8"),
];
const ENCODINGS: &[Option<&str>] = &[
    None,
    None,
    Some("gzip"),
    Some("identity"),
    Some(" Identity "),
];
const BODIES: &[&[u8]] = &[
    br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}}"#,
    br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_customer"}}"#,
    br#"{"jsonrpc":"2.0","id":7,"method":"tools/list"}"#,
    br#"[{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_weather"}},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_x"}}]"#,
    br#"{"model":"demo-1","messages":[{"role":"user","content":"mail jane.doe@example.com"}]}"#,
    br#"{"jsonrpc":"2.0","id":7,"result":{"tools":[{"name":"get_weather"},{"name":"delete_customer"}]}}"#,
    b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"mail jane.doe@exam\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ple.com now\"}}]}\n\n",
    b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"get_weather\"},{\"name\":\"delete_customer\"}]}}\n\n",
    b"write to jane.doe@example.com today",
];

/// One side's buffering, as Envoy does it for a filter.
#[derive(Default)]
struct Side {
    paused: bool,
    /// Bytes that left the proxy on this side.
    released: Vec<u8>,
}

#[derive(Default)]
struct Track {
    request: Side,
    response: Side,
    request_replies: usize,
    response_replies: usize,
    answered: bool,
    response_refused: bool,
    /// The body of the response side's local reply: Envoy runs a local
    /// reply back through the filter, so these bytes may pass after the
    /// refusal (nothing else may).
    reply_body: Option<Vec<u8>>,
    /// Scrubbing applies: forwarded before the answer's headers, a
    /// text/plain answer without encoding, scanner on, caller not exempt.
    canary_applies: bool,
}

struct Run {
    ex: Exchange,
    host: MemoryHost,
    t: Track,
}

impl Run {
    fn request_callback(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Exchange, &mut MemoryHost) -> Next,
    ) {
        let replies = self.host.replies.len();
        let next = f(&mut self.ex, &mut self.host);
        self.t.request_replies += self.host.replies.len() - replies;
        if self.host.replies.len() > replies {
            // A local reply ends the exchange: buffered bytes are discarded.
            self.host.request.body.clear();
            self.host.response.body.clear();
        }
        assert!(
            self.t.request_replies <= 1,
            "{what}: a second local reply from the request side"
        );
        if next == Next::Continue {
            assert!(
                self.ex.forwarded(),
                "{what}: request released without being forwarded"
            );
            assert!(!self.t.answered, "{what}: an answered request was released");
        }
        if self.t.answered {
            assert!(
                !self.ex.forwarded(),
                "{what}: an answered request became forwarded"
            );
        }
        if self.ex.decided() && !self.ex.forwarded() {
            self.t.answered = true;
        }
        self.t.request.paused = next == Next::Pause;
        if !self.t.request.paused {
            let body = std::mem::take(&mut self.host.request.body);
            self.t.request.released.extend_from_slice(&body);
        }
    }

    fn response_callback(
        &mut self,
        what: &str,
        body: bool,
        f: impl FnOnce(&mut Exchange, &mut MemoryHost) -> Next,
    ) {
        let replies = self.host.replies.len();
        let refusals = self.host.counts.refusals;
        let was_refused = self.t.response_refused;
        let next = f(&mut self.ex, &mut self.host);
        self.t.response_replies += self.host.replies.len() - replies;
        assert!(
            self.t.response_replies <= 1,
            "{what}: a second local reply from the response side"
        );
        if self.host.replies.len() > replies {
            // A local reply ends the stream: what the proxy buffered from
            // the upstream is discarded, as Envoy does.
            self.host.response.body.clear();
            self.t.reply_body = self.host.replies.last().map(|r| r.body.clone());
        }
        if self.host.replies.len() > replies
            || self.host.counts.refusals > refusals
            || self.host.reset
        {
            self.t.response_refused = true;
        }
        self.t.response.paused = next == Next::Pause;
        if body && !self.t.response.paused {
            let out = std::mem::take(&mut self.host.response.body);
            if was_refused && !self.host.reset {
                let of_the_reply = self.t.reply_body.as_ref().is_some_and(|reply| {
                    out.len() <= reply.len()
                        && reply.windows(out.len().max(1)).any(|w| w == out.as_slice())
                });
                assert!(
                    out.is_empty() || of_the_reply,
                    "{what}: {} bytes left after the answer was refused",
                    out.len()
                );
            }
            if !self.host.reset {
                self.t.response.released.extend_from_slice(&out);
            }
        }
    }
}

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let setup = input.u8();
    let variant = setup % 5;
    let policy = (variant < 4).then(|| POLICIES.with(|p| Arc::clone(&p[usize::from(variant)])));
    let mut host = MemoryHost::at(NOW_MS);
    let claims = match (setup / 5) % 4 {
        0 => Some(json!({"sub": "alice", "tenant": "acme"})),
        1 => Some(json!({"sub": "audit", "roles": ["auditor"]})),
        2 => Some(json!({"sub": 5, "tenant": ["x"]})),
        _ => None,
    };
    if let Some(claims) = &claims {
        host.set_claims("jwt_payload", claims);
    }
    let exempt = (setup / 5) % 4 == 1 && variant == 3;
    let scanning = matches!(variant, 0 | 1 | 3) && !exempt;

    let mut headers = vec![
        (":method".to_string(), input.pick(METHODS).to_string()),
        (":path".to_string(), input.pick(PATHS).to_string()),
        (
            ":authority".to_string(),
            input.pick(AUTHORITIES).to_string(),
        ),
        ("x-request-id".to_string(), "r1".to_string()),
    ];
    if let Some(ct) = input.pick(REQUEST_TYPES) {
        headers.push(("content-type".into(), ct.into()));
    }
    match input.u8() % 4 {
        0 => {}
        1 => headers.push(("x-model".into(), "demo-1".into())),
        2 => headers.push(("x_model".into(), "other".into())),
        _ => {
            let name = super::text(input.chunk()).to_ascii_lowercase();
            let value = super::text(input.chunk());
            headers.push((name, value));
        }
    }
    host.request.headers = headers;

    let mut run = Run {
        ex: Exchange::new(policy),
        host,
        t: Track::default(),
    };
    let mut steps = 0;
    while !input.is_empty() && steps < 64 {
        steps += 1;
        match input.u8() % 9 {
            0 => {
                let eos = input.bool();
                run.request_callback("request headers", |ex, h| ex.on_request_headers(h, eos));
            }
            op @ (1 | 2) => {
                let eos = input.bool();
                let chunk: Vec<u8> = if op == 1 {
                    input.chunk().to_vec()
                } else {
                    let body = input.pick(BODIES);
                    let from = usize::from(input.u8()) % (body.len() + 1);
                    let to = (from + usize::from(input.u8()) + 1).min(body.len());
                    body[from..to].to_vec()
                };
                if !run.t.request.paused {
                    run.host.request.body.clear();
                }
                run.host.request.body.extend_from_slice(&chunk);
                let size = run.host.request.body.len();
                run.request_callback("request body", |ex, h| ex.on_request_body(h, size, eos));
            }
            3 => run.request_callback("request trailers", |ex, h| ex.on_request_trailers(h)),
            4 => {
                let eos = input.bool();
                let ct = input.pick(RESPONSE_TYPES);
                let encoding = input.pick(ENCODINGS);
                let mut headers = vec![(":status".to_string(), "200".to_string())];
                headers.extend(ct.map(|c| ("content-type".to_string(), c.to_string())));
                headers.extend(encoding.map(|e| ("content-encoding".to_string(), e.to_string())));
                run.host.response.headers = headers;
                let first = !run.t.response_refused && run.t.response.released.is_empty();
                run.t.canary_applies = first
                    && scanning
                    && run.ex.forwarded()
                    && encoding.is_none()
                    && ct.is_some_and(|c| c.to_ascii_lowercase().starts_with("text/plain"));
                run.response_callback("response headers", false, |ex, h| {
                    ex.on_response_headers(h, eos)
                });
            }
            op @ (5 | 6) => {
                let eos = input.bool();
                let chunk: Vec<u8> = if op == 5 {
                    input.chunk().to_vec()
                } else {
                    let body = input.pick(BODIES);
                    let from = usize::from(input.u8()) % (body.len() + 1);
                    let to = (from + usize::from(input.u8()) + 1).min(body.len());
                    body[from..to].to_vec()
                };
                if !run.t.response.paused {
                    run.host.response.body.clear();
                }
                run.host.response.body.extend_from_slice(&chunk);
                let size = run.host.response.body.len();
                run.response_callback("response body", true, |ex, h| {
                    ex.on_response_body(h, size, eos)
                });
            }
            7 => {
                if !run.t.response.paused {
                    run.host.response.body.clear();
                }
                run.response_callback("response trailers", true, |ex, h| {
                    ex.on_response_trailers(h)
                });
            }
            _ => run.host.refuse_body_writes = !run.host.refuse_body_writes,
        }
    }
    if run.t.canary_applies {
        let leaked = run
            .t
            .response
            .released
            .windows(CANARY.len())
            .any(|w| w == CANARY);
        assert!(
            !leaked,
            "an e-mail address left unscrubbed: {:?}",
            String::from_utf8_lossy(&run.t.response.released)
        );
    }
    if !run.ex.decided() {
        assert!(!run.ex.forwarded());
        assert!(
            run.t.request.released.is_empty(),
            "undecided request released bytes"
        );
    }
}
