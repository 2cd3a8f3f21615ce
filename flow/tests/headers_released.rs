//! The exchange under a host that does not hold headers while a body is
//! read (an Istio `WasmPlugin`): headers go upstream before the body
//! decides, so what the headers alone settle must be settled there.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::{deliver_response_body, MemoryHost};
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde_json::{json, Value};

const NOW_MS: u64 = 1_800_000_000_000;

fn bundle(rules: Value) -> Value {
    json!({
        "name": "t", "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload", "subject_claim": "sub"},
        "inject": [{"claim": "tenant", "header": "x-mcp-tenant"}],
        "rules": rules,
        "pii": {"enabled": false}
    })
}

/// An MCP allow on `/mcp`, a model allow on `/v1/chat`, and a deny rule
/// on the MCP call: every rule reads the body, so a body decides.
fn body_rules() -> Value {
    json!([
        {"id": "no-drop", "effect": "deny", "when": {"mcp": {"tools": ["drop_*"]}}},
        {"id": "suspended", "effect": "deny", "when": {
            "claims": [{"claim": "suspended", "equals": true}]}},
        {"id": "tools", "effect": "allow", "when": {
            "methods": ["POST"], "path": {"exact": "/mcp"}, "mcp": {"tools": ["get_weather"]}}},
        {"id": "chat", "effect": "allow", "when": {
            "methods": ["POST"], "path": {"exact": "/v1/chat"}, "models": ["demo-*"],
            "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}
    ])
}

fn active(bundle: &Value) -> Arc<ActivePolicy> {
    let policy = Policy::compile(bundle.to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn host_for(method: &str, path: &str, claims: &Value) -> MemoryHost {
    let mut host = MemoryHost::at(NOW_MS);
    host.set_claims("jwt_payload", claims);
    host.request.headers = vec![
        (":method".into(), method.into()),
        (":path".into(), path.into()),
        (":authority".into(), "api.local".into()),
        ("x-request-id".into(), "r1".into()),
        ("authorization".into(), "Bearer client-token".into()),
        ("x-mcp-tenant".into(), "forged".into()),
        ("content-type".into(), "application/json".into()),
    ];
    host
}

fn released(policy: &Arc<ActivePolicy>) -> Exchange {
    Exchange::new(Some(policy.clone())).with_held_headers(false)
}

fn header<'a>(host: &'a MemoryHost, name: &str) -> Option<&'a str> {
    host.request
        .headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn tool_call(tool: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool}})
        .to_string()
        .into_bytes()
}

/// A request line no rule can allow, whatever body follows (a path no
/// allow rule names, a method the rules do not allow, a caller without
/// the claims, a deny rule on claims alone): refused at its headers,
/// which never leave. An upstream may act on a request line before it
/// reads a body; the body is only a way to delay the decision.
#[test]
fn headers_no_body_can_make_allowed_are_refused_before_they_leave() {
    let policy = active(&bundle(body_rules()));
    let user = json!({"sub": "alice", "tenant": "acme", "roles": ["model-user"]});
    let suspended = json!({"sub": "eve", "roles": ["model-user"], "suspended": true});
    let nobody = json!({"sub": "bob"});
    for (method, path, claims) in [
        ("POST", "/admin/reset", &user),
        ("DELETE", "/mcp", &user),
        ("POST", "/v1/chat", &nobody),
        ("POST", "/v1/chat", &suspended),
    ] {
        let mut host = host_for(method, path, claims);
        let mut ex = released(&policy);
        assert_eq!(
            ex.on_request_headers(&mut host, false),
            Next::Pause,
            "{method} {path} {claims}"
        );
        assert_eq!(host.replies.len(), 1, "{method} {path}");
        assert_eq!(host.replies[0].status, 403);
        assert!(ex.decided() && !ex.forwarded());
        assert_eq!(host.record().unwrap()["decision"], "deny");
        // The body that follows is held for good.
        host.request.body = tool_call("get_weather");
        let n = host.request.body.len();
        assert_eq!(ex.on_request_body(&mut host, n, true), Next::Pause);
        assert_eq!(host.replies.len(), 1);
    }
}

