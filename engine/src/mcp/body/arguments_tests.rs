//! Reading call arguments and canonical resource URIs from bodies.

use super::*;
use crate::arguments::ArgumentPath;

fn paths(texts: &[&str]) -> Vec<ArgumentPath> {
    texts
        .iter()
        .map(|t| ArgumentPath::parse(t).unwrap())
        .collect()
}

fn read(body: &str, read_paths: &[&str]) -> Result<BodyAttrs, BodyError> {
    let paths = paths(read_paths);
    read_body_with(
        body.as_bytes(),
        &BodyOptions {
            argument_paths: &paths,
            canonical_uris: true,
        },
    )
}

fn code(body: &str, read_paths: &[&str]) -> &'static str {
    match read(body, read_paths) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

fn call(arguments: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"get_invoice","arguments":{arguments}}}}}"#
    )
}

fn sent(attrs: &BodyAttrs) -> &serde_json::Value {
    match &attrs.mcp[0].arguments {
        CallArguments::Sent { value, .. } => value,
        other => panic!("arguments not read: {other:?}"),
    }
}

#[test]
fn arguments_are_read_only_when_rules_read_them() {
    let body = call(r#"{"customer_id":"acme"}"#);
    let plain = read_body(body.as_bytes()).unwrap();
    assert_eq!(plain.mcp[0].arguments, CallArguments::Absent);
    let read = read(&body, &["customer_id"]).unwrap();
    assert_eq!(sent(&read)["customer_id"], "acme");
    // Prompts too; other methods never carry arguments.
    let prompt = r#"{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","arguments":{"customer_id":"acme"}}}"#;
    assert_eq!(sent(&read_at(prompt))["customer_id"], "acme");
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"arguments":{"x":1}}}"#;
    assert_eq!(read_at(list).mcp[0].arguments, CallArguments::Absent);
}

fn read_at(body: &str) -> BodyAttrs {
    read(body, &["customer_id"]).unwrap()
}

#[test]
fn escaped_keys_are_read_as_every_parser_reads_them() {
    let a = read(&call(r#"{"customer\u005fid":"acme"}"#), &["customer_id"]).unwrap();
    assert_eq!(sent(&a)["customer_id"], "acme");
    // ...so an escaped twin of a key is a duplicate, refused.
    assert_eq!(
        code(
            &call(r#"{"customer_id":"acme","customer\u005fid":"globex"}"#),
            &["customer_id"]
        ),
        "duplicate_key"
    );
    assert_eq!(
        code(
            &call(r#"{"customer_id":"acme","customer_id":"globex"}"#),
            &["customer_id"]
        ),
        "duplicate_key"
    );
    assert_eq!(
        code(
            &call(r#"{"customer_id":"acme","Customer_Id":"globex"}"#),
            &["customer_id"]
        ),
        "case_colliding_key"
    );
    // A lone case variant of a key a rule reads: a case-insensitive
    // binder reads it, the rule would not.
    assert_eq!(
        code(&call(r#"{"Customer_ID":"globex"}"#), &["customer_id"]),
        "argument_case_variant_key"
    );
    assert_eq!(
        code(&call(r#"{"filter":{"REGION":"eu"}}"#), &["filter.region"]),
        "argument_case_variant_key"
    );
    assert_eq!(
        code(&call(r#"{"customer\u017fid":"x"}"#), &["customersid"]),
        "argument_case_variant_key",
        "long s folds onto s"
    );
    // Keys no rule reads may differ in case freely.
    assert_eq!(code(&call(r#"{"Note":"x"}"#), &["customer_id"]), "ok");
    // `Arguments` next to no `arguments` is a case variant of the member.
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","Arguments":{"customer_id":"acme"}}}"#;
    assert_eq!(code(body, &["customer_id"]), "case_variant_key");
}

#[test]
fn strings_and_numbers_parsers_disagree_on_are_refused() {
    assert_eq!(
        code(&call(r#"{"customer_id":"\ud800"}"#), &["customer_id"]),
        "lone_surrogate"
    );
    let a = read(&call(r#"{"customer_id":"\ud83d\ude00"}"#), &["customer_id"]).unwrap();
    assert_eq!(sent(&a)["customer_id"], "\u{1F600}");
    assert_eq!(
        code(&call(r#"{"customer_id":"acme\u0000x"}"#), &["customer_id"]),
        "argument_nul_in_string"
    );
    assert_eq!(
        code(
            &call(r#"{"customer_id":["acme","\u0000"]}"#),
            &["customer_id"]
        ),
        "argument_nul_in_string"
    );
    assert_eq!(
        code(&call(r#"{"amount":1e400}"#), &["amount"]),
        "bad_number"
    );
    assert_eq!(
        code(&call(r#"{"amount":NaN}"#), &["amount"]),
        "non_finite_number"
    );
    let deep = format!("{}1{}", "[".repeat(70), "]".repeat(70));
    assert_eq!(
        code(&call(&format!(r#"{{"x":{deep}}}"#)), &["x"]),
        "too_deep"
    );
}

#[test]
fn argument_shapes_are_strict() {
    assert_eq!(code(&call("[1,2]"), &["customer_id"]), "bad_arguments");
    assert_eq!(code(&call("null"), &["customer_id"]), "bad_arguments");
    assert_eq!(code(&call(r#""x""#), &["customer_id"]), "bad_arguments");
    assert_eq!(
        code(&call(r#"{"items":{"0":{"id":"x"}}}"#), &["items.0.id"]),
        "argument_numeric_key"
    );
    assert_eq!(
        code(&call(r#"{"items":[{"id":"x"}]}"#), &["items.0.id"]),
        "ok"
    );
    let no_args = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t"}}"#;
    assert_eq!(read_at(no_args).mcp[0].arguments, CallArguments::Absent);
}

#[test]
fn doubles_keep_their_source_text() {
    // Texts are kept for every double, also where no rule reads.
    let a = read(&call(r#"{"amount":1000.0000000000000001,"n":5}"#), &["n"]).unwrap();
    let CallArguments::Sent { floats, .. } = &a.mcp[0].arguments else {
        panic!("not read");
    };
    assert_eq!(
        floats
            .texts_of(1000.0)
            .iter()
            .map(|t| &**t)
            .collect::<Vec<_>>(),
        ["1000.0000000000000001"]
    );
    // Batches share one table.
    let body = format!(
        "[{},{}]",
        call(r#"{"amount":1.5}"#),
        call(r#"{"amount":2}"#)
    );
    let a = read(&body, &["amount"]).unwrap();
    assert_eq!(a.mcp.len(), 2);
}

#[test]
fn resource_uris_must_be_canonical_when_templates_match_them() {
    let read_uri = |uri: &str| {
        format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{{"uri":"{uri}"}}}}"#
        )
    };
    assert_eq!(code(&read_uri("file:///tenants/acme/x"), &[]), "ok");
    assert_eq!(
        code(&read_uri("file:///tenants/acme/../globex/x"), &[]),
        "uri_dot_segment"
    );
    assert_eq!(
        code(&read_uri("FILE:///tenants/acme/x"), &[]),
        "uri_scheme_case"
    );
    assert_eq!(
        code(&read_uri("file:///tenants/acme%2Fx"), &[]),
        "uri_encoding"
    );
    // Without templates in the bundle, URIs are read as before.
    let plain = read_body(read_uri("file:///a/../b").as_bytes()).unwrap();
    assert_eq!(plain.mcp[0].target.as_deref(), Some("file:///a/../b"));
}
