use super::*;
use crate::mcp::read_body;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn body(text: &str) -> BodyAttrs {
    read_body(text.as_bytes()).unwrap()
}

#[test]
fn no_headers_leave_the_body_to_decide() {
    assert_eq!(
        read_headers(&h(&[("content-type", "application/json")])),
        Ok(None)
    );
}

#[test]
fn headers_announce_the_call_the_rules_see() {
    let call = read_headers(&h(&[
        ("Mcp-Method", "tools/call"),
        ("MCP-NAME", "get_weather"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(call, McpCall::targeting("tools/call", "get_weather"));
    let list = read_headers(&h(&[("mcp-method", "tools/list")])).unwrap();
    assert_eq!(list, Some(McpCall::new("tools/list")));
    let uri = read_headers(&h(&[
        ("mcp-method", "resources/read"),
        ("mcp-name", "file:///a b/c.json"),
    ]))
    .unwrap();
    assert_eq!(
        uri,
        Some(McpCall::targeting("resources/read", "file:///a b/c.json"))
    );
}

#[test]
fn ambiguous_headers_are_refused() {
    let cases: [(&[(&str, &str)], HeaderMismatch); 14] = [
        (
            &[("mcp-method", "Tools/Call"), ("mcp-name", "x")],
            HeaderMismatch::Method,
        ),
        (&[("mcp-method", "TOOLS/LIST")], HeaderMismatch::Method),
        (
            &[("mcp-method", "tools/call"), ("mcp-method", "tools/list")],
            HeaderMismatch::Duplicate,
        ),
        (
            &[
                ("mcp-method", "tools/call"),
                ("mcp-name", "a"),
                ("Mcp-Name", "b"),
            ],
            HeaderMismatch::Duplicate,
        ),
        (
            &[("mcp-name", "delete_all")],
            HeaderMismatch::NameWithoutMethod,
        ),
        (
            &[("mcp-method", "tools/call ")],
            HeaderMismatch::InvalidValue,
        ),
        (
            &[("mcp-method", "tools/call, tools/list")],
            HeaderMismatch::InvalidValue,
        ),
        (&[("mcp-method", "")], HeaderMismatch::InvalidValue),
        (
            &[("mcp-method", "tools/call"), ("mcp-name", "safe_tool ")],
            HeaderMismatch::InvalidValue,
        ),
        (
            &[("mcp-method", "tools/call"), ("mcp-name", "t\u{e9}l")],
            HeaderMismatch::InvalidValue,
        ),
        (
            &[("mcp-method", "tools/call"), ("mcp-name", "a\tb")],
            HeaderMismatch::InvalidValue,
        ),
        (
            &[("mcp-method", "tools/list"), ("mcp-name", "x")],
            HeaderMismatch::NameNotTaken,
        ),
        (&[("mcp-method", "tools/call")], HeaderMismatch::MissingName),
        (
            &[("mcp-method", "tools/call"), ("mcp-name", "=?base64?!!!?=")],
            HeaderMismatch::BadEncoding,
        ),
    ];
    for (headers, want) in cases {
        assert_eq!(read_headers(&h(headers)), Err(want), "{headers:?}");
    }
}

#[test]
fn base64_names_are_decoded_before_comparison() {
    // "tööl" in UTF-8, as the spec's sentinel.
    let encoded = format!("=?base64?{}?=", STANDARD.encode("t\u{f6}\u{f6}l"));
    let call = read_headers(&h(&[("mcp-method", "tools/call"), ("mcp-name", &encoded)]))
        .unwrap()
        .unwrap();
    assert_eq!(call.target.as_deref(), Some("t\u{f6}\u{f6}l"));
    let not_utf8 = format!("=?base64?{}?=", STANDARD.encode([0xff, 0xfe]));
    assert_eq!(
        read_headers(&h(&[("mcp-method", "tools/call"), ("mcp-name", &not_utf8)])),
        Err(HeaderMismatch::BadEncoding)
    );
}

#[test]
fn the_body_must_make_the_announced_call() {
    let safe = McpCall::targeting("tools/call", "safe_tool");
    let call = |method: &str, name: &str| {
        format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{{"name":"{name}"}}}}"#)
    };
    assert_eq!(
        verify_body(&safe, &body(&call("tools/call", "safe_tool"))),
        Ok(())
    );
    assert_eq!(
        verify_body(&safe, &body(&call("tools/call", "delete_all"))),
        Err(HeaderMismatch::Name)
    );
    // Escapes are read as the upstream reads them: the decoded name counts.
    let escaped = body(&call("tools/call", "del\\u0065te_all"));
    assert_eq!(verify_body(&safe, &escaped), Err(HeaderMismatch::Name));
    let delete = McpCall::targeting("tools/call", "delete_all");
    assert_eq!(verify_body(&delete, &escaped), Ok(()));
    assert_eq!(
        verify_body(
            &McpCall::targeting("Tools/Call", "safe_tool"),
            &body(&call("tools/call", "safe_tool"))
        ),
        Err(HeaderMismatch::Method)
    );
    let batch = format!("[{}]", call("tools/call", "safe_tool"));
    assert_eq!(
        verify_body(&safe, &body(&batch)),
        Err(HeaderMismatch::Batch)
    );
    assert_eq!(
        verify_body(&safe, &body(r#"{"foo":1}"#)),
        Err(HeaderMismatch::NotACall)
    );
    assert_eq!(verify_body(&safe, &body("")), Err(HeaderMismatch::NotACall));
    let no_name = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#;
    assert_eq!(
        verify_body(&safe, &body(no_name)),
        Err(HeaderMismatch::Name)
    );
    let subscribe = McpCall::new("resources/subscribe");
    let with_uri =
        r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///x"}}"#;
    assert_eq!(
        verify_body(&subscribe, &body(with_uri)),
        Err(HeaderMismatch::MissingName)
    );
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    assert_eq!(
        verify_body(&McpCall::new("tools/list"), &body(list)),
        Ok(())
    );
}

#[test]
fn duplicate_keys_never_reach_the_comparison() {
    // Which `name` the upstream uses depends on its parser: the strict
    // reader refuses the body before any comparison could pick one.
    let twice = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"safe_tool","name":"delete_all"}}"#;
    assert!(read_body(twice).is_err());
}

#[test]
fn codes_are_stable_and_distinct() {
    let all = HeaderMismatch::ALL;
    let mut codes: Vec<_> = all.iter().map(|m| m.code()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), all.len());
    for m in all {
        assert_eq!(HeaderMismatch::from_code(m.code()), Some(m));
    }
    assert_eq!(HeaderMismatch::from_code("rule_deny"), None);
}

#[test]
fn underscore_spellings_count_as_the_headers() {
    // Upstreams that fold `_` into `-` (CGI, WSGI) would read these as
    // the MCP headers: a second spelling is a duplicate, a lone one is
    // read (and verified against the body) like the header.
    for pairs in [
        [("Mcp-Name", "get_weather"), ("mcp_name", "delete_all")],
        [("Mcp-Method", "tools/list"), ("MCP_METHOD", "tools/call")],
    ] {
        let mut headers = h(&pairs);
        if !pairs
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("mcp-method"))
        {
            headers.push(("mcp-method".into(), "tools/call".into()));
        }
        assert_eq!(
            read_headers(&headers),
            Err(HeaderMismatch::Duplicate),
            "{pairs:?}"
        );
    }
    let call = read_headers(&h(&[("mcp_method", "tools/call"), ("Mcp_Name", "x")]));
    assert_eq!(call, Ok(Some(McpCall::targeting("tools/call", "x"))));
}

#[test]
fn revision_2026_posts_must_announce_their_method() {
    let post = |version: &str| h(&[(":method", "POST"), ("mcp-protocol-version", version)]);
    for version in ["2026-07-28", "2026-11-25", " 2027-01-01 "] {
        assert_eq!(
            read_headers(&post(version)),
            Err(HeaderMismatch::MissingMethod),
            "{version}"
        );
    }
    // Older revisions and unreadable versions keep deciding on the body.
    for version in ["2025-11-25", "2025-06-18", "latest", "2026-7-28", ""] {
        assert_eq!(read_headers(&post(version)), Ok(None), "{version:?}");
    }
    // Only a POST carries a call to announce.
    let get = h(&[(":method", "GET"), ("mcp-protocol-version", "2026-07-28")]);
    assert_eq!(read_headers(&get), Ok(None));
    // With the header the request is read as announced.
    let mut announced = post("2026-07-28");
    announced.extend(h(&[("mcp-method", "tools/list")]));
    assert!(matches!(read_headers(&announced), Ok(Some(_))));
}