/// Headers some body could make allowed go on (ready for the upstream),
/// and the body decides as in the held mode, a deny rule on the MCP call
/// included.
#[test]
fn headers_a_body_may_make_allowed_go_on_and_the_body_decides() {
    let policy = active(&bundle(body_rules()));
    let user = json!({"sub": "alice", "tenant": "acme", "roles": ["model-user"]});
    for (path, body, allowed) in [
        ("/mcp", tool_call("get_weather"), true),
        ("/mcp", tool_call("drop_table"), false),
        ("/mcp", tool_call("other"), false),
        (
            "/v1/chat",
            br#"{"model":"demo-1","messages":[]}"#.to_vec(),
            true,
        ),
        (
            "/v1/chat",
            br#"{"model":"gpt","messages":[]}"#.to_vec(),
            false,
        ),
    ] {
        let mut host = host_for("POST", path, &user);
        let mut ex = released(&policy);
        assert_eq!(ex.on_request_headers(&mut host, false), Next::Continue);
        assert!(header(&host, "authorization").is_none());
        assert_eq!(header(&host, "x-mcp-tenant"), Some("acme"));
        assert!(host.replies.is_empty());
        host.request.body = body;
        let n = host.request.body.len();
        let next = ex.on_request_body(&mut host, n, true);
        assert_eq!(next == Next::Continue, allowed, "{path}");
        assert_eq!(ex.forwarded(), allowed);
    }
}

/// A dry-run bundle refuses nothing, at the headers either.
#[test]
fn a_dry_run_bundle_is_not_refused_at_the_headers() {
    let mut b = bundle(body_rules());
    b["dry_run"] = json!(true);
    let policy = active(&b);
    let mut host = host_for("POST", "/admin/reset", &json!({"sub": "bob"}));
    let mut ex = released(&policy);
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Continue);
    host.request.body = b"{}".to_vec();
    assert_eq!(ex.on_request_body(&mut host, 2, true), Next::Continue);
    assert!(ex.forwarded());
    assert_eq!(host.record().unwrap()["decision"], "allow");
}

/// Drives one allowed GET and its answer; returns what the client got
/// (status as the response headers say at the end, body bytes passed)
/// and whether the response headers were changed after they left.
fn answer_in(
    held: bool,
    pii: &Value,
    content_type: &str,
    body: &[u8],
    cuts: &[usize],
    trailers: bool,
) -> (String, Vec<u8>, bool, MemoryHost) {
    let mut b = bundle(json!([{"id": "all", "effect": "allow"}]));
    b["pii"] = pii.clone();
    let policy = active(&b);
    let mut host = host_for("GET", "/x", &json!({"sub": "alice"}));
    host.request
        .headers
        .push(("x-request-id".into(), "r1".into()));
    let mut ex = Exchange::new(Some(policy)).with_held_headers(held);
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    host.response.headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), content_type.into()),
    ];
    let paused_headers = ex.on_response_headers(&mut host, false) == Next::Pause;
    if let Some(reply) = host.replies.first() {
        let reply = (reply.status.to_string(), reply.body.clone());
        return (reply.0, reply.1, false, host);
    }
    assert!(held || !paused_headers, "headers released when not held");
    let sent_headers = host.response.headers.clone();
    let client = deliver_response_body(&mut ex, &mut host, body, cuts, trailers, paused_headers);
    if let Some(reply) = host.replies.first() {
        let reply = (reply.status.to_string(), reply.body.clone());
        return (reply.0, reply.1, false, host);
    }
    let changed_after = !held && host.response.headers != sent_headers;
    let status = host
        .response
        .headers
        .iter()
        .find(|(k, _)| k == ":status")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    (status, client, changed_after, host)
}

