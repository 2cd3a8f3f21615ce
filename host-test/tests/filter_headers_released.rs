//! The real `mcp_guard.wasm` under an Envoy that does NOT hold headers
//! for a paused filter (`allow_on_headers_stop_iteration` off, all an
//! Istio `WasmPlugin` can configure): a pause at headers becomes "stop
//! all" and the body never reaches the filter until it resumes. Without
//! `headers_stop_iteration` in its configuration the filter lets headers
//! go on and holds bodies instead; every exchange here must end decided,
//! never stalled, and a denied body must never reach the upstream.

use mcp_guard_host_test::{Action, Host, Plugin, PluginOptions, Stream};
use serde_json::{json, Value};

const DEMO_BUNDLE: &str = include_str!("../../policies/demo.json");

/// Envoy as an Istio `WasmPlugin` runs it.
fn istio_options() -> PluginOptions {
    PluginOptions {
        headers_stop_iteration: false,
        ..PluginOptions::default()
    }
}

fn plugin(config: Value, options: PluginOptions) -> Plugin {
    Host::from_env()
        .unwrap_or_else(|e| panic!("{e}"))
        .plugin_with(config.to_string(), options)
        .expect("filter starts")
}

fn demo_bundle() -> Value {
    serde_json::from_str(DEMO_BUNDLE).unwrap()
}

fn istio_plugin() -> Plugin {
    plugin(json!({ "bundle": demo_bundle() }), istio_options())
}

const MODEL_USER: &str = r#"{"sub":"alice","roles":["model-user"],"exp":1.9e9}"#;
const TOOL_USER: &str = r#"{"sub":"tom","scope":"mcp:tools","exp":1.9e9}"#;

fn claims(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap()
}

fn post(plugin: &Plugin, who: &str, path: &str) -> Stream {
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", claims(who));
    let action = stream
        .request_headers(
            &[
                (":method", "POST"),
                (":path", path),
                (":authority", "model.local"),
                ("content-type", "application/json"),
                ("authorization", "Bearer client-token"),
                ("accept-encoding", "gzip"),
                ("x-request-id", "req-7"),
            ],
            false,
        )
        .unwrap();
    assert_eq!(action, Action::Continue, "headers are not held");
    stream
}

fn send_body(stream: &Stream, body: &[u8], chunk: usize) {
    let chunks: Vec<&[u8]> = body.chunks(chunk.max(1)).collect();
    for (i, piece) in chunks.iter().enumerate() {
        stream.request_body(piece, i + 1 == chunks.len()).unwrap();
    }
}

fn decision(stream: &Stream) -> Value {
    serde_json::from_str(&stream.filter_state()["wasm.mcp_decision"]).unwrap()
}

fn tool_call(tool: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
           "params": {"name": tool, "arguments": {}}})
    .to_string()
    .into_bytes()
}

#[test]
fn allowed_bodies_go_on_after_their_decision_with_ready_headers() {
    let plugin = istio_plugin();
    let stream = post(&plugin, MODEL_USER, "/v1/chat/completions");
    let upstream = stream.upstream_request().expect("headers went on");
    // Ready for the upstream before any decision: no client token, no
    // compression the filter could not read back.
    assert!(upstream.header("authorization").is_none());
    assert!(upstream.header("accept-encoding").is_none());
    assert!(upstream.body.is_empty(), "no byte before the decision");
    let body = br#"{"model":"demo-llm","messages":[{"role":"user","content":"hi"}]}"#;
    let first = stream.request_body(&body[..10], false).unwrap();
    assert_eq!(first, Action::Pause, "the body is held");
    assert!(stream.upstream_request().unwrap().body.is_empty());
    assert_eq!(
        stream.request_body(&body[10..], true).unwrap(),
        Action::Continue
    );
    let upstream = stream.upstream_request().unwrap();
    assert!(upstream.complete);
    assert_eq!(upstream.body, body.to_vec());
    assert_eq!(decision(&stream)["decision"], "allow");
    assert!(!stream.stalled());
}

