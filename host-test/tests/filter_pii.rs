//! PII scrubbing through the real `.wasm`: buffered JSON and text, SSE
//! streams split at every byte, actions (partial, block), exemptions,
//! limits and request scrubbing.

use mcp_guard_host_test::{Host, Plugin, Stream};
use serde_json::{json, Value};

fn plugin_with(pii: Value) -> Plugin {
    let bundle = json!({
        "name": "pii", "version": 1,
        "rules": [{"id": "all", "effect": "allow"}],
        "pii": pii
    });
    Host::from_env()
        .unwrap_or_else(|e| panic!("{e}"))
        .plugin(json!({ "bundle": bundle, "headers_stop_iteration": true }).to_string())
        .expect("filter starts")
}

fn allowed_stream(plugin: &Plugin, claims: Value) -> Stream {
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", claims);
    stream
        .request_headers(
            &[
                (":method", "GET"),
                (":path", "/v1/x"),
                (":authority", "h"),
                ("x-request-id", "rid-1"),
            ],
            true,
        )
        .unwrap();
    assert!(stream.local_reply().is_none());
    stream
}

fn respond(stream: &Stream, content_type: &str, chunks: &[&[u8]]) {
    stream
        .response_headers(&[(":status", "200"), ("content-type", content_type)], false)
        .unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        stream.response_body(chunk, i + 1 == chunks.len()).unwrap();
    }
}

fn decision(stream: &Stream) -> Value {
    serde_json::from_str(&stream.filter_state()["wasm.mcp_decision"]).unwrap()
}

const RECORD: &str = r#"{"customer":{"name":"Jane Doe","email":"jane\u0040example.com","phone":"+1 415-555-0132",
"card":"4111 1111 1111 1111","iban":"DE89 3704 0044 0532 0130 00","note":"key AKIAIOSFODNN7EXAMPLE"},
"order":1700000000123,"id":"7c9e6679-7425-40de-944b-e07fc1f90ae7","version":"1.2.3"}"#;

#[test]
fn json_answers_are_scrubbed_in_string_values_and_stay_valid() {
    let plugin = plugin_with(json!({"actions": {"card": "partial"}}));
    let stream = allowed_stream(&plugin, json!({"sub": "alice"}));
    let (a, b) = RECORD.as_bytes().split_at(57);
    respond(&stream, "application/json", &[a, b]);
    let text = stream.client_response().unwrap().body_text();
    let v: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("invalid JSON {e}: {text}"));
    let c = &v["customer"];
    assert_eq!(c["email"], "[EMAIL]", "escaped @ is caught");
    assert_eq!(c["phone"], "[PHONE]");
    assert_eq!(c["card"], "[CARD ****1111]");
    assert_eq!(c["iban"], "[IBAN]");
    assert_eq!(c["note"], "key [AWS_KEY]");
    assert_eq!(c["name"], "Jane Doe");
    assert_eq!(v["order"], 1_700_000_000_123u64, "numbers untouched");
    assert_eq!(
        v["id"], "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "UUIDs survive"
    );
    assert_eq!(v["version"], "1.2.3");
    let d = decision(&stream);
    assert_eq!(
        d["redactions"],
        json!({"email": 1, "phone": 1, "card": 1, "iban": 1, "aws_key": 1})
    );
    let m = plugin.metrics();
    assert_eq!(
        (
            m.iter()
                .filter(|(k, _)| k.starts_with("mcp_redactions_total.type="))
                .map(|(_, v)| v)
                .sum::<u64>(),
            m["mcp_redactions_total.type=card"],
            m["mcp_redactions_total.type=email"]
        ),
        (5, 1, 1)
    );
}

fn sse_event(content: &str) -> String {
    let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]});
    format!("data: {chunk}\n\n")
}

fn sse_stream(fragments: &[&str]) -> String {
    let mut s: String = fragments.iter().map(|f| sse_event(f)).collect();
    s.push_str("data: [DONE]\n\n");
    s
}

