//! The real `mcp_guard.wasm` under the host harness: decisions, replies,
//! scrubbing and bundle updates, each as a user of the filter sees them.

use mcp_guard_host_test::{Action, Host, HttpCallResponse, Plugin, Stream};
use serde_json::{json, Value};

const DEMO_BUNDLE: &str = include_str!("../../policies/demo.json");

fn demo_plugin() -> Plugin {
    let bundle: Value = serde_json::from_str(DEMO_BUNDLE).unwrap();
    Host::from_env()
        .unwrap_or_else(|e| panic!("{e}"))
        .plugin(json!({ "bundle": bundle, "headers_stop_iteration": true }).to_string())
        .expect("filter starts")
}

fn chat_request(stream: &Stream, extra: &[(&str, &str)]) -> Action {
    let mut headers = vec![
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "model.local"),
        ("content-type", "application/json"),
        ("x-request-id", "req-42"),
    ];
    headers.extend_from_slice(extra);
    let at_headers = stream.request_headers(&headers, false).unwrap();
    let at_body = stream.request_body(CHAT_BODY, true).unwrap();
    // The demo bundle has model rules, so the decision waits for the body.
    assert_eq!(at_headers, Action::Pause, "waits for the body");
    at_body
}

const CHAT_BODY: &[u8] = br#"{"model":"demo-llm","messages":[{"role":"user","content":"hi"}]}"#;

fn decision(stream: &Stream) -> Value {
    serde_json::from_str(&stream.filter_state()["wasm.mcp_decision"]).unwrap()
}

#[test]
fn allowed_claims_pass_and_the_email_in_the_answer_is_scrubbed() {
    let plugin = demo_plugin();
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload(
        "jwt_payload",
        json!({"sub": "alice", "roles": ["viewer", "model-user"], "exp": 1.9e9}),
    );
    assert_eq!(
        chat_request(&stream, &[("accept-encoding", "gzip, br")]),
        Action::Continue
    );
    let upstream = stream.upstream_request().expect("reached upstream");
    assert!(upstream.headers.iter().all(|(k, _)| k != "accept-encoding"));

    let answer = br#"{"choices":[{"message":{"content":"Mail jane.doe@example.com now"}}]}"#;
    let length = answer.len().to_string();
    stream
        .response_headers(
            &[
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-length", &length),
            ],
            false,
        )
        .unwrap();
    stream.response_body(&answer[..30], false).unwrap();
    stream.response_body(&answer[30..], true).unwrap();
    let response = stream.client_response().unwrap();
    let body: Value = serde_json::from_str(&response.body_text()).expect("valid JSON");
    assert_eq!(body["choices"][0]["message"]["content"], "Mail [EMAIL] now");
    assert!(response.headers.iter().all(|(k, _)| k != "content-length"));
    let d = decision(&stream);
    assert_eq!(d["decision"], "allow");
    assert_eq!(d["sub"], "alice");
    assert_eq!(d["redactions"]["email"], 1);
    stream.finish().unwrap();
    assert_eq!(plugin.metrics()["mcp_redactions_total.type=email"], 1);
    assert_eq!(
        plugin.metrics()["mcp_decisions_total.outcome=allow.reason=rule_allow"],
        1
    );
}

#[test]
fn forbidden_claims_get_a_403_local_reply_with_details() {
    let plugin = demo_plugin();
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload(
        "jwt_payload",
        json!({"sub": "mallory", "roles": ["viewer"]}),
    );
    chat_request(&stream, &[]);
    let reply = stream.local_reply().expect("answered locally");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.details, "mcp_default_deny");
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        body,
        json!({"error": "forbidden", "reason": "default_deny", "rule": "default_deny", "request_id": "req-42"})
    );
    assert!(stream.upstream_request().is_none());
    assert_eq!(decision(&stream)["sub"], "mallory");
    assert_eq!(
        plugin.metrics()["mcp_decisions_total.outcome=deny.reason=default_deny"],
        1
    );
}

#[test]
fn a_matching_deny_rule_wins_and_is_named() {
    let plugin = demo_plugin();
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload(
        "jwt_payload",
        json!({"sub": "eve", "roles": ["model-user"], "suspended": true}),
    );
    chat_request(&stream, &[]);
    let reply = stream.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (403, "mcp_rule_deny")
    );
    assert_eq!(decision(&stream)["rule"], "deny-suspended");
}

