//! RFC 8693 token exchange in the exchange flow, driven through the
//! in-memory host: cache hits and misses, expiry, every failure (always a
//! 503, never the caller's token upstream), callbacks while the exchange
//! is pending, and answers arriving after the stream is gone.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use mcp_guard_engine::Policy;
use mcp_guard_flow::memory::MemoryHost;
use mcp_guard_flow::token_exchange::CalloutAnswer;
use mcp_guard_flow::{ActivePolicy, Exchange, Next};
use serde_json::{json, Value};

const NOW_MS: u64 = 1_800_000_000_000;
const NOW_S: u64 = NOW_MS / 1000;
const SECRET: &str = "s3cret";

fn bundle(tx: Value) -> Value {
    let mut b = bundle_plain(tx);
    b["rules"].as_array_mut().unwrap().push(json!(
        {"id": "tools", "effect": "allow", "when": {
            "path": {"exact": "/mcp"}, "mcp": {"tools": ["get_weather"]}}}));
    b
}

/// Rules that never read the body: decided at request headers.
fn bundle_plain(tx: Value) -> Value {
    json!({
        "name": "t",
        "version": 1,
        "rules": [
            {"id": "plain", "effect": "allow", "when": {"path": {"prefix": "/plain/"}}}
        ],
        "token_exchange": tx
    })
}

fn section() -> Value {
    json!({
        "cluster": "idp", "authority": "idp.local", "path": "/token",
        "audience": "mcp-tools", "scopes": ["tools.call"], "client_id": "guard",
        "timeout_ms": 500, "max_cache_entries": 100, "expiry_skew_secs": 10
    })
}

fn active(tx: Value) -> Arc<ActivePolicy> {
    let policy = Policy::compile(bundle(tx).to_string().as_bytes()).unwrap();
    Arc::new(ActivePolicy::new(policy, None))
}

fn exchange(active: &Arc<ActivePolicy>) -> Exchange {
    Exchange::new(Some(Arc::clone(active))).with_exchange_secret(Some(Arc::from(SECRET)))
}

/// The caller's claims; `jti` tells the callers' tokens apart.
fn claims(name: &str, exp: u64) -> Value {
    json!({"sub": "alice", "exp": exp, "jti": name})
}

/// The caller's bearer token: a JWT whose payload is [`claims`] (the
/// exchange only trades the token that identified the caller; these
/// tests take its verification as done).
fn subject(name: &str, exp: u64) -> String {
    let payload = URL_SAFE_NO_PAD.encode(claims(name, exp).to_string());
    format!("e30.{payload}.c2ln")
}

fn host(token: Option<&str>, exp: u64, path: &str) -> MemoryHost {
    let mut host = MemoryHost::at(NOW_MS);
    host.set_claims("jwt_payload", &claims(token.unwrap_or("none"), exp));
    host.request.headers = vec![
        (":method".into(), "GET".into()),
        (":path".into(), path.into()),
        (":authority".into(), "api.local".into()),
        ("x-request-id".into(), "r1".into()),
    ];
    if let Some(token) = token {
        host.request.headers.push((
            "authorization".into(),
            format!("Bearer {}", subject(token, exp)),
        ));
    }
    host
}

fn issued(token: &str, expires_in: u64) -> CalloutAnswer {
    CalloutAnswer {
        headers: vec![],
        status: Some("200".into()),
        body: json!({
            "access_token": token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": expires_in
        })
        .to_string()
        .into_bytes(),
        ..CalloutAnswer::default()
    }
}

fn authorization(host: &MemoryHost) -> Vec<&str> {
    host.request
        .headers
        .iter()
        .filter(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str())
        .collect()
}

fn assert_refused(host: &MemoryHost, detail: &str) {
    assert_eq!(host.replies.len(), 1, "one local reply");
    let reply = &host.replies[0];
    assert_eq!(reply.status, 503);
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["reason"], "token_exchange_failed");
    assert_eq!(body["detail"], detail);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(
        !text.contains("user-token") && !text.contains("e30."),
        "the reply never echoes the caller's token"
    );
    assert_eq!(host.resumed, 0, "a refused request is never resumed");
}