#[test]
fn denied_bodies_never_reach_the_upstream_and_get_a_local_reply() {
    let plugin = istio_plugin();
    for (who, path, body) in [
        // A model the rules do not name.
        (
            MODEL_USER,
            "/v1/chat/completions",
            br#"{"model":"gpt-secret","messages":[]}"#.to_vec(),
        ),
        // A tool the caller may not use.
        (TOOL_USER, "/mcp", tool_call("delete_customer")),
        // Not JSON at all.
        (TOOL_USER, "/mcp", b"{\"jsonrpc\":\"2.0\",".to_vec()),
    ] {
        for chunk in [1, 7, 4096] {
            let stream = post(&plugin, who, path);
            send_body(&stream, &body, chunk);
            let reply = stream.local_reply().expect("a local reply");
            assert!(reply.status == 403 || reply.status == 400, "{reply:?}");
            let upstream = stream.upstream_request().unwrap();
            assert!(upstream.body.is_empty(), "no denied byte went upstream");
            assert!(!upstream.complete);
            assert_eq!(decision(&stream)["decision"], "deny");
            assert!(!stream.stalled());
        }
    }
}

#[test]
fn a_body_ending_in_trailers_is_decided_at_the_trailers() {
    let plugin = istio_plugin();
    let stream = post(&plugin, TOOL_USER, "/mcp");
    stream
        .request_body(&tool_call("delete_customer"), false)
        .unwrap();
    stream.request_trailers(&[("x-t", "1")]).unwrap();
    assert_eq!(stream.local_reply().unwrap().status, 403);
    assert!(stream.upstream_request().unwrap().body.is_empty());

    let stream = post(&plugin, TOOL_USER, "/mcp");
    stream
        .request_body(&tool_call("get_weather"), false)
        .unwrap();
    assert_eq!(
        stream.request_trailers(&[("x-t", "1")]).unwrap(),
        Action::Continue
    );
    assert!(stream.upstream_request().unwrap().complete);
    assert_eq!(decision(&stream)["decision"], "allow");
}

/// Headers the rules deny whatever body follows (a path no rule allows,
/// a caller without the claims any allow rule asks for) are refused at
/// once and never reach the upstream: an upstream may act on a request
/// line before reading a body, and a body must not be a way to send an
/// undecided request line upstream.
#[test]
fn headers_no_body_can_make_allowed_never_leave() {
    let plugin = istio_plugin();
    for (who, path) in [
        (MODEL_USER, "/admin/reset"),
        (MODEL_USER, "/mcp"),
        (TOOL_USER, "/v1/chat/completions"),
    ] {
        let stream = plugin.stream().unwrap();
        stream.set_jwt_payload("jwt_payload", claims(who));
        let action = stream
            .request_headers(
                &[
                    (":method", "POST"),
                    (":path", path),
                    (":authority", "model.local"),
                    ("content-type", "application/json"),
                    ("authorization", "Bearer client-token"),
                ],
                false,
            )
            .unwrap();
        assert_ne!(action, Action::Continue, "{path}: headers held");
        assert_eq!(stream.local_reply().expect("refused").status, 403);
        assert!(
            stream.upstream_request().is_none(),
            "{path}: nothing went upstream"
        );
        stream
            .request_body(&tool_call("get_weather"), true)
            .unwrap();
        assert!(stream.upstream_request().is_none());
        assert_eq!(decision(&stream)["decision"], "deny");
        assert!(!stream.stalled());
    }
}

#[test]
fn an_upstream_answering_before_the_decision_is_refused() {
    let plugin = istio_plugin();
    let stream = post(&plugin, TOOL_USER, "/mcp");
    // The client keeps its body open; the upstream answers on headers.
    stream.request_body(b"{\"jsonrpc\":", false).unwrap();
    stream
        .response_headers(
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        )
        .unwrap();
    stream
        .response_body(br#"{"secret":"AKIAIOSFODNN7EXAMPLE"}"#, true)
        .unwrap();
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 502);
    assert!(!response.body_text().contains("AKIA"));
    // And the rest of the body never leaves.
    stream
        .request_body(&tool_call("get_weather")[11..], true)
        .unwrap();
    assert!(stream.upstream_request().unwrap().body.is_empty());
}

