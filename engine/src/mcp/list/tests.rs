use super::*;
use serde_json::json;

fn only_a(kind: TargetKind, name: &str) -> bool {
    kind == TargetKind::Tool && name == "a"
}

fn filtered(body: &str) -> Result<Option<(Value, usize)>, &'static str> {
    filter_list_answers(body.as_bytes(), only_a)
        .map(|o| o.map(|(b, n)| (serde_json::from_slice(&b).unwrap(), n)))
        .map_err(|e| e.code())
}

#[test]
fn list_answers_keep_only_allowed_entries() {
    let body =
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"},{"nameless":1}]}}"#;
    let (v, removed) = filtered(body).unwrap().unwrap();
    assert_eq!(removed, 2);
    assert_eq!(v["result"]["tools"], json!([{"name": "a"}]));
    let (_, removed) = filter_list_answers(body.as_bytes(), |_, _| true)
        .unwrap()
        .unwrap();
    assert_eq!(removed, 1, "an entry without a name cannot be allowed");
    assert_eq!(
        filtered(r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}"#),
        Ok(None)
    );
}

#[test]
fn lists_are_found_whatever_the_id() {
    for id in ["1", "1.0", "\"1\"", "null", "{}"] {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":{id},"result":{{"tools":[{{"name":"a"}},{{"name":"b"}}]}}}}"#
        );
        let (_, removed) = filtered(&body).unwrap().unwrap();
        assert_eq!(removed, 1, "{id}");
    }
    let batch = r#"[{"jsonrpc":"2.0","id":1,"result":{"content":[]}},{"jsonrpc":"2.0","id":7,"result":{"prompts":[{"name":"a"}],"resources":[{"uri":"a"}]}}]"#;
    let (v, removed) = filtered(batch).unwrap().unwrap();
    assert_eq!(removed, 2);
    assert_eq!(v[1]["result"]["prompts"], json!([]));
    assert_eq!(v[0]["result"]["content"], json!([]));
}

#[test]
fn case_variants_are_filtered_too() {
    let (v, removed) = filtered(
        r#"{"jsonrpc":"2.0","id":1,"Result":{"Tools":[{"name":"a"},{"name":"b"}],"tools":[{"name":"c"}]}}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(removed, 2);
    assert_eq!(v["Result"]["Tools"], json!([{"name": "a"}]));
    assert_eq!(v["Result"]["tools"], json!([]));
    let (v, removed) = filtered(
        r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","Name":"secret"},{"Name":"a"}]}}"#,
    )
    .unwrap()
    .unwrap();
    assert_eq!(removed, 2, "an entry with an ambiguous name is removed");
    assert_eq!(v["result"]["tools"], json!([]));
}

#[test]
fn unfilterable_answers_are_errors() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]},"result":{"tools":[{"name":"b"}]}}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[],"tools":[{"name":"b"}]}}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a","name":"b"}]}}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}} {"x":1}"#,
            "trailing_data",
        ),
        (
            "\u{FEFF}{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[]}}",
            "bom",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"tools":{"name":"b"}}}"#,
            "not_a_list",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"result":{"Tools":"b"}}"#,
            "not_a_list",
        ),
        ("\"tools\"", "not_answer"),
        ("event: message\ndata: {}", "not_json"),
    ];
    for (body, want) in cases {
        assert_eq!(filtered(body).map(|_| ()), Err(*want), "{body}");
    }
}

#[test]
fn answers_without_lists_pass_unchanged() {
    for body in [
        "",
        "  \n",
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-1,"message":"no"}}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":"tools"}"#,
        r#"{"jsonrpc":"2.0","id":1,"result":{"capabilities":{"tools":{}}}}"#,
        r#"[1,{"jsonrpc":"2.0","id":1,"result":{}}]"#,
    ] {
        assert_eq!(filtered(body), Ok(None), "{body}");
    }
}