/// Every answer the held mode passes, the released mode passes with the
/// same bytes; every answer the held mode refuses (502), the released
/// mode refuses too, with the refusal as the whole body (its status
/// left already), and never touches headers that already left.
#[test]
fn answers_end_alike_in_both_modes() {
    let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----";
    let blocked = json!({ "k": key }).to_string();
    let mail = br#"{"mail":"jane.doe@example.com","n":1}"#.to_vec();
    let big = json!({"t": "jane.doe@example.com ".repeat(40)}).to_string();
    let pii_sets = [
        json!({"enabled": true, "actions": {"private_key": "block"}}),
        json!({"enabled": true, "actions": {"private_key": "block"}, "max_body_bytes": 256}),
        json!({"enabled": true, "actions": {"private_key": "block"}, "max_body_bytes": 256,
               "on_overflow": "stream"}),
    ];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", mail.clone()),
        ("application/json", blocked.clone().into_bytes()),
        ("application/json", big.clone().into_bytes()),
        ("text/plain", mail.clone()),
        ("text/html", blocked.clone().into_bytes()),
        ("application/octet-stream", vec![0xff, 0, 1, 2]),
        ("", b"\x00\x01binary".to_vec()),
        ("", mail.clone()),
        (
            "text/event-stream",
            b"data: jane.doe@example.com\n\n".to_vec(),
        ),
    ];
    let (mut refused, mut passed) = (0, 0);
    for pii in &pii_sets {
        for (ct, body) in &cases {
            for cuts in [vec![], vec![5], vec![1, 2, 30, 200]] {
                for trailers in [false, true] {
                    let (h_status, h_body, _, _) = answer_in(true, pii, ct, body, &cuts, trailers);
                    let (r_status, r_body, changed, _) =
                        answer_in(false, pii, ct, body, &cuts, trailers);
                    let what = format!("{pii} {ct} cuts {cuts:?} trailers {trailers}");
                    assert!(!changed, "headers changed after they left: {what}");
                    if h_status == "502" {
                        refused += 1;
                        let text = String::from_utf8_lossy(&r_body).to_string();
                        assert!(
                            r_status == "502" || text.starts_with("{\"error\":\"blocked\""),
                            "released passed what held refused: {what}: {text}"
                        );
                        assert!(
                            !text.contains("MIIEow") && !text.contains("jane.doe"),
                            "{what}"
                        );
                    } else {
                        passed += 1;
                        assert_eq!(h_status, r_status, "{what}");
                        assert_eq!(h_body, r_body, "{what}");
                    }
                }
            }
        }
    }
    assert!(
        refused > 20 && passed > 20,
        "{refused} refused, {passed} passed"
    );
}

/// A refusal that replaces the body of an answer whose headers already
/// left keeps the upstream's content type (`text/html` here): the
/// request id it echoes must not turn it into markup.
#[test]
fn a_refusal_under_a_markup_type_echoes_no_markup() {
    let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----";
    let mut b = bundle(json!([{"id": "all", "effect": "allow"}]));
    b["pii"] = json!({"enabled": true, "actions": {"private_key": "block"}});
    let policy = active(&b);
    let mut host = host_for("GET", "/x", &json!({"sub": "alice"}));
    host.request.headers.retain(|(k, _)| k != "x-request-id");
    host.request
        .headers
        .push(("x-request-id".into(), "<script>alert(1)</script>&".into()));
    let mut ex = released(&policy);
    assert_eq!(ex.on_request_headers(&mut host, true), Next::Continue);
    host.response.headers = vec![
        (":status".into(), "200".into()),
        ("content-type".into(), "text/html".into()),
    ];
    assert_eq!(ex.on_response_headers(&mut host, false), Next::Continue);
    host.response.body = format!("<p>{key}</p>").into_bytes();
    let n = host.response.body.len();
    assert_eq!(ex.on_response_body(&mut host, n, true), Next::Continue);
    let text = String::from_utf8(host.response.body.clone()).unwrap();
    assert!(!text.contains('<') && !text.contains('>'), "{text}");
    let refusal: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(refusal["request_id"], "<script>alert(1)</script>&");
    assert_eq!(refusal["reason"], "pii_blocked");
}

