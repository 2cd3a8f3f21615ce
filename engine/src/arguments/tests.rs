use super::*;
use crate::strict_json::{parse_keeping_floats, Options};
use serde_json::json;

fn test(json: &str) -> ArgumentTest {
    serde_json::from_str(json).unwrap()
}

fn error(json: &str) -> String {
    serde_json::from_str::<ArgumentTest>(json)
        .unwrap_err()
        .to_string()
}

fn claims(value: Value) -> Claims {
    match value {
        Value::Object(map) => Claims::new(map),
        _ => unreachable!(),
    }
}

/// Whether `test` holds for the arguments object written as `args`.
fn holds_for(test_json: &str, args: &str, claims_value: Value) -> bool {
    let (value, floats) = parse_keeping_floats(args.as_bytes(), Options::REQUEST).unwrap();
    test(test_json).holds(Some(&value), &floats, &claims(claims_value))
}

fn holds(test_json: &str, args: &str) -> bool {
    holds_for(test_json, args, json!({}))
}

#[test]
fn operators_are_checked_when_the_bundle_is_parsed() {
    assert!(error(r#"{"path":"a","greater":3}"#).contains("unknown operator `greater`"));
    assert!(error(r#"{"path":"a","equals":1,"prefix":"x"}"#).contains("one operator per test"));
    assert!(error(r#"{"path":"a","min":1,"equals":1}"#).contains("one operator per test"));
    assert!(error(r#"{"path":"a"}"#).contains("missing operator"));
    assert!(error(r#"{"equals":1}"#).contains("missing field `path`"));
    assert!(error(r#"{"path":"","equals":1}"#).contains("must not be empty"));
    assert!(error(r#"{"path":"a..b","equals":1}"#).contains("empty step"));
    assert!(error(r#"{"path":".a","equals":1}"#).contains("empty step"));
    assert!(error(r#"{"path":"items.01","equals":1}"#).contains("leading zero"));
    assert!(error(r#"{"path":"items.99999999999999999999999","equals":1}"#).contains("too large"));
    assert!(error(r#"{"path":"a","min":"1"}"#).contains("`min` must be a number"));
    assert!(error(r#"{"path":"a","min":5,"max":1}"#).contains("greater than `max`"));
    assert!(error(r#"{"path":"a","max":9007199254740993}"#).contains("15 significant digits"));
    assert!(error(r#"{"path":"a","max":0.12345678901234567}"#).contains("15 significant digits"));
    assert!(error(r#"{"path":"a","one_of":[]}"#).contains("non-empty array"));
    assert!(error(r#"{"path":"a","prefix":""}"#).contains("non-empty string"));
    assert!(error(r#"{"path":"a","exists":"yes"}"#).contains("true or false"));
    assert!(error(r#"{"path":"a","in_claim":""}"#).contains("claim path"));
    assert!(error(r#"{"path":7,"equals":1}"#).contains("`path` must be a string"));
    let deep = vec!["a"; MAX_STEPS_FOR_TEST + 1].join(".");
    assert!(error(&format!(r#"{{"path":"{deep}","exists":true}}"#)).contains("steps"));
    // Range with both bounds is one operator; round-trips as written.
    let t = test(r#"{"path":"amount","min":0,"max":1000}"#);
    assert!(matches!(
        t.op(),
        ArgumentOp::Range {
            min: Some(_),
            max: Some(_)
        }
    ));
    assert_eq!(
        serde_json::to_value(&t).unwrap(),
        json!({"path":"amount","min":0,"max":1000})
    );
}

const MAX_STEPS_FOR_TEST: usize = path::MAX_STEPS;

#[test]
fn equality_is_type_strict_and_numbers_are_exact() {
    let eq42 = r#"{"path":"n","equals":42}"#;
    assert!(holds(eq42, r#"{"n":42}"#));
    assert!(holds(eq42, r#"{"n":42.0}"#));
    assert!(holds(eq42, r#"{"n":4.2e1}"#));
    assert!(!holds(eq42, r#"{"n":"42"}"#));
    assert!(
        !holds(eq42, r#"{"n":42.000000000000001}"#),
        "rounds to 42.0 but is not 42"
    );
    assert!(!holds(eq42, r#"{"n":[42]}"#));
    assert!(holds(r#"{"path":"n","equals":100}"#, r#"{"n":1e2}"#));
    assert!(holds(r#"{"path":"n","equals":0}"#, r#"{"n":-0}"#));
    assert!(holds(r#"{"path":"n","equals":0}"#, r#"{"n":-0.0}"#));
    assert!(!holds(r#"{"path":"s","equals":"acme"}"#, r#"{"s":"Acme"}"#));
    assert!(!holds(r#"{"path":"b","equals":true}"#, r#"{"b":1}"#));
    assert!(!holds(r#"{"path":"z","equals":null}"#, r#"{"z":0}"#));
    assert!(holds(r#"{"path":"z","equals":null}"#, r#"{"z":null}"#));
    assert!(holds(
        r#"{"path":"o","equals":{"a":[1,"x"]}}"#,
        r#"{"o":{"a":[1.0,"x"]}}"#
    ));
    assert!(!holds(
        r#"{"path":"o","equals":{"a":[1,"x"]}}"#,
        r#"{"o":{"a":[1,"x"],"b":2}}"#
    ));
    let big = r#"{"path":"n","equals":12345678901234567890}"#;
    assert!(holds(big, r#"{"n":12345678901234567890}"#));
    assert!(!holds(big, r#"{"n":12345678901234567891}"#));
    let one_of = r#"{"path":"region","one_of":["eu","us"]}"#;
    assert!(holds(one_of, r#"{"region":"eu"}"#));
    assert!(!holds(one_of, r#"{"region":"apac"}"#));
    assert!(!holds(one_of, r#"{"region":["eu"]}"#));
}

#[test]
fn ranges_compare_the_number_that_was_sent() {
    let max = r#"{"path":"amount","max":1000}"#;
    assert!(holds(max, r#"{"amount":1000}"#));
    assert!(holds(max, r#"{"amount":1e3}"#));
    assert!(holds(max, r#"{"amount":-5}"#));
    assert!(holds(max, r#"{"amount":999.99999999999999999}"#));
    assert!(!holds(max, r#"{"amount":1000.0000000000000001}"#));
    assert!(!holds(max, r#"{"amount":1001}"#));
    assert!(!holds(max, r#"{"amount":100000000000000000000000000000}"#));
    assert!(!holds(max, r#"{"amount":1e308}"#));
    assert!(
        !holds(max, r#"{"amount":"500"}"#),
        "strings are not numbers"
    );
    assert!(!holds(max, r#"{"amount":null}"#));
    assert!(!holds(max, r#"{"amount":[500]}"#));
    // 1e-400 reads as the double 0.0 but is above a max of 0.
    assert!(!holds(r#"{"path":"x","max":0}"#, r#"{"x":1e-400}"#));
    assert!(holds(r#"{"path":"x","min":0}"#, r#"{"x":-0}"#));
    assert!(!holds(r#"{"path":"x","min":0}"#, r#"{"x":-1e-400}"#));
    let range = r#"{"path":"x","min":-1.5,"max":0.1}"#;
    assert!(holds(range, r#"{"x":0.1}"#));
    assert!(holds(range, r#"{"x":-1.5}"#));
    assert!(!holds(range, r#"{"x":0.10000000000000001}"#));
    assert!(!holds(range, r#"{"x":-1.5000000000000001}"#));
    // Two texts rounding to one double: the test must hold for both.
    assert!(!holds(
        max,
        r#"{"amount":1000.0000000000000001,"other":1000.0}"#
    ));
    assert!(!holds(
        max,
        r#"{"other":1000.0000000000000001,"amount":1000.0}"#
    ));
    assert!(holds(max, r#"{"other":1000.0,"amount":1000.0}"#));
}

#[test]
fn absent_arguments_fail_everything_but_exists_false() {
    for t in [
        r#"{"path":"x","equals":null}"#,
        r#"{"path":"x","one_of":[1]}"#,
        r#"{"path":"x","prefix":"a"}"#,
        r#"{"path":"x","max":10}"#,
        r#"{"path":"x","exists":true}"#,
        r#"{"path":"x","in_claim":"c"}"#,
        r#"{"path":"x","equals_claim":"c"}"#,
    ] {
        assert!(!holds_for(t, r#"{"y":1}"#, json!({"c": [1, null]})), "{t}");
        assert!(
            !test(t).holds(None, &FloatTexts::default(), &claims(json!({"c": [1]}))),
            "{t}"
        );
    }
    let absent = r#"{"path":"x","exists":false}"#;
    assert!(holds(absent, r#"{"y":1}"#));
    assert!(!holds(absent, r#"{"x":null}"#));
    assert!(test(absent).holds(None, &FloatTexts::default(), &claims(json!({}))));
}

#[test]
fn paths_walk_objects_and_arrays_only_as_written() {
    let t = r#"{"path":"items.0.id","equals":"a"}"#;
    assert!(holds(t, r#"{"items":[{"id":"a"},{"id":"b"}]}"#));
    assert!(!holds(t, r#"{"items":[{"id":"b"},{"id":"a"}]}"#));
    assert!(
        !holds(t, r#"{"items":{"0":{"id":"a"}}}"#),
        "digits index arrays only"
    );
    assert!(!holds(t, r#"{"items":[]}"#));
    let nested = r#"{"path":"filter.region","equals":"eu"}"#;
    assert!(holds(nested, r#"{"filter":{"region":"eu"}}"#));
    assert!(!holds(nested, r#"{"filter.region":"eu"}"#));
    assert!(!holds(nested, r#"{"filter":"eu"}"#));
    let prefix = r#"{"path":"file","prefix":"reports/"}"#;
    assert!(holds(prefix, r#"{"file":"reports/q1"}"#));
    assert!(!holds(prefix, r#"{"file":"Reports/q1"}"#));
    assert!(!holds(prefix, r#"{"file":7}"#));
}

#[test]
fn in_claim_needs_every_value_granted() {
    let t = r#"{"path":"customer_id","in_claim":"customers"}"#;
    let caller = json!({"customers": ["acme", "initech", 7], "tenant": "acme"});
    let check = |args: &str| holds_for(t, args, caller.clone());
    assert!(check(r#"{"customer_id":"acme"}"#));
    assert!(!check(r#"{"customer_id":"globex"}"#));
    assert!(!check(r#"{"customer_id":"ACME"}"#));
    assert!(check(r#"{"customer_id":["acme","initech"]}"#));
    assert!(!check(r#"{"customer_id":["acme","globex"]}"#));
    assert!(!check(r#"{"customer_id":[]}"#), "empty array fails");
    assert!(!check(r#"{"customer_id":[["acme"]]}"#));
    assert!(!check(r#"{"customer_id":{"0":"acme"}}"#));
    assert!(check(r#"{"customer_id":7}"#));
    assert!(check(r#"{"customer_id":7.0}"#));
    assert!(!check(r#"{"customer_id":"7"}"#), "type-strict");
    assert!(!check(r#"{"customer_id":null}"#));
    // A string claim is one value, not a list of words.
    let one = r#"{"path":"t","in_claim":"tenant"}"#;
    assert!(holds_for(one, r#"{"t":"acme"}"#, caller.clone()));
    assert!(!holds_for(one, r#"{"t":"acm"}"#, caller.clone()));
    let words = json!({"tenant": "acme globex"});
    assert!(!holds_for(one, r#"{"t":"acme"}"#, words));
    // No such claim: fails.
    assert!(!holds_for(one, r#"{"t":"acme"}"#, json!({})));
    // Nested claim paths.
    let nested = r#"{"path":"t","in_claim":"org.tenants"}"#;
    assert!(holds_for(
        nested,
        r#"{"t":"a"}"#,
        json!({"org": {"tenants": ["a"]}})
    ));
}

#[test]
fn equals_claim_is_strict() {
    let t = r#"{"path":"tenant","equals_claim":"tenant"}"#;
    assert!(holds_for(
        t,
        r#"{"tenant":"acme"}"#,
        json!({"tenant": "acme"})
    ));
    assert!(!holds_for(
        t,
        r#"{"tenant":"globex"}"#,
        json!({"tenant": "acme"})
    ));
    assert!(!holds_for(
        t,
        r#"{"tenant":["acme"]}"#,
        json!({"tenant": "acme"})
    ));
    assert!(!holds_for(t, r#"{"tenant":"acme"}"#, json!({})));
    assert!(holds_for(t, r#"{"tenant":1e1}"#, json!({"tenant": 10})));
}