#[test]
fn missing_claims_get_401_with_a_bearer_challenge() {
    let plugin = demo_plugin();
    let stream = plugin.stream().unwrap();
    chat_request(&stream, &[]);
    let reply = stream.local_reply().unwrap();
    assert_eq!(reply.status, 401);
    assert_eq!(reply.details, "mcp_missing_token");
    assert!(reply.headers.contains(&(
        "www-authenticate".into(),
        "Bearer realm=\"mcp-guard\"".into()
    )));
    let body: Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(body["reason"], "missing_token");
    assert_eq!(
        plugin.metrics()["mcp_decisions_total.outcome=deny.reason=missing_token"],
        1
    );
}

#[test]
fn unreadable_claims_are_invalid_token_never_allowed() {
    let plugin = demo_plugin();
    let stream = plugin.stream().unwrap();
    stream.set_property(&["metadata"], b"\xff\xff\xff\xffnot protobuf");
    chat_request(&stream, &[]);
    let reply = stream.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (401, "mcp_invalid_token")
    );
    assert!(reply
        .headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v.contains("invalid_token")));
    assert!(
        plugin.failure().is_none(),
        "the VM survives hostile metadata"
    );
}

#[test]
fn a_client_cannot_forge_identity_with_headers() {
    let plugin = demo_plugin();
    let stream = plugin.stream().unwrap();
    let forged = r#"{"sub":"alice","roles":["model-user"]}"#;
    chat_request(
        &stream,
        &[("x-jwt-payload", forged), ("x-mcp-subject", "alice")],
    );
    assert_eq!(stream.local_reply().unwrap().status, 401);
}

#[test]
fn without_any_bundle_requests_fail_closed_with_503() {
    let plugin = Host::from_env()
        .unwrap()
        .plugin("")
        .expect("empty config is valid");
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload(
        "jwt_payload",
        json!({"sub": "alice", "roles": ["model-user"]}),
    );
    chat_request(&stream, &[]);
    let reply = stream.local_reply().unwrap();
    assert_eq!(
        (reply.status, reply.details.as_str()),
        (503, "mcp_no_policy")
    );
    assert!(decision(&stream)["policy"].is_null());
}