/// Extra request headers.
type Headers = Vec<(&'static str, &'static str)>;

/// Runs one request through an exchange; returns (forwarded, replies'
/// statuses, body that went on, headers changed after they left).
#[allow(clippy::too_many_arguments)]
fn request_in(
    held: bool,
    policy: &Arc<ActivePolicy>,
    claims: &Value,
    path: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    cuts: &[usize],
    trailers: bool,
) -> (bool, Vec<u32>, Vec<u8>, bool) {
    let mut host = host_for("POST", path, claims);
    host.request
        .headers
        .push(("content-length".into(), body.len().to_string()));
    host.request
        .headers
        .push(("accept-encoding".into(), "gzip".into()));
    for (k, v) in extra {
        host.request.headers.push(((*k).into(), (*v).into()));
    }
    let mut ex = Exchange::new(Some(policy.clone())).with_held_headers(held);
    let at_headers = ex.on_request_headers(&mut host, false);
    let released = at_headers == Next::Continue;
    let sent = host.request.headers.clone();
    let mut paused = at_headers == Next::Pause;
    let mut start = 0;
    let mut pieces: Vec<&[u8]> = Vec::new();
    for &cut in cuts {
        if cut > start && cut <= body.len() {
            pieces.push(&body[start..cut]);
            start = cut;
        }
    }
    pieces.push(&body[start..]);
    let mut upstream = Vec::new();
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate() {
        if !paused {
            host.request.body.clear();
        }
        host.request.body.extend_from_slice(piece);
        let eos = i == last && !trailers;
        let size = host.request.body.len();
        paused = ex.on_request_body(&mut host, size, eos) == Next::Pause;
        if !paused {
            upstream.extend_from_slice(&host.request.body);
            host.request.body.clear();
        }
    }
    if trailers {
        if !paused {
            host.request.body.clear();
        }
        paused = ex.on_request_trailers(&mut host) == Next::Pause;
        if !paused {
            upstream.extend_from_slice(&host.request.body);
        }
    }
    let changed = released && host.request.headers != sent;
    let statuses = host.replies.iter().map(|r| r.status).collect();
    (ex.forwarded() && !paused, statuses, upstream, changed)
}

/// The same requests in both modes, under bundles that scrub prompts,
/// inject claims, read MCP headers: the same outcome and the same bytes
/// upstream, and headers that left are never changed afterwards (the
/// host could not carry it out).
#[test]
fn requests_end_alike_in_both_modes() {
    let user = json!({"sub": "alice", "tenant": "acme", "roles": ["model-user"]});
    let mut scrub = bundle(body_rules());
    scrub["pii"] = json!({"enabled": true, "scrub_requests": true});
    let mut dry = bundle(body_rules());
    dry["dry_run"] = json!(true);
    let bundles = [bundle(body_rules()), scrub, dry];
    let bodies: Vec<(&str, Vec<u8>, Headers)> = vec![
        ("/mcp", tool_call("get_weather"), vec![]),
        ("/mcp", tool_call("drop_x"), vec![]),
        (
            "/mcp",
            tool_call("get_weather"),
            vec![("mcp-method", "tools/call"), ("mcp-name", "get_weather")],
        ),
        (
            "/mcp",
            tool_call("other"),
            vec![("mcp-method", "tools/call"), ("mcp-name", "get_weather")],
        ),
        (
            "/v1/chat",
            br#"{"model":"demo-1","messages":[{"role":"user","content":"mail jane.doe@example.com"}]}"#
                .to_vec(),
            vec![],
        ),
        ("/v1/chat", b"not json".to_vec(), vec![]),
        ("/v1/chat", Vec::new(), vec![]),
    ];
    for b in &bundles {
        let policy = active(b);
        for (path, body, extra) in &bodies {
            for cuts in [vec![], vec![3], vec![1, 2, 40]] {
                for trailers in [false, true] {
                    let what = format!(
                        "{} {path} {extra:?} cuts {cuts:?} trailers {trailers}",
                        b["pii"]
                    );
                    let held = request_in(true, &policy, &user, path, extra, body, &cuts, trailers);
                    let rel = request_in(false, &policy, &user, path, extra, body, &cuts, trailers);
                    assert!(!rel.3, "headers changed after they left: {what}");
                    assert_eq!(held.0, rel.0, "{what}");
                    assert_eq!(held.1, rel.1, "{what}");
                    assert_eq!(held.2, rel.2, "{what}");
                }
            }
        }
    }
}