/// Sends one GET through the flow and answers its exchange; the upstream's
/// `Authorization`.
fn run(active: &Arc<ActivePolicy>, token: &str, answer: Option<CalloutAnswer>) -> MemoryHost {
    let mut h = host(Some(token), NOW_S + 3600, "/plain/x");
    let mut x = exchange(active);
    let next = x.on_request_headers(&mut h, true);
    if let Some(answer) = answer {
        assert_eq!(next, Next::Pause);
        let id = h.callouts.last().unwrap().id;
        x.on_callout_answer(&mut h, id, &answer);
    }
    h
}

#[test]
fn miss_exchanges_then_hit_is_served_from_cache() {
    let a = active(section());
    let h = run(&a, "user-token-1", Some(issued("up-1", 300)));
    assert_eq!(h.callouts.len(), 1);
    let call = &h.callouts[0];
    assert_eq!(call.cluster, "idp");
    assert_eq!(call.timeout_ms, 500);
    assert_eq!(call.header(":method"), Some("POST"));
    assert_eq!(call.header(":path"), Some("/token"));
    assert_eq!(call.header(":authority"), Some("idp.local"));
    let body = String::from_utf8(call.body.clone()).unwrap();
    assert!(body.contains("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"));
    let token = subject("user-token-1", NOW_S + 3600);
    assert!(body.contains(&format!("subject_token={token}&")));
    assert!(body.contains("audience=mcp-tools"));
    assert_eq!(authorization(&h), ["Bearer up-1"]);
    assert_eq!(h.resumed, 1);
    assert_eq!(h.counts.allowed, 1);
    assert!(h.replies.is_empty());

    // Same caller again: no callout, the request continues at once.
    let mut h2 = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    let mut x2 = exchange(&a);
    assert_eq!(x2.on_request_headers(&mut h2, true), Next::Continue);
    assert!(h2.callouts.is_empty());
    assert_eq!(authorization(&h2), ["Bearer up-1"]);
    assert_eq!(h2.resumed, 0);
}

#[test]
fn another_callers_token_never_gets_the_cached_one() {
    let a = active(section());
    run(&a, "user-token-alice", Some(issued("up-alice", 300)));
    let mut h = host(Some("user-token-mallory"), NOW_S + 3600, "/plain/x");
    let mut x = exchange(&a);
    assert_eq!(x.on_request_headers(&mut h, true), Next::Pause);
    assert_eq!(h.callouts.len(), 1, "a cache miss: mallory's own exchange");
    assert!(
        String::from_utf8_lossy(&h.callouts[0].body).contains(&format!(
            "subject_token={}",
            subject("user-token-mallory", NOW_S + 3600)
        ))
    );
    // Until the answer, the caller's token is still the only one there,
    // and the request is held.
    assert_eq!(h.resumed, 0);
    x.on_callout_answer(&mut h, 1, &issued("up-mallory", 300));
    assert_eq!(authorization(&h), ["Bearer up-mallory"]);
    // And alice still gets hers.
    let h = run(&a, "user-token-alice", None);
    assert_eq!(authorization(&h), ["Bearer up-alice"]);
}

#[test]
fn another_audience_does_not_share_the_cache() {
    let a = active(section());
    run(&a, "user-token-1", Some(issued("up-1", 300)));
    let mut other = section();
    other["audience"] = json!("billing");
    let b = active(other);
    let h = run(&b, "user-token-1", Some(issued("up-billing", 300)));
    assert_eq!(h.callouts.len(), 1);
    assert_eq!(authorization(&h), ["Bearer up-billing"]);
}

