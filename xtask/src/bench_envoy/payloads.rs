//! What the upstreams answer and what the client sends. All PII here is
//! fictitious: reserved example domains, 555 and test-range phone numbers,
//! card-network test numbers, SSNs from unassigned-looking serials.

use serde_json::json;

/// The PII values in the 4 KB answer: 3 e-mails, 3 phones, 2 SSNs, 2 cards.
/// The engine's scanner must find exactly these (checked before the run).
pub const PII_VALUES: [&str; 10] = [
    "jane.doe@example.com",
    "john.smith@example.org",
    "billing-team@example.net",
    "+1 415-555-0132",
    "+44 20 7946 0958",
    "+49 30 901820",
    "536-22-1847",
    "401-63-9025",
    "4111 1111 1111 1111",
    "5555 5555 5555 4444",
];

/// Markers the default `mask` action writes for the types above.
pub const MARKERS: [&str; 4] = ["[EMAIL]", "[PHONE]", "[SSN]", "[CARD]"];

/// The PII values in the SSE answer (the e-mail split across two events).
pub const SSE_PII_VALUES: [&str; 2] = ["jane.doe@example.com", "+1 415-555-0132"];

/// A PII value in the prompt of the request-scrubbing variant.
pub const PROMPT_PII: &str = "jane.doe@example.com";

/// Words without digits or `@`, so filler never looks like PII.
const FILLER: &str = "The customer asked about the renewal terms of the premium plan and \
    wanted to know whether the discount applies to the whole team or only to new seats. ";

/// A small chat-completion answer without PII.
pub fn small_json() -> String {
    json!({
        "id": "chatcmpl-bench", "object": "chat.completion", "model": "bench-llm",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello! How can I help you today?"}}]
    })
    .to_string()
}

/// A ~4 KB JSON answer (customer records) carrying [`PII_VALUES`].
pub fn pii_json() -> String {
    let [e1, e2, e3, p1, p2, p3, s1, s2, c1, c2] = PII_VALUES;
    let records = [
        ("Jane Doe", e1, p1, s1, c1),
        ("John Smith", e2, p2, s2, c2),
        ("Billing Team", e3, p3, "", ""),
    ];
    let mut data = Vec::new();
    for (name, email, phone, ssn, card) in records {
        let mut record = json!({
            "name": name, "email": email, "phone": phone,
            "notes": FILLER.repeat(7),
        });
        if !ssn.is_empty() {
            record["ssn"] = json!(ssn);
            record["card"] = json!(card);
        }
        data.push(record);
    }
    json!({"object": "list", "summary": FILLER.repeat(3), "data": data}).to_string()
}

/// An OpenAI-style chat stream: one event per delta, then `[DONE]`.
fn chat_stream(deltas: &[&str]) -> String {
    let mut out = String::new();
    for (i, delta) in deltas.iter().enumerate() {
        let mut d = json!({"content": delta});
        if i == 0 {
            d["role"] = json!("assistant");
        }
        let chunk = json!({
            "id": "chatcmpl-bench", "object": "chat.completion.chunk", "model": "bench-llm",
            "choices": [{"index": 0, "delta": d, "finish_reason": null}]
        });
        out.push_str(&format!("data: {chunk}\n\n"));
    }
    out.push_str("data: [DONE]\n\n");
    out
}

/// The SSE answer nginx serves: ten events, [`SSE_PII_VALUES`] in them.
pub fn sse_answer() -> String {
    chat_stream(&[
        "",
        "Sure. ",
        "You can reach Jane at jane.d",
        "oe@example.com or call ",
        "+1 415-555-0132 during ",
        "office hours. ",
        "She handles renewals ",
        "and discounts ",
        "for the premium plan.",
        "",
    ])
}

/// The events the streaming upstream sends 1 ms apart (no PII: the first
/// event is plain text, so a filter need not hold it back).
pub fn stream_events() -> Vec<String> {
    let words = FILLER.split_inclusive(' ').cycle().take(20);
    chat_stream(&words.collect::<Vec<_>>())
        .split_inclusive("\n\n")
        .map(str::to_string)
        .collect()
}

/// The JSON-RPC result nginx answers `/mcp` with (no PII).
pub fn mcp_result() -> String {
    json!({"jsonrpc": "2.0", "id": 7, "result": {
        "content": [{"type": "text", "text": "Sunny, 21 degrees, light wind from the west."}],
        "isError": false}})
    .to_string()
}

/// A `tools/call` request for `tool`.
pub fn mcp_call(tool: &str) -> String {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": tool, "arguments": {"city": "Paris", "unit": "celsius"}}})
    .to_string()
}

/// `tools/call` bodies that try to make a filter authorize one tool while
/// the server runs another, with what each tries. Servers that keep the
/// last of duplicate keys (JSON.parse, Python, Go) run the second name.
pub fn mcp_attacks(allowed: &str, forbidden: &str) -> Vec<(&'static str, String)> {
    let call = |params: String| {
        format!(r#"{{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{params}}}"#)
    };
    vec![
        (
            "duplicate name, allowed one first",
            call(format!(r#"{{"name":"{allowed}","name":"{forbidden}"}}"#)),
        ),
        (
            "duplicate name after 9 KB of arguments",
            call(format!(
                r#"{{"name":"{allowed}","arguments":{{"pad":"{}"}},"name":"{forbidden}"}}"#,
                "x".repeat(9000)
            )),
        ),
        (
            "batch: allowed call, then forbidden",
            format!(
                "[{},{}]",
                call(format!(r#"{{"name":"{allowed}"}}"#)),
                call(format!(r#"{{"name":"{forbidden}"}}"#)).replace("\"id\":7", "\"id\":8")
            ),
        ),
    ]
}

/// The chat request every variant is sent.
pub fn chat_request() -> String {
    chat_request_with("Summarise the renewal terms of the premium plan.")
}

/// The request of the request-scrubbing variant: the prompt carries PII.
pub fn pii_request() -> String {
    chat_request_with(&format!(
        "Write to {PROMPT_PII} about the renewal of the premium plan."
    ))
}

fn chat_request_with(content: &str) -> String {
    json!({"model": "bench-llm", "messages": [{"role": "user", "content": content}]}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pii_answer_is_about_four_kilobytes() {
        let len = pii_json().len();
        assert!((3500..=4600).contains(&len), "{len}");
    }

    #[test]
    fn pii_answer_holds_every_value_once() {
        let body = pii_json();
        for v in PII_VALUES {
            assert_eq!(body.matches(v).count(), 1, "{v}");
        }
    }

    #[test]
    fn stream_events_are_sse_events() {
        let events = stream_events();
        assert_eq!(events.len(), 21);
        assert!(events
            .iter()
            .all(|e| e.starts_with("data: ") && e.ends_with("\n\n")));
    }
}