/// Under a `resource` section, a caller missing a scope gets the
/// `insufficient_scope` challenge naming the scope its call needs (MCP
/// step-up authorization): the released mode must not answer such a
/// request at its headers with a plain denial that names none.
#[test]
fn a_missing_scope_is_challenged_alike_in_both_modes() {
    let resource = "https://mcp.example.com/mcp";
    let b = json!({
        "name": "r", "version": 1,
        "identity": {"jwt_authn_metadata": "jwt_payload"},
        "resource": {"resource": resource, "authorization_servers": ["https://auth.example.com"]},
        "rules": [
            {"id": "read", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"methods": ["tools/list"]},
                "claims": [{"claim": "scope", "contains_any": ["tools:read"]}]}},
            {"id": "write", "effect": "allow", "when": {
                "path": {"exact": "/mcp"}, "mcp": {"tools": ["delete_*"]},
                "claims": [{"claim": "scope", "contains_any": ["tools:write"]}]}}
        ],
        "pii": {"enabled": false}
    });
    let policy = active(&b);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string();
    for body in [list.into_bytes(), tool_call("delete_x")] {
        let mut answers = Vec::new();
        for held in [true, false] {
            let mut host = host_for(
                "POST",
                "/mcp",
                &json!({"sub": "a", "aud": resource, "scope": "openid"}),
            );
            let mut ex = Exchange::new(Some(policy.clone())).with_held_headers(held);
            ex.on_request_headers(&mut host, false);
            if host.replies.is_empty() {
                host.request.body = body.clone();
                let n = body.len();
                ex.on_request_body(&mut host, n, true);
            }
            let reply = host.replies.first().expect("refused").clone();
            let challenge = reply
                .headers
                .iter()
                .find(|(k, _)| k == "www-authenticate")
                .map(|(_, v)| v.clone());
            answers.push((
                reply.status,
                challenge,
                host.record().unwrap()["reason"].clone(),
            ));
        }
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0].2, "insufficient_scope");
    }
    // No scope opens a path no rule names: refused at the headers.
    let mut host = host_for("POST", "/admin", &json!({"sub": "a", "aud": resource}));
    let mut ex = released(&policy);
    assert_eq!(ex.on_request_headers(&mut host, false), Next::Pause);
    assert_eq!(host.replies[0].status, 403);
}

/// A dry-run allow rule being tried out on a path: its record must say
/// what it would do with the request's body, so the body decides.
#[test]
fn a_dry_run_allow_rule_is_judged_on_the_body() {
    let mut rules = body_rules();
    rules.as_array_mut().unwrap().push(json!({
        "id": "try-admin", "effect": "allow", "dry_run": true,
        "when": {"path": {"exact": "/admin"}, "mcp": {"tools": ["reset"]}}}));
    let policy = active(&bundle(rules));
    let user = json!({"sub": "alice"});
    for (tool, would) in [("reset", true), ("other", false)] {
        let mut records = Vec::new();
        for held in [true, false] {
            let mut host = host_for("POST", "/admin", &user);
            let mut ex = Exchange::new(Some(policy.clone())).with_held_headers(held);
            ex.on_request_headers(&mut host, false);
            if host.replies.is_empty() {
                host.request.body = tool_call(tool);
                let n = host.request.body.len();
                ex.on_request_body(&mut host, n, true);
            }
            assert_eq!(host.replies[0].status, 403);
            records.push(host.record().unwrap());
        }
        assert_eq!(records[0]["dry_run"], records[1]["dry_run"], "{tool}");
        assert_eq!(records[0]["dry_run"].is_null(), !would, "{}", records[0]);
    }
}