#[test]
fn cache_lifetime_is_capped_by_expires_in_subject_exp_and_skew() {
    let a = active(section());
    // expires_in 60 s, skew 10 s: cached for 50 s.
    run(&a, "user-token-1", Some(issued("up-1", 60)));
    let mut h = run(&a, "user-token-1", None);
    assert_eq!(authorization(&h), ["Bearer up-1"]);
    h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    h.now_ms = NOW_MS + 50_000;
    let mut x = exchange(&a);
    assert_eq!(
        x.on_request_headers(&mut h, true),
        Next::Pause,
        "expired: exchanged again"
    );

    // The subject token expires in 20 s: cached only 10 s, whatever
    // expires_in says.
    let mut h = host(Some("user-token-2"), NOW_S + 20, "/plain/x");
    let mut x = exchange(&a);
    x.on_request_headers(&mut h, true);
    x.on_callout_answer(&mut h, 1, &issued("up-2", 3600));
    let mut h = host(Some("user-token-2"), NOW_S + 20, "/plain/x");
    h.now_ms = NOW_MS + 9_000;
    assert_eq!(
        exchange(&a).on_request_headers(&mut h, true),
        Next::Continue
    );
    let mut h = host(Some("user-token-2"), NOW_S + 20, "/plain/x");
    h.now_ms = NOW_MS + 10_000;
    assert_eq!(exchange(&a).on_request_headers(&mut h, true), Next::Pause);

    // No expires_in: used once, never cached.
    let mut answer = issued("up-3", 0);
    let mut body: Value = serde_json::from_slice(&answer.body).unwrap();
    body.as_object_mut().unwrap().remove("expires_in");
    answer.body = body.to_string().into_bytes();
    let h = run(&a, "user-token-3", Some(answer));
    assert_eq!(authorization(&h), ["Bearer up-3"]);
    let mut h = host(Some("user-token-3"), NOW_S + 3600, "/plain/x");
    assert_eq!(exchange(&a).on_request_headers(&mut h, true), Next::Pause);
}

#[test]
fn caching_can_be_turned_off() {
    let mut s = section();
    s["max_cache_entries"] = json!(0);
    let a = active(s);
    run(&a, "user-token-1", Some(issued("up-1", 300)));
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    assert_eq!(exchange(&a).on_request_headers(&mut h, true), Next::Pause);
}

#[test]
fn every_failure_is_a_503_without_the_callers_token() {
    let a = active(section());
    let answers: &[(CalloutAnswer, &str)] = &[
        (CalloutAnswer::default(), "no_answer"),
        (
            CalloutAnswer {
                headers: vec![],
                status: Some("500".into()),
                body: b"{}".to_vec(),
                ..CalloutAnswer::default()
            },
            "error_status",
        ),
        (
            CalloutAnswer {
                headers: vec![],
                status: Some("200".into()),
                body: b"<html>".to_vec(),
                ..CalloutAnswer::default()
            },
            "unparseable_answer",
        ),
        (
            CalloutAnswer {
                headers: vec![],
                status: Some("200".into()),
                body: br#"{"token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#.to_vec(),
                ..CalloutAnswer::default()
            },
            "missing_access_token",
        ),
        (
            CalloutAnswer {
                headers: vec![],
                status: Some("200".into()),
                body: br#"{"access_token":"x","token_type":"mac","issued_token_type":"urn:ietf:params:oauth:token-type:access_token"}"#.to_vec(),
                ..CalloutAnswer::default()
            },
            "wrong_token_type",
        ),
    ];
    for (answer, detail) in answers {
        let h = run(&a, "user-token-1", Some(answer.clone()));
        assert_refused(&h, detail);
        assert!(
            authorization(&h).is_empty(),
            "{detail}: caller's token removed"
        );
        assert_eq!(h.counts.denied, 1);
        let record = h.record().unwrap();
        assert_eq!(record["reason"], "token_exchange_failed", "{record}");
    }
    // Nothing failed was cached.
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    assert_eq!(exchange(&a).on_request_headers(&mut h, true), Next::Pause);
}

