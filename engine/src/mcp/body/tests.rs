use super::*;
use serde_json::json;

fn code(body: &str) -> &'static str {
    match read_body(body.as_bytes()) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn reads_model_and_single_calls() {
    let a = read_body(br#"{"model":"gpt-4o","messages":[]}"#).unwrap();
    assert_eq!(a.model.as_deref(), Some("gpt-4o"));
    assert!(a.mcp.is_empty());
    let a =
        read_body(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"search"}}"#)
            .unwrap();
    assert_eq!(
        a.mcp,
        vec![McpCall {
            method: "tools/call".into(),
            target: Some("search".into()),
            id: Some(json!(7)),
            arguments: CallArguments::Absent,
        }]
    );
    let a = read_body(
        br#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a"}}"#,
    )
    .unwrap();
    assert_eq!(a.mcp[0].target.as_deref(), Some("file:///a"));
    let a = read_body(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
    assert_eq!(a.mcp, vec![McpCall::new("notifications/initialized")]);
}

#[test]
fn reads_batches_and_rejects_bad_ones() {
    let a = read_body(br#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}]"#).unwrap();
    assert!(a.batch);
    assert_eq!(a.mcp.len(), 2);
    assert_eq!(read_body(b"[]"), Err(BodyError::BadBatch));
    assert_eq!(read_body(b"[1]"), Err(BodyError::BadBatch));
    assert_eq!(code("{nope"), "not_json");
}

#[test]
fn empty_bodies_and_scalars_carry_nothing() {
    assert_eq!(read_body(b""), Ok(BodyAttrs::default()));
    assert_eq!(read_body(b"\"tools/call\""), Ok(BodyAttrs::default()));
    assert_eq!(read_body(b"null"), Ok(BodyAttrs::default()));
    assert_eq!(code(" "), "not_json", "whitespace is not one JSON value");
}

#[test]
fn calls_only_nested_somewhere_are_not_calls() {
    let a = read_body(
        br#"{"jsonrpc":"2.0","id":1,"result":{"method":"tools/call","params":{"name":"x"}}}"#,
    )
    .unwrap();
    assert!(a.mcp.is_empty());
    let a = read_body(br#"{"x":{"jsonrpc":"2.0","method":"tools/call"}}"#).unwrap();
    assert!(a.mcp.is_empty());
}

/// Every body an upstream could read as another call than the policy
/// does, with the code the refusal names.
#[test]
fn differential_bodies_are_refused() {
    let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}"#;
    assert_eq!(code(call), "ok");
    let nested = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"x","arguments":{}0{}}}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    let utf16: String = call
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .map(char::from)
        .collect();
    let cases: &[(&str, &str)] = &[
        // Encodings and lexical tricks.
        (&format!("\u{FEFF}{call}"), "bom"),
        (&nested, "too_deep"),
        (&format!("{call} "), "ok"),
        (&format!("{call}\n{call}"), "trailing_data"),
        (&format!("{call}garbage"), "trailing_data"),
        (&format!("[{call}]]"), "trailing_data"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":NaN}}}"#,
            "non_finite_number",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"\ud800"}}"#,
            "lone_surrogate",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search",}}"#,
            "not_json",
        ),
        // Duplicate members, at any depth, after unescaping.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"search"}}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete","name":"search"}}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","n\u0061me":"delete"}}"#,
            "duplicate_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"tools/list"}"#,
            "duplicate_key",
        ),
        (r#"{"model":"a","model":"b"}"#, "duplicate_key"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"a":1,"a":2}}}"#,
            "duplicate_key",
        ),
        // Case variants: colliding, or alone.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"delete"}}"#,
            "case_colliding_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}"#,
            "case_colliding_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"x"}}"#,
            "case_variant_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","Params":{"name":"x"}}"#,
            "case_variant_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"x"}}"#,
            "case_variant_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","param\u017f":{"name":"x"}}"#,
            "case_variant_key",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"URI":"file:///s"}}"#,
            "case_variant_key",
        ),
        (r#"{"Model":"gpt-4o"}"#, "case_variant_key"),
        (
            r#"{"JSONRPC":"2.0","method":"tools/list"}"#,
            "case_variant_key",
        ),
        (
            r#"[{"jsonrpc":"2.0","id":1,"METHOD":"tools/call"}]"#,
            "case_variant_key",
        ),
        // Types of the members the policy reads.
        (
            r#"{"jsonrpc":"1.0","id":1,"method":"tools/call"}"#,
            "bad_jsonrpc",
        ),
        (
            r#"{"jsonrpc":2.0,"id":1,"method":"tools/call"}"#,
            "bad_jsonrpc",
        ),
        (r#"{"id":1,"method":"tools/call"}"#, "bad_jsonrpc"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":["tools/call"]}"#,
            "bad_method",
        ),
        (r#"{"jsonrpc":"2.0","id":1,"method":null}"#, "bad_method"),
        (
            r#"{"jsonrpc":"2.0","id":{},"method":"tools/list"}"#,
            "bad_id",
        ),
        (
            r#"{"jsonrpc":"2.0","id":[1],"method":"tools/list"}"#,
            "bad_id",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["delete"]}"#,
            "bad_params",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":null}"#,
            "bad_params",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":["delete"]}}"#,
            "bad_target",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":5}}"#,
            "bad_target",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":{"a":1}}}"#,
            "bad_target",
        ),
        (r#"{"model":5}"#, "bad_model"),
        (r#"{"model":["a","b"]}"#, "bad_model"),
        (r#"{"model":{"id":"a"}}"#, "bad_model"),
        (r#"{"model":null}"#, "bad_model"),
        // U+0000 that C parsers cut short.
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete\u0000x"}}"#,
            "nul_in_string",
        ),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list\u0000"}"#,
            "nul_in_string",
        ),
        (r#"{"model":"gpt-4o\u0000mini"}"#, "nul_in_string"),
        (
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name\u0000":"x"}}"#,
            "nul_in_key",
        ),
        // Batches.
        ("[]", "bad_batch"),
        (
            r#"[[{"jsonrpc":"2.0","id":1,"method":"tools/list"}]]"#,
            "bad_batch",
        ),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},"x"]"#,
            "bad_batch",
        ),
        (
            r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a","name":"b"}}]"#,
            "duplicate_key",
        ),
    ];
    for (body, want) in cases {
        assert_eq!(code(body), *want, "{body}");
    }
    assert_eq!(
        read_body(utf16.as_bytes()).map_err(|e| e.code()),
        Err("not_utf8"),
        "UTF-16 (as raw bytes)"
    );
    let raw16: Vec<u8> = call.encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert_eq!(read_body(&raw16).map_err(|e| e.code()), Err("not_utf8"));
    let mut raw_surrogate =
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":""#.to_vec();
    raw_surrogate.extend_from_slice(b"\xED\xA0\x80\"}}");
    assert_eq!(
        read_body(&raw_surrogate).map_err(|e| e.code()),
        Err("lone_surrogate")
    );
}

