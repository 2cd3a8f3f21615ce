use super::*;

fn code(bytes: &[u8]) -> &'static str {
    match parse(bytes, Options::REQUEST) {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

#[test]
fn refusals_name_their_reason() {
    let deep_ok = format!("{}1{}", "[".repeat(64), "]".repeat(64));
    let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
    let deep_obj = format!("{}1{}", "{\"a\":".repeat(65), "}".repeat(65));
    let utf16: Vec<u8> = "{\"a\":1}"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let utf16be: Vec<u8> = "{\"a\":1}"
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let cases: &[(&[u8], &str)] = &[
        (br#"{"a":1}"#, "ok"),
        (b" \t\r\n{ \"a\" : [ 1 , 2 ] } \n", "ok"),
        (deep_ok.as_bytes(), "ok"),
        (br#""\ud83d\ude00""#, "ok"),
        (br#"{"a":"\u0000"}"#, "ok"),
        (b"\xEF\xBB\xBF{}", "bom"),
        (b"\xFF\xFE{\x00}\x00", "bom"),
        (b"\xFE\xFF\x00{\x00}", "bom"),
        (&utf16, "not_utf8"),
        (&utf16be, "not_utf8"),
        (b"{\"a\":\"\xff\"}", "not_utf8"),
        (b"{\"a\":\"\xC0\xAF\"}", "not_utf8"),
        (b"{\"a\":\"\xED\xA0\x80\"}", "lone_surrogate"),
        (br#"{"a":"\ud800"}"#, "lone_surrogate"),
        (br#"{"a":"\udc00"}"#, "lone_surrogate"),
        (br#"{"a":"\ud800\u0041"}"#, "lone_surrogate"),
        (br#"{"a":"\ud800x"}"#, "lone_surrogate"),
        (br#"{"\ud800":1}"#, "lone_surrogate"),
        (br#"{"a":NaN}"#, "non_finite_number"),
        (br#"{"a":Infinity}"#, "non_finite_number"),
        (br#"{"a":-Infinity}"#, "non_finite_number"),
        (br#"{"a":1e400}"#, "bad_number"),
        (deep.as_bytes(), "too_deep"),
        (deep_obj.as_bytes(), "too_deep"),
        (br#"{"a":1} x"#, "trailing_data"),
        (br#"{"a":1}{"a":2}"#, "trailing_data"),
        (br#"{"a":1}}"#, "trailing_data"),
        (b"{\"a\":1}\x00", "trailing_data"),
        (b"{\"a\":1}\x0c", "trailing_data"),
        (br#"{"a":1,"a":2}"#, "duplicate_key"),
        (br#"{"name":1,"n\u0061me":2}"#, "duplicate_key"),
        (br#"{"a\/b":1,"a/b":2}"#, "duplicate_key"),
        (br#"{"x":{"y":[{"a":1,"a":1}]}}"#, "duplicate_key"),
        (br#"{"name":1,"Name":2}"#, "case_colliding_key"),
        (br#"{"method":1,"METHOD":2}"#, "case_colliding_key"),
        (br#"{"params":1,"param\u017f":2}"#, "case_colliding_key"),
        (br#"{"a":[{"ok":1,"OK":2}]}"#, "case_colliding_key"),
        (br#"{"name\u0000":1}"#, "nul_in_key"),
        (b"", "not_json"),
        (b"  ", "not_json"),
        (b"{", "not_json"),
        (br#"{"a":1,}"#, "not_json"),
        (br#"[1,]"#, "not_json"),
        (br#"{'a':1}"#, "not_json"),
        (br#"{a:1}"#, "not_json"),
        (br#"{"a":1 /* c */}"#, "not_json"),
        (b"// c\n{}", "not_json"),
        (br#"{"a":01}"#, "not_json"),
        (br#"{"a":.5}"#, "not_json"),
        (br#"{"a":1.}"#, "not_json"),
        (br#"{"a":+1}"#, "not_json"),
        (br#"{"a":0x10}"#, "not_json"),
        (br#"{"a":tru}"#, "not_json"),
        (br#"{"a":True}"#, "not_json"),
        (br#"{"a":undefined}"#, "not_json"),
        (b"{\"a\":\"x\ny\"}", "not_json"),
        (br#"{"a":"\x41"}"#, "not_json"),
        (br#"{"a":"\u12"}"#, "not_json"),
        (b"\x0c{}", "not_json"),
        (b"\xC2\xA0{}", "not_json"),
        (br#"{"a" 1}"#, "not_json"),
        (br#"{"a":1 "b":2}"#, "not_json"),
        (br#""unterminated"#, "not_json"),
    ];
    for (input, want) in cases {
        assert_eq!(code(input), *want, "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn errors_carry_the_offset_of_the_offending_key() {
    let e = parse(br#"{"a":1, "a":2}"#, Options::REQUEST).unwrap_err();
    assert_eq!((e.kind, e.offset), (ErrorKind::DuplicateKey, 8));
    assert_eq!(e.to_string(), "duplicate_key at byte 8");
}

#[test]
fn case_folding_is_optional() {
    let text = br#"{"name":1,"Name":2}"#;
    assert!(parse(text, Options::RESPONSE).is_ok());
    assert!(parse(br#"{"a":1,"a":2}"#, Options::RESPONSE).is_err());
}

#[test]
fn objects_parse_like_serde_json() {
    let text = br#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":"\u00e9","d":-0,"e":1E+2,"f":18446744073709551616,"g":"\ud83d\ude00\n\/"}"#;
    let expected: Value = serde_json::from_slice(text).unwrap();
    assert_eq!(Value::Object(parse_object(text).unwrap()), expected);
}

#[test]
fn token_objects_refuse_duplicates_and_non_objects() {
    assert!(parse_object(br#"{"a":1,"a":2}"#).is_none());
    assert!(parse_object(br#"{"x":{"a":1,"a":1}}"#).is_none());
    assert!(parse_object(br#"{"x":[{"a":1,"a":1}]}"#).is_none());
    assert!(parse_object(br#"{"a":1,"\u0061":2}"#).is_none());
    assert!(parse_object(b"[1]").is_none());
    assert!(parse_object(b"\"s\"").is_none());
    assert!(parse_object(b"{\"a\":\"\xff\"}").is_none());
    assert!(parse_object(b"{} x").is_none());
    assert!(parse_object(b"").is_none());
    assert!(parse_object(br#"{"sub":"a","Sub":"b"}"#).is_some());
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(code(deep.as_bytes()), "too_deep");
    assert!(parse_object(deep.as_bytes()).is_none());
}

#[test]
fn long_keys_and_wide_objects_are_read() {
    let key = "k".repeat(100_000);
    let text = format!("{{\"{key}\":1,\"{key}x\":2}}");
    assert_eq!(code(text.as_bytes()), "ok");
    let dup = format!("{{\"{key}\":1,\"{key}\":2}}");
    assert_eq!(code(dup.as_bytes()), "duplicate_key");
    let members: Vec<String> = (0..10_000).map(|i| format!("\"k{i}\":{i}")).collect();
    let wide = format!("{{{}}}", members.join(","));
    let value = parse(wide.as_bytes(), Options::REQUEST).unwrap();
    assert_eq!(value.as_object().map(Map::len), Some(10_000));
    let colliding = format!("{{{},\"K9999\":0}}", members.join(","));
    assert_eq!(code(colliding.as_bytes()), "case_colliding_key");
}

/// A small deterministic generator, so the property tests need no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const ATOMS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "12.5e-3",
    "1E400",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "0.1",
    "1e-400",
    "true",
    "false",
    "null",
    "NaN",
    "\"\"",
    "\"a\"",
    "\"\\u00e9\"",
    "\"\\ud83d\\ude00\"",
    "\"\\ud800\"",
    "\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"",
    "\"\u{e9}\u{1F600}\"",
];
const KEYS: &[&str] = &[
    "\"a\"",
    "\"A\"",
    "\"b\"",
    "\"\\u0061\"",
    "\"name\"",
    "\"Name\"",
    "\"n\\u0061me\"",
    "\"\"",
    "\"\\u0000\"",
    "\"param\u{17F}\"",
    "\"params\"",
];
const WS: &[&str] = &["", "", " ", "\n", "\t", "\r\n"];

fn gen(rng: &mut Rng, depth: usize, out: &mut String) {
    out.push_str(rng.pick(WS));
    match if depth > 5 { 0 } else { rng.below(4) } {
        0 | 1 => out.push_str(rng.pick(ATOMS)),
        2 => {
            out.push('[');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                gen(rng, depth + 1, out);
            }
            out.push(']');
        }
        _ => {
            out.push('{');
            for i in 0..rng.below(4) {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(rng.pick(WS));
                out.push_str(rng.pick(KEYS));
                out.push(':');
                gen(rng, depth + 1, out);
            }
            out.push('}');
        }
    }
    out.push_str(rng.pick(WS));
}

fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    const NOISE: &[u8] = b"{}[],:\"\\ 0-e.xuN\x00\xff\xef\xbb\xbf\xed\xa0\x80";
    for _ in 0..rng.below(3) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(3) {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 if at < bytes.len() => bytes[at] = NOISE[rng.below(NOISE.len())],
            _ => bytes.insert(at, NOISE[rng.below(NOISE.len())]),
        }
    }
}

/// Whatever the strict reader accepts, serde_json reads to the same value;
/// and it refuses whatever serde_json refuses.
#[test]
fn serde_json_agrees_on_everything_accepted() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..40_000 {
        let mut text = String::new();
        gen(&mut rng, 0, &mut text);
        let mut bytes = text.into_bytes();
        if rng.below(2) == 0 {
            mutate(&mut rng, &mut bytes);
        }
        let serde = serde_json::from_slice::<Value>(&bytes);
        for options in [Options::REQUEST, Options::RESPONSE] {
            match parse(&bytes, options) {
                Ok(value) => {
                    accepted += 1;
                    let theirs = serde
                        .as_ref()
                        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
                    assert_eq!(&value, theirs, "{}", String::from_utf8_lossy(&bytes));
                }
                Err(_) => {
                    refused += 1;
                }
            }
        }
        if serde.is_err() {
            assert!(parse(&bytes, Options::RESPONSE).is_err());
        }
    }
    assert!(
        accepted > 10_000 && refused > 10_000,
        "{accepted} {refused}"
    );
}

/// Rough native throughput on a 4 KB and a 1 MB body, against serde_json:
/// `cargo test -p mcp-guard-engine --lib strict_json::tests::cost -- --ignored --nocapture`
/// (the test profile is optimised). `benches/body.rs` measures properly.
#[test]
#[ignore]
fn cost() {
    let item = r#"{"role":"user","content":"lorem ipsum dolor sit amet \u00e9 \n","n":[1,2.5,true,null]},"#;
    for size in [4 * 1024, 1024 * 1024, 2 * 1024 * 1024] {
        let items = item.repeat(size / item.len());
        let body = format!(r#"{{"model":"m","messages":[{}{{}}]}}"#, items);
        let rounds = (64 * 1024 * 1024 / body.len()).max(1);
        let time = |f: &dyn Fn() -> bool| {
            let start = std::time::Instant::now();
            for _ in 0..rounds {
                assert!(f());
            }
            start.elapsed() / rounds as u32
        };
        let strict = time(&|| parse(body.as_bytes(), Options::REQUEST).is_ok());
        let serde = time(&|| serde_json::from_slice::<Value>(body.as_bytes()).is_ok());
        println!(
            "{} bytes: strict {strict:?}, serde_json {serde:?} per body",
            body.len()
        );
    }
    let members: Vec<String> = (0..10_000).map(|i| format!("\"Key{i}\":{i}")).collect();
    let wide = format!("{{{}}}", members.join(","));
    let time = |f: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        for _ in 0..20 {
            assert!(f());
        }
        start.elapsed() / 20
    };
    let strict = time(&|| parse(wide.as_bytes(), Options::REQUEST).is_ok());
    let serde = time(&|| serde_json::from_slice::<Value>(wide.as_bytes()).is_ok());
    println!("10k-member object: strict {strict:?}, serde_json {serde:?}");
}

#[test]
fn keeping_float_texts_reads_the_same_value() {
    let text = br#"{"a":1000.0000000000000001,"b":[1000.0,1e3,-0.0,5,123456789012345678901234],"c":"1.5"}"#;
    let (value, floats) = super::parse_keeping_floats(text, Options::REQUEST).unwrap();
    assert_eq!(value, parse(text, Options::REQUEST).unwrap());
    let texts: Vec<&str> = floats.texts_of(1000.0).iter().map(|t| &**t).collect();
    assert_eq!(texts, ["1000.0000000000000001", "1000.0", "1e3"]);
    assert_eq!(floats.texts_of(-0.0).len(), 1);
    assert_eq!(
        floats
            .texts_of(value["b"][4].as_f64().unwrap())
            .first()
            .map(|t| &**t),
        Some("123456789012345678901234")
    );
    assert!(
        floats.texts_of(5.0).is_empty(),
        "integers are exact: not kept"
    );
    assert!(floats.texts_of(1.5).is_empty(), "strings are not numbers");
    // Refusals are the same as without texts.
    assert_eq!(
        super::parse_keeping_floats(br#"{"a":1,"a":2}"#, Options::REQUEST)
            .unwrap_err()
            .kind,
        ErrorKind::DuplicateKey
    );
}