#[test]
fn no_token_ambiguous_token_refused_callout_or_no_secret_fail_closed() {
    let a = active(section());
    // No bearer token at all.
    let mut h = host(None, NOW_S + 3600, "/plain/x");
    exchange(&a).on_request_headers(&mut h, true);
    assert_refused(&h, "no_bearer_token");
    assert!(h.callouts.is_empty());
    // Basic credentials are not a subject token.
    let mut h = host(None, NOW_S + 3600, "/plain/x");
    h.request
        .headers
        .push(("authorization".into(), "Basic dXNlcjpwdw==".into()));
    exchange(&a).on_request_headers(&mut h, true);
    assert_refused(&h, "no_bearer_token");
    // Two Authorization headers: which one would the IdP see?
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    h.request
        .headers
        .push(("authorization".into(), "Bearer user-token-2".into()));
    exchange(&a).on_request_headers(&mut h, true);
    assert_refused(&h, "ambiguous_authorization");
    // The proxy will not send the callout.
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    h.refuse_callouts = true;
    exchange(&a).on_request_headers(&mut h, true);
    assert_refused(&h, "callout_refused");
    // No client secret configured.
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    Exchange::new(Some(Arc::clone(&a))).on_request_headers(&mut h, true);
    assert_refused(&h, "no_client_secret");
    assert!(h.callouts.is_empty());
}

#[test]
fn body_and_trailers_are_held_while_the_exchange_is_pending() {
    let policy = Policy::compile(bundle_plain(section()).to_string().as_bytes()).unwrap();
    let a = Arc::new(ActivePolicy::new(policy, None));
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    let mut x = exchange(&a);
    assert_eq!(x.on_request_headers(&mut h, false), Next::Pause);
    h.request.body = b"chunk".to_vec();
    assert_eq!(x.on_request_body(&mut h, 5, false), Next::Pause);
    h.request.trailers = vec![("authorization".into(), "Bearer user-token-1".into())];
    assert_eq!(x.on_request_trailers(&mut h), Next::Pause);
    assert!(
        h.request.trailers.is_empty(),
        "an Authorization trailer is dropped"
    );
    assert!(!x.forwarded());
    x.on_callout_answer(&mut h, 1, &issued("up-1", 300));
    assert!(x.forwarded());
    assert_eq!(h.resumed, 1);
    assert_eq!(h.request.body, b"chunk", "the held body goes on untouched");
    // Callbacks after the resume behave as for any forwarded request.
    assert_eq!(x.on_request_body(&mut h, 0, true), Next::Continue);
}

#[test]
fn exchange_after_a_body_decision_holds_until_the_answer() {
    let a = active(section());
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/mcp");
    h.request.headers[0].1 = "POST".into();
    h.request
        .headers
        .push(("content-type".into(), "application/json".into()));
    let mut x = exchange(&a);
    assert_eq!(x.on_request_headers(&mut h, false), Next::Pause);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_weather"}})
    .to_string();
    h.request.body = body.clone().into_bytes();
    assert_eq!(x.on_request_body(&mut h, body.len(), true), Next::Pause);
    assert_eq!(h.callouts.len(), 1);
    x.on_callout_answer(&mut h, 1, &issued("up-1", 300));
    assert_eq!(authorization(&h), ["Bearer up-1"]);
    assert_eq!(h.resumed, 1);
}

#[test]
fn answers_after_a_reset_or_for_another_call_are_ignored() {
    let a = active(section());
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    let mut x = exchange(&a);
    x.on_request_headers(&mut h, true);
    // An answer with the wrong id changes nothing.
    x.on_callout_answer(&mut h, 99, &issued("up-x", 300));
    assert_eq!((h.resumed, h.replies.len()), (0, 0));
    // The caller's token was removed when the request was allowed.
    assert!(authorization(&h).is_empty());
    // The stream is reset while the exchange is pending.
    x.on_stream_done();
    x.on_callout_answer(&mut h, 1, &issued("up-1", 300));
    x.on_callout_answer(&mut h, 1, &CalloutAnswer::default());
    assert_eq!((h.resumed, h.replies.len()), (0, 0));
    assert!(!x.forwarded());
    // A response Envoy makes up meanwhile (timeout) passes as its own.
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
    let mut x = exchange(&a);
    x.on_request_headers(&mut h, true);
    h.response.headers = vec![(":status".into(), "504".into())];
    assert_eq!(x.on_response_headers(&mut h, true), Next::Continue);
}

#[test]
fn a_denied_request_never_triggers_an_exchange() {
    let a = active(section());
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/admin");
    exchange(&a).on_request_headers(&mut h, true);
    assert!(h.callouts.is_empty());
    assert_eq!(h.replies[0].status, 403);
}