/// The concatenated `delta.content` of every event the client got.
fn joined_deltas(body: &str) -> String {
    body.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            let v: Value =
                serde_json::from_str(d).unwrap_or_else(|e| panic!("event is not JSON ({e}): {d}"));
            v["choices"][0]["delta"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn streamed_answers_catch_values_split_across_events_at_every_byte() {
    let fragments = [
        "Contact Jane at jane.d",
        "oe@exam",
        "ple.com or +1 415-",
        "555-0132 today.",
    ];
    let body = sse_stream(&fragments);
    let plugin = plugin_with(json!({}));
    for cut in 1..body.len() {
        let stream = allowed_stream(&plugin, json!({"sub": "alice"}));
        respond(
            &stream,
            "text/event-stream",
            &[&body.as_bytes()[..cut], &body.as_bytes()[cut..]],
        );
        let out = stream.client_response().unwrap().body_text();
        assert!(out.ends_with("data: [DONE]\n\n"), "cut {cut}: {out}");
        assert_eq!(
            joined_deltas(&out),
            "Contact Jane at [EMAIL] or [PHONE] today.",
            "cut {cut}"
        );
        stream.finish().unwrap();
    }
}

#[test]
fn events_keep_flowing_while_the_stream_is_scrubbed() {
    let plugin = plugin_with(json!({}));
    let stream = allowed_stream(&plugin, json!({"sub": "alice"}));
    stream
        .response_headers(
            &[(":status", "200"), ("content-type", "text/event-stream")],
            false,
        )
        .unwrap();
    let words: Vec<String> = (0..40).map(|i| format!("word{i} ")).collect();
    let mut max_lag = 0;
    for (i, w) in words.iter().enumerate() {
        stream
            .response_body(sse_event(w).as_bytes(), false)
            .unwrap();
        let delivered = joined_deltas(&stream.client_response().unwrap().body_text());
        let sent: String = words[..=i].concat();
        max_lag = max_lag.max(sent.len() - delivered.len());
    }
    stream.response_body(b"data: [DONE]\n\n", true).unwrap();
    assert_eq!(
        joined_deltas(&stream.client_response().unwrap().body_text()),
        words.concat()
    );
    assert!(
        max_lag <= 96,
        "hold-back must stay bounded: {max_lag} bytes of text held"
    );
    println!("max SSE hold-back: {max_lag} bytes of delta text");
}

#[test]
fn a_blocking_type_refuses_buffered_answers_with_502() {
    let plugin = plugin_with(json!({"actions": {"private_key": "block"}}));
    let stream = allowed_stream(&plugin, json!({"sub": "alice"}));
    let leak = r#"{"config":"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"}"#;
    respond(&stream, "application/json", &[leak.as_bytes()]);
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 502);
    let body: Value = serde_json::from_str(&response.body_text()).unwrap();
    assert_eq!(
        body,
        json!({"error": "blocked", "reason": "pii_blocked", "request_id": "rid-1"})
    );
    assert_eq!(decision(&stream)["scrub"], "pii_blocked");
}

#[test]
fn a_blocking_type_ends_a_stream_with_an_explicit_error_event() {
    let plugin = plugin_with(json!({"actions": {"card": "block"}}));
    let stream = allowed_stream(&plugin, json!({"sub": "alice"}));
    let body = sse_stream(&[
        "Your card is 4111 1111 ",
        "1111 1111, thanks",
        " and more text after it",
    ]);
    let third = body.len() / 3;
    respond(
        &stream,
        "text/event-stream",
        &[
            &body.as_bytes()[..third],
            &body.as_bytes()[third..2 * third],
            &body.as_bytes()[2 * third..],
        ],
    );
    let out = stream.client_response().unwrap().body_text();
    assert!(!out.contains("4111"), "{out}");
    let error = out
        .split("\n\n")
        .find(|e| e.starts_with("event: error"))
        .expect("an error event");
    assert!(error.contains("\"reason\":\"pii_blocked\""), "{error}");
    assert!(
        out.trim_end().ends_with('}'),
        "nothing follows the error event: {out}"
    );
    assert!(!out.contains("more text"), "{out}");
}

#[test]
fn exempt_callers_see_raw_data_and_it_is_recorded() {
    let plugin = plugin_with(json!({"exempt": [{"claim": "roles", "contains_any": ["auditor"]}]}));
    let auditor = allowed_stream(&plugin, json!({"sub": "ann", "roles": ["auditor"]}));
    respond(
        &auditor,
        "application/json",
        &[br#"{"m":"jane@example.com"}"#],
    );
    assert_eq!(
        auditor.client_response().unwrap().body_text(),
        r#"{"m":"jane@example.com"}"#
    );
    assert_eq!(decision(&auditor)["scrub"], "exempt");
    let user = allowed_stream(&plugin, json!({"sub": "bob", "roles": ["user"]}));
    respond(&user, "application/json", &[br#"{"m":"jane@example.com"}"#]);
    assert_eq!(
        user.client_response().unwrap().body_text(),
        r#"{"m":"[EMAIL]"}"#
    );
}

#[test]
fn oversize_answers_are_refused_or_streamed_as_configured() {
    let big = format!(
        "{{\"text\":\"{} jane@example.com\"}}",
        "lorem ipsum ".repeat(200)
    );
    let (a, b) = big.as_bytes().split_at(big.len() / 2);

    let refusing = plugin_with(json!({"max_body_bytes": 1024}));
    let stream = allowed_stream(&refusing, json!({"sub": "a"}));
    respond(&stream, "application/json", &[a, b]);
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 502);
    assert!(response.body_text().contains("response_too_large"));
    assert!(!response.body_text().contains("lorem"));

    let streaming = plugin_with(json!({"max_body_bytes": 1024, "on_overflow": "stream"}));
    let stream = allowed_stream(&streaming, json!({"sub": "a"}));
    respond(&stream, "application/json", &[a, b]);
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 200);
    let v: Value = serde_json::from_str(&response.body_text()).unwrap();
    assert!(v["text"].as_str().unwrap().ends_with(" [EMAIL]"));
    assert_eq!(decision(&stream)["scrub"], "over_limit_streamed");
}

#[test]
fn prompts_are_scrubbed_before_the_model_sees_them_when_asked() {
    let plugin = plugin_with(json!({"scrub_requests": true}));
    let stream = plugin.stream().unwrap();
    stream.set_jwt_payload("jwt_payload", json!({"sub": "alice"}));
    let prompt = br#"{"messages":[{"role":"user","content":"my SSN is 123-45-6789, mail me at a.b@example.org"}]}"#;
    stream
        .request_headers(
            &[
                (":method", "POST"),
                (":path", "/v1/chat"),
                (":authority", "h"),
                ("content-type", "application/json"),
            ],
            false,
        )
        .unwrap();
    stream.request_body(prompt, true).unwrap();
    let upstream = stream.upstream_request().expect("forwarded");
    let v: Value = serde_json::from_slice(&upstream.body).unwrap();
    assert_eq!(
        v["messages"][0]["content"],
        "my SSN is [SSN], mail me at [EMAIL]"
    );
}

#[test]
fn binary_and_unscrubbed_answers_pass_untouched() {
    let plugin = plugin_with(json!({"enabled": false}));
    let stream = allowed_stream(&plugin, json!({"sub": "a"}));
    respond(
        &stream,
        "application/json",
        &[br#"{"m":"jane@example.com"}"#],
    );
    assert_eq!(
        stream.client_response().unwrap().body_text(),
        r#"{"m":"jane@example.com"}"#
    );
    // A generic type is sniffed: text in it is scanned, binary refused
    // unless the bundle lists the type as safe.
    let plugin = plugin_with(json!({}));
    let stream = allowed_stream(&plugin, json!({"sub": "a"}));
    respond(&stream, "application/octet-stream", &[b"jane@example.com"]);
    assert_eq!(stream.client_response().unwrap().body_text(), "[EMAIL]");
    let stream = allowed_stream(&plugin, json!({"sub": "a"}));
    let utf16: Vec<u8> = "jane@example.com"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    respond(&stream, "application/octet-stream", &[&utf16]);
    let response = stream.client_response().unwrap();
    assert_eq!(response.status, 502);
    assert!(response.body_text().contains("unscannable_content"));
    let stream = allowed_stream(&plugin, json!({"sub": "a"}));
    respond(&stream, "image/png", &[b"\x89PNG jane@example.com"]);
    assert_eq!(stream.client_response().unwrap().status, 502);
    let plugin = plugin_with(json!({"safe_content_types": ["image/png"]}));
    let stream = allowed_stream(&plugin, json!({"sub": "a"}));
    respond(&stream, "image/png", &[b"\x89PNG jane@example.com"]);
    assert_eq!(
        stream.client_response().unwrap().body_text(),
        "\u{fffd}PNG jane@example.com"
    );
}

/// The module finds keywords and trigger bytes with wasm SIMD, sixteen
/// positions per step: every keyword-started value, at every offset
/// against the step, in one text and in JSON, comes out exactly as the
/// native engine scrubs it.
#[test]
fn wasm_vector_search_matches_the_native_engine_at_every_alignment() {
    use mcp_guard_engine::pii::{PiiConfig, Scanner};
    let values = [
        "AKIAIOSFODNN7EXAMPLE",
        "aws secret = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "ghp_1234567890abcdefghijABCDEFGHIJ123456",
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "AIzaSyA1234567890abcdefghijklmnopqrstuv",
        "Bearer abcdefghijklmnopqrstuvwxyz0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----",
        "mail jane@example.com or call +44 20 7946 0958",
    ];
    let scanner = Scanner::new(&PiiConfig::default()).unwrap();
    let plugin = plugin_with(json!({}));
    let mut text = String::new();
    for pad in 0..20 {
        for v in values {
            text.push_str(&"lorem ipsum dolor ".repeat(2)[..pad]);
            text.push(' ');
            text.push_str(v);
            text.push_str(" and so on.\n");
        }
    }
    let mut want = Vec::new();
    scanner.scrub_text(text.as_bytes(), &mut want);
    let scrubbed = String::from_utf8_lossy(&want).into_owned();
    for secret in [
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_1234",
        "sk_live_",
        "BEGIN PRIVATE",
        "jane@",
    ] {
        assert!(!scrubbed.contains(secret), "{secret} left in {scrubbed}");
    }
    let stream = allowed_stream(&plugin, json!({"sub": "alice"}));
    respond(&stream, "text/plain", &[text.as_bytes()]);
    assert!(
        stream.client_response().unwrap().body == want,
        "text differs"
    );

    let json = serde_json::to_string(&text.lines().collect::<Vec<_>>()).unwrap();
    scanner.scrub_json(json.as_bytes(), &mut want);
    let stream = allowed_stream(&plugin, json!({"sub": "alice"}));
    respond(&stream, "application/json", &[json.as_bytes()]);
    assert!(
        stream.client_response().unwrap().body == want,
        "JSON differs"
    );
}