/// While a released request's body is held, an answer comes: the
/// upstream's is refused (502) and counted; Envoy's own (upstream
/// unreachable, timed out, the body outgrew its buffer) passes with its
/// status, noted, not counted as a refused body. Either way the body
/// never goes on.
#[test]
fn an_early_answer_is_refused_unless_envoy_made_it() {
    let policy = active(&bundle(body_rules()));
    let user = json!({"sub": "alice"});
    for (details, own) in [
        (Some("via_upstream"), false),
        (None, false),
        (
            Some("upstream_reset_before_response_started{remote_connection_failure}"),
            true,
        ),
        (Some("request_payload_too_large"), true),
    ] {
        let mut host = host_for("POST", "/mcp", &user);
        let mut ex = released(&policy);
        assert_eq!(ex.on_request_headers(&mut host, false), Next::Continue);
        host.request.body = b"{\"jsonrpc\":".to_vec();
        assert_eq!(ex.on_request_body(&mut host, 11, false), Next::Pause);
        if let Some(details) = details {
            host.set_property(&["response", "code_details"], details);
        }
        host.response.headers = vec![
            (":status".into(), "503".into()),
            ("content-type".into(), "text/plain".into()),
        ];
        let next = ex.on_response_headers(&mut host, false);
        let what = format!("{details:?}");
        if own {
            assert_eq!(next, Next::Continue, "{what}");
            assert!(host.replies.is_empty(), "{what}");
            assert_eq!(host.counts.refusals, 0, "{what}");
        } else {
            assert_eq!(next, Next::Pause, "{what}");
            assert_eq!(host.replies[0].status, 502, "{what}");
            assert_eq!(host.counts.refusals, 1, "{what}");
        }
        assert_eq!(host.record().unwrap()["scrub"], "response_before_decision");
        // The rest of the body never goes on.
        host.request
            .body
            .extend_from_slice(&tool_call("get_weather")[11..]);
        let n = host.request.body.len();
        assert_eq!(
            ex.on_request_body(&mut host, n, true),
            Next::Pause,
            "{what}"
        );
        assert!(!ex.forwarded());
    }
}

/// A request allowed on its `Mcp-Method` / `Mcp-Name` headers (which
/// went upstream, in both modes) while its body is held for the check:
/// Envoy's own answer passes, the upstream's is refused, and the body
/// never goes on either way.
#[test]
fn an_early_answer_to_a_call_allowed_on_its_headers_is_told_apart_too() {
    let rules = json!([{"id": "tools", "effect": "allow", "when": {
        "path": {"exact": "/mcp"}, "mcp": {"tools": ["get_weather"]}}}]);
    let policy = active(&bundle(rules));
    for held in [true, false] {
        for (details, own) in [("via_upstream", false), ("upstream_response_timeout", true)] {
            let mut host = host_for("POST", "/mcp", &json!({"sub": "alice"}));
            host.request
                .headers
                .push(("mcp-method".into(), "tools/call".into()));
            host.request
                .headers
                .push(("mcp-name".into(), "get_weather".into()));
            let mut ex = Exchange::new(Some(policy.clone())).with_held_headers(held);
            assert_eq!(ex.on_request_headers(&mut host, false), Next::Continue);
            assert!(ex.verifying());
            host.set_property(&["response", "code_details"], details);
            host.response.headers = vec![(":status".into(), "504".into())];
            let next = ex.on_response_headers(&mut host, false);
            assert_eq!(next == Next::Continue, own, "{details}");
            assert_eq!(host.replies.len(), usize::from(!own), "{details}");
            host.request.body = tool_call("get_weather");
            let n = host.request.body.len();
            assert_eq!(ex.on_request_body(&mut host, n, true), Next::Pause);
            assert!(!ex.forwarded());
        }
    }
}