#[test]
fn an_invalid_plugin_configuration_is_refused() {
    let host = Host::from_env().unwrap();
    assert!(host.plugin(r#"{"bundel": {}}"#).is_err(), "unknown field");
    assert!(host
        .plugin(
            r#"{"bundle": {"name": "x", "version": 1, "rules": [{"id": "", "effect": "allow"}]}}"#
        )
        .is_err());
}

#[test]
fn a_bad_fetched_bundle_is_rejected_and_the_last_good_one_stays() {
    let plugin = Host::from_env()
        .unwrap()
        .plugin(
            json!({"bundle": serde_json::from_str::<Value>(DEMO_BUNDLE).unwrap(),
                       "headers_stop_iteration": true,
                       "control": {"cluster": "control", "bundle": "demo", "allow_unsigned": true}})
            .to_string(),
        )
        .unwrap();
    plugin.tick().unwrap();
    let call = plugin.pending_http_calls().remove(0);
    assert_eq!(call.header(":path"), Some("/v1/bundles/demo"));
    let bad = r#"{"name":"demo","version":2,"rules":[{"id":"all","effect":"allow","when":{"claims":[{"claim":"x","looks_like":1}]}}]}"#;
    plugin
        .respond_http_call(call.token, &HttpCallResponse::new(200, bad))
        .unwrap();
    assert_eq!(
        plugin.metrics()["mcp_bundle_fetches_total.result=rejected"],
        1
    );
    assert!(
        plugin
            .logs()
            .iter()
            .any(|l| l.message.contains("looks_like")),
        "the reason is logged"
    );

    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", json!({"sub": "mallory"}));
    chat_request(&stream, &[]);
    assert_eq!(
        stream.local_reply().unwrap().status,
        403,
        "v1 still enforced"
    );
    assert_eq!(decision(&stream)["version"], 1);

    plugin.advance(std::time::Duration::from_secs(10)).unwrap();
    plugin.tick().unwrap();
    let call = plugin.pending_http_calls().remove(0);
    plugin.fail_http_call(call.token).unwrap();
    assert_eq!(plugin.metrics()["mcp_bundle_fetches_total.result=error"], 1);
    assert_eq!(plugin.metrics()["mcp_policy_info.name=demo.version=1"], 1);
}

#[test]
fn a_newer_fetched_bundle_takes_over_for_new_requests() {
    let plugin = Host::from_env()
        .unwrap()
        .plugin(
            json!({"headers_stop_iteration": true,
                   "control": {"cluster": "control", "bundle": "demo", "allow_unsigned": true}})
            .to_string(),
        )
        .unwrap();
    plugin.tick().unwrap();
    let call = plugin.pending_http_calls().remove(0);
    let answer = HttpCallResponse::new(200, DEMO_BUNDLE).header("etag", "\"e1\"");
    plugin.respond_http_call(call.token, &answer).unwrap();
    assert_eq!(plugin.metrics()["mcp_policy_info.name=demo.version=1"], 1);
    assert_eq!(plugin.metrics()["mcp_bundle_fetches_total.result=ok"], 1);

    let v2 = DEMO_BUNDLE
        .replace("\"version\": 1", "\"version\": 2")
        .replace("model-user", "llm-user");
    plugin.advance(std::time::Duration::from_secs(10)).unwrap();
    plugin.tick().unwrap();
    let call = plugin.pending_http_calls().remove(0);
    assert_eq!(call.header("if-none-match"), Some("\"e1\""));
    plugin
        .respond_http_call(call.token, &HttpCallResponse::new(200, v2))
        .unwrap();
    assert_eq!(plugin.metrics()["mcp_policy_info.name=demo.version=2"], 1);
    assert_eq!(plugin.metrics()["mcp_policy_info.name=demo.version=1"], 0);
    assert_eq!(plugin.metrics()["mcp_bundle_fetches_total.result=ok"], 2);

    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload(
        "jwt_payload",
        json!({"sub": "alice", "roles": ["model-user"]}),
    );
    chat_request(&stream, &[]);
    assert_eq!(
        stream.local_reply().unwrap().status,
        403,
        "v2 renamed the role"
    );
    assert_eq!(decision(&stream)["version"], 2);
}

#[test]
fn compressed_answers_are_refused_by_default_never_passed_silently() {
    let plugin = demo_plugin();
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload(
        "jwt_payload",
        json!({"sub": "alice", "roles": ["model-user"]}),
    );
    chat_request(&stream, &[]);
    stream
        .response_headers(
            &[
                (":status", "200"),
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
            ],
            false,
        )
        .unwrap();
    let _ = stream.response_body(b"\x1f\x8b binary", true);
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 502);
    assert!(
        !response.body_text().contains('\u{8b}'),
        "compressed bytes never reach the client"
    );
    let body: Value = serde_json::from_str(&response.body_text()).unwrap();
    assert_eq!(body["reason"], "compressed_response");
    assert_eq!(decision(&stream)["scrub"], "compressed_blocked");
    assert_eq!(plugin.metrics()["mcp_pii_blocked_total"], 1);
}

/// Every bundle version is a new `mcp_policy_info` series; more updates
/// than the per-VM series limit (512) must still publish the active
/// version, and a bundle name made to forge labels stays one label.
#[test]
fn policy_info_follows_hundreds_of_bundle_updates() {
    let plugin = Host::from_env()
        .unwrap()
        .plugin(
            json!({"control": {"cluster": "control", "bundle": "Team.A=x", "allow_unsigned": true}})
                .to_string(),
        )
        .unwrap();
    let renamed = DEMO_BUNDLE.replace("\"name\": \"demo\"", "\"name\": \"Team.A=x\"");
    assert_ne!(renamed, DEMO_BUNDLE);
    const VERSIONS: u64 = 600;
    for version in 1..=VERSIONS {
        plugin.advance(std::time::Duration::from_secs(10)).unwrap();
        plugin.tick().unwrap();
        let call = plugin.pending_http_calls().remove(0);
        let body = renamed.replace("\"version\": 1", &format!("\"version\": {version}"));
        plugin
            .respond_http_call(call.token, &HttpCallResponse::new(200, body))
            .unwrap();
    }
    let metrics = plugin.metrics();
    let info: Vec<_> = metrics
        .iter()
        .filter(|(k, v)| k.starts_with("mcp_policy_info.") && **v == 1)
        .collect();
    assert_eq!(
        info,
        vec![(
            &format!("mcp_policy_info.name=team_a_x.version={VERSIONS}"),
            &1
        )]
    );
    assert_eq!(
        metrics["mcp_bundle_fetches_total.result=ok"], VERSIONS,
        "every activation counted"
    );
}