#[test]
fn the_exchanged_token_is_the_last_word_on_authorization() {
    // A bundle that also injects a claim into `authorization`: the
    // exchanged token still wins, on a miss and on a hit.
    let mut b = bundle(section());
    b["inject"] = json!([{"claim": "sub", "header": "authorization"}]);
    let a = Arc::new(ActivePolicy::new(
        Policy::compile(b.to_string().as_bytes()).unwrap(),
        None,
    ));
    let h = run(&a, "user-token-1", Some(issued("up-1", 300)));
    assert_eq!(authorization(&h), ["Bearer up-1"]);
    let h = run(&a, "user-token-1", None);
    assert_eq!(authorization(&h), ["Bearer up-1"]);
}

#[test]
fn an_answer_after_the_proxy_answered_the_request_changes_nothing() {
    // Envoy answers while the exchange is pending (a stream timeout, a
    // local reply of another filter); the IdP's late answer must neither
    // send a second reply nor release the request upstream.
    let a = active(section());
    for answer in [issued("up-1", 300), CalloutAnswer::default()] {
        let mut h = host(Some("user-token-1"), NOW_S + 3600, "/plain/x");
        let mut x = exchange(&a);
        assert_eq!(x.on_request_headers(&mut h, true), Next::Pause);
        h.response.headers = vec![(":status".into(), "504".into())];
        assert_eq!(x.on_response_headers(&mut h, true), Next::Continue);
        x.on_callout_answer(&mut h, 1, &answer);
        assert_eq!((h.resumed, h.replies.len()), (0, 0), "{answer:?}");
        assert!(!x.forwarded());
    }
    // The same while the body was awaited: its end decides nothing more.
    let mut h = host(Some("user-token-1"), NOW_S + 3600, "/mcp");
    h.request.headers[0].1 = "POST".into();
    let mut x = exchange(&a);
    assert_eq!(x.on_request_headers(&mut h, false), Next::Pause);
    h.response.headers = vec![(":status".into(), "408".into())];
    assert_eq!(x.on_response_headers(&mut h, true), Next::Continue);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": {"name": "get_weather"}})
    .to_string();
    h.request.body = body.clone().into_bytes();
    assert_eq!(x.on_request_body(&mut h, body.len(), true), Next::Pause);
    assert!(h.callouts.is_empty() && h.replies.is_empty());
    assert!(!x.forwarded());
}

/// A request announcing an allowed tool in `Mcp-Method` / `Mcp-Name` is not
/// decided (nor exchanged) at its headers when the bundle exchanges
/// tokens: the headers would already be upstream while the exchange holds
/// the request. Its body is still checked against the headers first, and
/// a body calling another tool never triggers an exchange.
#[test]
fn announced_calls_are_exchanged_only_after_their_body_agrees() {
    let a = active(section());
    for (tool, agrees) in [("get_weather", true), ("delete_all", false)] {
        let mut h = host(Some("user-token-1"), NOW_S + 3600, "/mcp");
        h.request.headers[0].1 = "POST".into();
        h.request.headers.extend([
            ("content-type".into(), "application/json".into()),
            ("mcp-method".into(), "tools/call".into()),
            ("mcp-name".into(), "get_weather".into()),
        ]);
        let mut x = exchange(&a);
        assert_eq!(x.on_request_headers(&mut h, false), Next::Pause);
        assert!(
            !x.decided() && !x.verifying(),
            "held, not decided on headers"
        );
        assert!(h.callouts.is_empty());
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool}})
        .to_string();
        h.request.body = body.clone().into_bytes();
        assert_eq!(x.on_request_body(&mut h, body.len(), true), Next::Pause);
        if agrees {
            assert_eq!(h.callouts.len(), 1, "exchanged once the body agreed");
            assert!(h.replies.is_empty());
        } else {
            assert!(h.callouts.is_empty(), "no exchange for a mismatched body");
            assert_eq!(h.replies.len(), 1);
            assert_eq!(h.replies[0].status, 400);
            assert!(!x.forwarded());
        }
    }
}
