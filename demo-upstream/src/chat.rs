//! `POST /v1/chat/completions`: an OpenAI-compatible endpoint that always
//! answers with [`CHAT_REPLY`], whole or streamed as server-sent events.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::body::{Body, PacedBody};
use crate::content::{CHAT_REPLY, CHAT_STREAM_FRAGMENTS};
use crate::respond;

/// Pause between two streamed events: long enough that each event leaves
/// the server as its own write, short enough to keep tests fast.
pub(crate) const STREAM_GAP: Duration = Duration::from_millis(5);

/// The part of a chat request this server reads. Other fields that OpenAI
/// clients send (temperature, tools, ...) are accepted and ignored.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
    #[serde(default)]
    stream: Option<bool>,
    /// `{"include_usage": true}` adds OpenAI's final usage chunk to a
    /// streamed answer.
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

/// OpenAI's `stream_options`.
#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// One message of the conversation; only used to count prompt "tokens".
#[derive(Debug, Deserialize)]
struct Message {
    #[allow(dead_code)] // required by the format, not needed for the answer
    role: String,
    #[serde(default)]
    content: Value,
}

/// Numbers completion ids so that each answer has a distinct one.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Answers a chat completion request given its raw body.
pub(crate) fn respond(body: &[u8]) -> Response<Body> {
    let request: ChatRequest = match serde_json::from_slice(body) {
        Ok(request) => request,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid request: {e}")),
    };
    if request.messages.is_empty() {
        return error(StatusCode::BAD_REQUEST, "messages must not be empty");
    }
    let id = format!("chatcmpl-demo-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if request.stream.unwrap_or(false) {
        let include_usage = request
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
        let usage = include_usage.then(|| usage(&request));
        stream(&id, created, &request.model, usage)
    } else {
        completion(&id, created, &request)
    }
}

/// An OpenAI-shaped error response.
pub(crate) fn error(status: StatusCode, message: &str) -> Response<Body> {
    respond::json(
        status,
        &json!({
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": null,
                "code": null,
            }
        }),
    )
}

/// The non-streamed answer: one `chat.completion` object.
/// The `usage` object of an answer: prompt words and reply words.
fn usage(request: &ChatRequest) -> Value {
    let prompt_tokens: usize = request.messages.iter().map(|m| words(&m.content)).sum();
    let completion_tokens = CHAT_REPLY.split_whitespace().count();
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

fn completion(id: &str, created: u64, request: &ChatRequest) -> Response<Body> {
    respond::json(
        StatusCode::OK,
        &json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": request.model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": CHAT_REPLY },
                "logprobs": null,
                "finish_reason": "stop",
            }],
            "usage": usage(request),
        }),
    )
}

/// The streamed answer: one event per fragment, a closing event with the
/// finish reason, the usage chunk when asked for (empty `choices`, as
/// OpenAI sends it), then `[DONE]`; each event is its own body frame.
fn stream(id: &str, created: u64, model: &str, usage: Option<Value>) -> Response<Body> {
    let chunk = |delta: Value, finish_reason: Value| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish_reason,
            }],
        })
    };
    let mut events: Vec<Bytes> = CHAT_STREAM_FRAGMENTS
        .iter()
        .enumerate()
        .map(|(i, fragment)| {
            let delta = if i == 0 {
                json!({ "role": "assistant", "content": fragment })
            } else {
                json!({ "content": fragment })
            };
            sse_event(&chunk(delta, Value::Null))
        })
        .collect();
    events.push(sse_event(&chunk(json!({}), json!("stop"))));
    if let Some(usage) = usage {
        events.push(sse_event(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        })));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));

    let mut response = Response::new(PacedBody::new(events, STREAM_GAP).boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One server-sent event carrying `value` as its data line.
fn sse_event(value: &Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

/// A rough prompt size: whitespace-separated words of the text content,
/// whether given as a string or as an array of `{"type":"text"}` parts.
fn words(content: &Value) -> usize {
    match content {
        Value::String(s) => s.split_whitespace().count(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .map(|s| s.split_whitespace().count())
            .sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_words_in_strings_and_parts() {
        assert_eq!(words(&json!("a b  c")), 3);
        assert_eq!(
            words(&json!([{"type": "text", "text": "a b"}, {"type": "image_url"}])),
            2
        );
        assert_eq!(words(&Value::Null), 0);
    }

    #[test]
    fn rejects_missing_model_and_empty_messages() {
        assert_eq!(
            respond(br#"{"messages":[]}"#).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            respond(br#"{"model":"m","messages":[]}"#).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(respond(b"{").status(), StatusCode::BAD_REQUEST);
    }
}