#[test]
fn response_bodies_are_scrubbed_and_refusals_replace_the_body() {
    let bundle = json!({
        "name": "istio", "version": 1,
        "rules": [{"id": "all", "effect": "allow", "when": {"claims": [{"claim": "sub", "exists": true}]}}],
        "pii": {"actions": {"card": "partial", "private_key": "block"}}
    });
    let plugin = plugin(json!({ "bundle": bundle }), istio_options());
    let get = |plugin: &Plugin| {
        let stream = plugin.stream().unwrap();
        stream.set_jwt_payload("jwt_payload", claims(MODEL_USER));
        stream
            .request_headers(
                &[(":method", "GET"), (":path", "/x"), (":authority", "h")],
                true,
            )
            .unwrap();
        stream
    };
    let answer = br#"{"mail":"jane.doe@example.com","card":"4111 1111 1111 1111"}"#;
    let stream = get(&plugin);
    let at_headers = stream
        .response_headers(
            &[
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", &answer.len().to_string()),
            ],
            false,
        )
        .unwrap();
    assert_eq!(at_headers, Action::Continue, "response headers not held");
    let sent = stream.client_response().unwrap();
    assert!(
        sent.header("content-length").is_none(),
        "length will change"
    );
    stream.response_body(&answer[..20], false).unwrap();
    assert!(stream.client_response().unwrap().body.is_empty(), "held");
    stream.response_body(&answer[20..], true).unwrap();
    let text = stream.client_response().unwrap().body_text();
    assert!(!text.contains("jane.doe@example.com"), "{text}");
    assert!(!text.contains("4111 1111 1111 1111"), "{text}");
    assert!(!stream.stalled());

    // A blocked type: the status already left, the body is the refusal.
    let key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n-----END RSA PRIVATE KEY-----";
    let leaking = json!({ "k": key }).to_string();
    let stream = get(&plugin);
    stream
        .response_headers(
            &[(":status", "200"), ("content-type", "application/json")],
            false,
        )
        .unwrap();
    stream
        .response_body(&leaking.as_bytes()[..30], false)
        .unwrap();
    stream
        .response_body(&leaking.as_bytes()[30..], true)
        .unwrap();
    let response = stream.client_response().unwrap();
    let body = response.body_text();
    assert!(!body.contains("MIIEow"), "{body}");
    let refusal: Value = serde_json::from_str(&body).expect("a JSON refusal");
    assert!(body.contains("pii_blocked"), "{refusal}");
    assert!(response.complete);
    assert_eq!(decision(&stream)["scrub"], "pii_blocked");
}

#[test]
fn token_exchange_on_a_body_decision_is_refused_not_forwarded_without_a_token() {
    let mut bundle = demo_bundle();
    bundle["token_exchange"] = json!({
        "cluster": "idp", "authority": "idp.example", "path": "/token",
        "client_id": "guard", "audience": "llm"
    });
    let config = json!({"bundle": bundle, "token_exchange": {"client_secret": "s"}});
    let plugin = plugin(config, istio_options());
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", claims(MODEL_USER));
    stream
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                (":authority", "model.local"),
                ("authorization", "Bearer client-token"),
            ],
            false,
        )
        .unwrap();
    let reply = stream.local_reply().expect("refused at once");
    assert_eq!(reply.status, 503);
    assert!(stream.upstream_request().is_none());
    assert_eq!(decision(&stream)["reason"], "token_exchange_failed");
}

/// The same requests, every chunking, with and without trailers, in
/// both Envoy modes: the same decision, nothing ever stalled, and in
/// the released mode no byte of a denied body upstream.
#[test]
fn both_modes_decide_alike_and_nothing_stalls() {
    let released = istio_plugin();
    let held = plugin(
        json!({"bundle": demo_bundle(), "headers_stop_iteration": true}),
        PluginOptions::default(),
    );
    let requests: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            MODEL_USER,
            "/v1/chat/completions",
            br#"{"model":"demo-llm","messages":[]}"#.to_vec(),
        ),
        (
            MODEL_USER,
            "/v1/chat/completions",
            br#"{"model":"other","messages":[]}"#.to_vec(),
        ),
        (TOOL_USER, "/mcp", tool_call("get_weather")),
        (TOOL_USER, "/mcp", tool_call("delete_customer")),
        (TOOL_USER, "/mcp", b"[]".to_vec()),
        (TOOL_USER, "/mcp", b"\xff\xfe".to_vec()),
    ];
    for (who, path, body) in &requests {
        for chunk in [1, 3, 64, 100_000] {
            for trailers in [false, true] {
                let mut outcomes = Vec::new();
                for plugin in [&released, &held] {
                    let stream = plugin.stream().unwrap();
                    stream.set_jwt_payload("jwt_payload", claims(who));
                    stream
                        .request_headers(
                            &[
                                (":method", "POST"),
                                (":path", path),
                                (":authority", "model.local"),
                                ("content-type", "application/json"),
                            ],
                            false,
                        )
                        .unwrap();
                    let pieces: Vec<&[u8]> = body.chunks(chunk).collect();
                    for (i, piece) in pieces.iter().enumerate() {
                        let last = i + 1 == pieces.len() && !trailers;
                        stream.request_body(piece, last).unwrap();
                    }
                    if trailers {
                        stream.request_trailers(&[("x-end", "1")]).unwrap();
                    }
                    assert!(
                        !stream.stalled(),
                        "{path} chunk {chunk} trailers {trailers}"
                    );
                    let d = decision(&stream);
                    let upstream = stream.upstream_request();
                    if d["decision"] == "deny" {
                        assert!(stream.local_reply().is_some());
                        assert!(upstream.is_none_or(|u| u.body.is_empty() && !u.complete));
                    } else {
                        let upstream = upstream.expect("allowed requests go upstream");
                        assert!(upstream.complete);
                        assert_eq!(&upstream.body, body);
                    }
                    outcomes.push((d["decision"].clone(), d["reason"].clone()));
                }
                assert_eq!(outcomes[0], outcomes[1], "{path} {body:?}");
            }
        }
    }
}