#[test]
fn whitespace_and_escapes_that_mean_the_same_are_read_the_same() {
    let plain =
        read_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}"#)
            .unwrap();
    let spaced = read_body(
        b" {\r\n\t\"jsonrpc\" : \"2.0\" ,\n \"id\":1, \"method\"\t:\"tools\\/call\",\"params\":{ \"n\\u0061me\" : \"se\\u0061rch\" } }\n",
    )
    .unwrap();
    assert_eq!(plain, spaced);
}

#[test]
fn tool_calls_without_a_name_have_no_target() {
    let a = read_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#).unwrap();
    assert_eq!(a.mcp[0].target, None);
    let a = read_body(br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#).unwrap();
    assert_eq!(a.mcp[0].target, None);
}

#[test]
fn arguments_may_hold_anything_strict() {
    let a = read_body(
        br#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"s","arguments":{"Name":"n","method":"m","nested":{"model":5}}}}"#,
    )
    .unwrap();
    assert_eq!(a.mcp[0].target.as_deref(), Some("s"));
    assert_eq!(a.mcp[0].id, Some(json!("x")));
}

/// Deterministic generator for the differential property below.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn members(rng: &mut Rng, choices: &[(&[&str], &[&str])]) -> String {
    let mut parts = Vec::new();
    for (keys, values) in choices {
        for _ in 0..rng.below(3) {
            parts.push(format!("{}:{}", rng.pick(keys), rng.pick(values)));
        }
    }
    for i in (1..parts.len()).rev() {
        parts.swap(i, rng.below(i + 1));
    }
    let ws = [" ", "", "\n"];
    format!("{{{}}}", parts.join(&format!(",{}", rng.pick(&ws))))
}

/// A lookup the way a case-insensitive, first- or last-wins upstream does.
fn lenient_get<'a>(object: &'a Value, name: &str, last: bool) -> Option<&'a Value> {
    let mut found = object
        .as_object()?
        .iter()
        .filter(|(k, _)| crate::strict_json::fold_key(k) == name)
        .map(|(_, v)| v);
    if last {
        found.next_back()
    } else {
        found.next()
    }
}

/// Whenever a body is accepted, upstreams that bind keys case-insensitively
/// and keep the first or the last duplicate read the same method and
/// target as the policy.
#[test]
fn accepted_bodies_mean_the_same_to_lenient_readers() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..60_000 {
        let params = members(
            &mut rng,
            &[(
                &[
                    "\"name\"",
                    "\"Name\"",
                    "\"n\\u0061me\"",
                    "\"uri\"",
                    "\"URI\"",
                ],
                &["\"search\"", "\"delete\"", "5", "null", "\"a\\u0000\""],
            )],
        );
        let params = params.as_str();
        let body = members(
            &mut rng,
            &[
                (
                    &["\"jsonrpc\"", "\"JSONRPC\"", "\"jſonrpc\""],
                    &["\"2.0\"", "\"1.0\"", "2"],
                ),
                (
                    &["\"method\"", "\"Method\"", "\"m\\u0065thod\""],
                    &[
                        "\"tools/call\"",
                        "\"resources/read\"",
                        "\"tools/list\"",
                        "1",
                    ],
                ),
                (
                    &["\"params\"", "\"Params\"", "\"param\\u017f\""],
                    &[params, "[]", "{}"],
                ),
                (&["\"id\"", "\"ID\""], &["1", "\"x\"", "{}"]),
            ],
        );
        let Ok(attrs) = read_body(body.as_bytes()) else {
            refused += 1;
            continue;
        };
        accepted += 1;
        let value: Value = serde_json::from_str(&body).unwrap();
        for last in [false, true] {
            let method = lenient_get(&value, "method", last).and_then(Value::as_str);
            assert_eq!(
                attrs.mcp.first().map(|c| c.method.as_str()),
                method,
                "{body}"
            );
            let Some(call) = attrs.mcp.first() else {
                continue;
            };
            if let Some(kind) = call.target_kind() {
                let target = lenient_get(&value, "params", last)
                    .and_then(|p| lenient_get(p, kind.param(), last))
                    .and_then(Value::as_str);
                assert_eq!(call.target.as_deref(), target, "{body}");
            }
        }
    }
    assert!(accepted > 1_000 && refused > 1_000, "{accepted} {refused}");
}
