//! `POST /v1/chat/completions` over real HTTP.

mod support;

use mcp_guard_demo_upstream::{CHAT_REPLY, CHAT_STREAM_FRAGMENTS, DEMO_EMAIL};
use serde_json::Value;
use support::{exchange, post_json, Server};

const PATH: &str = "/v1/chat/completions";

#[tokio::test]
async fn completion_is_openai_shaped_and_echoes_the_model() {
    let server = Server::start().await;
    let reply = post_json(
        server.addr,
        PATH,
        r#"{"model":"demo-7b","messages":[{"role":"user","content":"who do I call?"}],"temperature":0.2}"#,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "demo-7b");
    assert!(body["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("chatcmpl-")));
    assert!(body["created"].as_u64().is_some());
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["message"]["content"], CHAT_REPLY);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 4);
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn stream_sends_one_event_per_chunk_and_splits_the_email() {
    let server = Server::start().await;
    let reply = post_json(
        server.addr,
        PATH,
        r#"{"model":"demo-7b","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    assert_eq!(reply.header("content-length"), None);
    let chunks = reply.chunks.as_ref().expect("chunked body");
    // One fragment per event, a closing event, then [DONE]: each its own chunk.
    assert_eq!(chunks.len(), CHAT_STREAM_FRAGMENTS.len() + 2);

    let mut content = String::new();
    let mut finish_reasons = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let event = std::str::from_utf8(chunk).expect("utf-8 event");
        let data = event
            .strip_prefix("data: ")
            .and_then(|e| e.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("event {i} is not one data line: {event:?}"));
        assert!(!data.contains('\n'), "event {i} has one line");
        if i == chunks.len() - 1 {
            assert_eq!(data, "[DONE]");
            continue;
        }
        let chunk: Value = serde_json::from_str(data).expect("chunk JSON");
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "demo-7b");
        let choice = &chunk["choices"][0];
        if let Some(text) = choice["delta"]["content"].as_str() {
            assert!(
                !text.contains(DEMO_EMAIL),
                "event {i} holds the whole e-mail"
            );
            content.push_str(text);
        }
        if i == 0 {
            assert_eq!(choice["delta"]["role"], "assistant");
        }
        finish_reasons.push(choice["finish_reason"].clone());
    }
    assert_eq!(content, CHAT_REPLY);
    assert_eq!(finish_reasons.last(), Some(&Value::from("stop")));
    assert!(finish_reasons[..finish_reasons.len() - 1]
        .iter()
        .all(Value::is_null));
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn the_email_arrives_split_across_events() {
    let server = Server::start().await;
    let reply = post_json(
        server.addr,
        PATH,
        r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}"#,
    )
    .await;
    let chunks = reply.chunks.expect("chunked body");
    let with = |needle: &str| {
        chunks
            .iter()
            .position(|c| String::from_utf8_lossy(c).contains(needle))
    };
    let first = with("\"jane.d\"").expect("first part");
    let second = with("\"oe@exam\"").expect("second part");
    let third = with("\"ple.com\"").expect("third part");
    assert!(first < second && second < third);
}

#[tokio::test]
async fn malformed_requests_get_400_json() {
    let server = Server::start().await;
    for body in [
        "{not json",
        r#"{"messages":[{"role":"user","content":"hi"}]}"#,
        r#"{"model":"m","messages":[]}"#,
        r#"{"model":"m","messages":"hi"}"#,
    ] {
        let reply = post_json(server.addr, PATH, body).await;
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert!(reply.json()["error"]["message"].is_string(), "{body}");
        assert_eq!(reply.header("x-demo-upstream"), Some("1"));
    }
}

#[tokio::test]
async fn oversized_body_is_refused_before_it_is_sent() {
    let server = Server::start().await;
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        1024 * 1024 + 1
    );
    let reply = exchange(server.addr, head.as_bytes()).await;
    assert_eq!(reply.status, 413);
    assert!(reply.json()["error"]["message"].is_string());
}