/// Configuration and Envoy disagree (the plugin says Envoy holds headers,
/// Envoy does not): the stream waits for a body that never comes, and the
/// filter says so in the log when the stream ends.
#[test]
fn a_configuration_that_claims_held_headers_is_named_in_the_log() {
    let plugin = plugin(
        json!({"bundle": demo_bundle(), "headers_stop_iteration": true}),
        istio_options(),
    );
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", claims(MODEL_USER));
    stream
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/v1/chat/completions"),
                (":authority", "model.local"),
            ],
            false,
        )
        .unwrap();
    let not_called = stream
        .request_body(br#"{"model":"demo-llm","messages":[]}"#, true)
        .unwrap();
    assert_eq!(not_called, Action::NotCalled);
    assert!(stream.upstream_request().is_none(), "nothing went upstream");
    stream.finish().unwrap();
    let logs: Vec<String> = plugin.logs().into_iter().map(|l| l.message).collect();
    let logs = logs.join("\n");
    assert!(
        logs.contains("allow_on_headers_stop_iteration is off"),
        "{logs}"
    );
}

/// A bundle that exchanges tokens but decides on headers alone: the
/// request pauses at its headers for the identity provider (Envoy stops
/// the whole request, the body buffered without a callback), and the
/// answer lets the headers go with the exchanged token, then the body.
#[test]
fn a_token_exchange_decided_at_headers_resumes_with_the_body() {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use mcp_guard_host_test::HttpCallResponse;
    let config = json!({
        "bundle": {
            "name": "txchg", "version": 1,
            "rules": [{"id": "tools", "effect": "allow", "when": {
                "methods": ["POST"], "path": {"prefix": "/tools/"}}}],
            "token_exchange": {"cluster": "idp_token", "authority": "idp.local",
                "path": "/oauth2/token", "audience": "mcp-tools",
                "client_id": "guard", "timeout_ms": 500}
        },
        "token_exchange": {"client_secret": "s3cret"}
    });
    let plugin = plugin(config, istio_options());
    let exp = plugin
        .now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let claims = json!({"sub": "alice", "exp": exp});
    let token = format!(
        "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", claims);
    let auth = format!("Bearer {token}");
    let action = stream
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/tools/run"),
                (":authority", "api"),
                ("authorization", &auth),
            ],
            false,
        )
        .unwrap();
    assert_eq!(action, Action::Pause, "held for the identity provider");
    let body = br#"{"run":"report"}"#;
    stream.request_body(&body[..5], false).unwrap();
    stream.request_body(&body[5..], true).unwrap();
    assert!(
        stream.upstream_request().is_none(),
        "nothing before the token"
    );
    let calls = stream.pending_http_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let issued = json!({"access_token": "xchg-1", "token_type": "Bearer", "expires_in": 300,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"});
    plugin
        .respond_http_call(
            calls[0].token,
            &HttpCallResponse::new(200, issued.to_string())
                .header("content-type", "application/json"),
        )
        .unwrap();
    let upstream = stream.upstream_request().expect("released by the answer");
    assert_eq!(upstream.header("authorization"), Some("Bearer xchg-1"));
    assert_eq!(upstream.body, body.to_vec());
    assert!(upstream.complete);
    assert!(!stream.stalled());
    assert_eq!(decision(&stream)["decision"], "allow");
}
