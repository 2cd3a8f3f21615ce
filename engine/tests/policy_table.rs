//! Table-driven tests of every condition operator and of the decision
//! semantics (deny first, default deny, dry run, batches), plus a check
//! that the rule index never changes a decision.

// Test code: a panic is a failed test, not a dead worker VM.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mcp_guard_engine::{
    Bundle, Claims, Decision, Effect, McpCall, Policy, Reason, RequestAttrs, TargetKind,
};
use serde_json::{json, Value};

fn policy(rules: Value) -> Policy {
    policy_with(json!({ "rules": rules }))
}

fn policy_with(extra: Value) -> Policy {
    let mut bundle = json!({"name": "t", "version": 1});
    for (k, v) in extra.as_object().unwrap() {
        bundle[k] = v.clone();
    }
    Policy::new(Bundle::parse(bundle.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"))
}

fn claims(v: Value) -> Claims {
    Claims::new(v.as_object().unwrap().clone())
}

/// 2026-11-21 (a Saturday) 14:30 UTC.
const SATURDAY_1430: u64 = 1_795_271_400;

fn request<'a>(path: &'a str, headers: &'a [(&'a str, &'a str)]) -> RequestAttrs<'a> {
    RequestAttrs::new("POST", path, "Model.Local:8443")
        .with_headers(headers)
        .at(SATURDAY_1430)
}

fn allowed(p: &Policy, c: Value, r: &RequestAttrs<'_>) -> bool {
    p.decide(&claims(c), r).effect == Effect::Allow
}

#[test]
fn claim_operators() {
    // (condition, claims that satisfy it, claims that do not)
    let table = [
        (
            json!({"claim": "tier", "equals": "gold"}),
            json!({"tier": "gold"}),
            json!({"tier": "silver"}),
        ),
        (
            json!({"claim": "level", "equals": 3}),
            json!({"level": 3.0}),
            json!({"level": "3"}),
        ),
        (
            json!({"claim": "org.unit", "one_of": ["a", "b"]}),
            json!({"org": {"unit": "b"}}),
            json!({"org": {"unit": "c"}}),
        ),
        (
            json!({"claim": "roles", "contains_any": ["x", "y"]}),
            json!({"roles": ["z", "y"]}),
            json!({"roles": ["z"]}),
        ),
        (
            json!({"claim": "scope", "contains_any": ["mcp:call"]}),
            json!({"scope": "openid mcp:call"}),
            json!({"scope": "openid mcp:callx"}),
        ),
        (
            json!({"claim": "roles", "contains_all": ["x", "y"]}),
            json!({"roles": ["y", "x", "z"]}),
            json!({"roles": ["x"]}),
        ),
        (
            json!({"claim": "email", "prefix": "ops-"}),
            json!({"email": "ops-1@x"}),
            json!({"email": "dev-1@x"}),
        ),
        (
            json!({"claim": "banned", "exists": false}),
            json!({}),
            json!({"banned": false}),
        ),
        (
            json!({"claim": "banned", "exists": true}),
            json!({"banned": null}),
            json!({}),
        ),
        (
            json!({"claim": "age", "gt": 17}),
            json!({"age": 18}),
            json!({"age": 17}),
        ),
        (
            json!({"claim": "age", "ge": 18}),
            json!({"age": 18}),
            json!({"age": "18"}),
        ),
        (
            json!({"claim": "age", "lt": 65}),
            json!({"age": 64.5}),
            json!({"age": 65}),
        ),
        (
            json!({"claim": "age", "le": 65}),
            json!({"age": 65}),
            json!({}),
        ),
        (
            json!({"claim": "https://x.io/roles", "contains_any": ["a"]}),
            json!({"https://x.io/roles": ["a"]}),
            json!({"roles": ["a"]}),
        ),
    ];
    for (condition, yes, no) in table {
        let p = policy(
            json!([{"id": "r", "effect": "allow", "when": {"claims": [condition.clone()]}}]),
        );
        let r = request("/", &[]);
        assert!(
            allowed(&p, yes.clone(), &r),
            "{condition} should hold for {yes}"
        );
        assert!(
            !allowed(&p, no.clone(), &r),
            "{condition} should fail for {no}"
        );
    }
}

#[test]
fn request_conditions() {
    let headers = [("x-team", "blue"), ("x-debug", "1")];
    let table = [
        (json!({"methods": ["GET", "POST"]}), true),
        (json!({"methods": ["GET"]}), false),
        (json!({"hosts": ["model.local"]}), true),
        (json!({"hosts": ["other.local"]}), false),
        (json!({"path": {"exact": "/tenants/acme/models/m1"}}), true),
        (json!({"path": {"prefix": "/tenants/"}}), true),
        (json!({"path": {"prefix": "/admin/"}}), false),
        (
            json!({"path": {"template": "/tenants/{tenant}/models/{model}"}}),
            true,
        ),
        (json!({"path": {"template": "/tenants/{tenant}"}}), false),
        (
            json!({"headers": [{"name": "x-team", "equals": "blue"}]}),
            true,
        ),
        (
            json!({"headers": [{"name": "x-team", "equals": "red"}]}),
            false,
        ),
        (
            json!({"headers": [{"name": "x-debug", "exists": true}]}),
            true,
        ),
        (
            json!({"headers": [{"name": "x-debug", "exists": false}]}),
            false,
        ),
        (json!({"time": {"days": ["sat", "sun"]}}), true),
        (json!({"time": {"days": ["mon"]}}), false),
        (json!({"time": {"hours": [14, 15]}}), true),
        (json!({"time": {"hours": [15, 18]}}), false),
        (json!({"time": {"hours": [22, 15]}}), true),
        (json!({"time": {"hours": [22, 6]}}), false),
    ];
    for (when, expected) in table {
        let p = policy(json!([{"id": "r", "effect": "allow", "when": when.clone()}]));
        let r = request("/tenants/acme/models/m1?debug=1", &headers);
        assert_eq!(allowed(&p, json!({}), &r), expected, "{when}");
    }
}

#[test]
fn relations_isolate_tenants() {
    let p = policy(json!([
        {"id": "own-tenant", "effect": "allow", "when": {
            "path": {"template": "/tenants/{tenant}/{rest*}"},
            "relations": [{"claim": "tenant", "equals_path": "tenant"}]}},
        {"id": "header-tenant", "effect": "allow", "when": {
            "path": {"prefix": "/shared/"},
            "relations": [{"claim": "tenant", "equals_header": "x-tenant"}]}}
    ]));
    let acme = json!({"tenant": "acme"});
    assert!(allowed(
        &p,
        acme.clone(),
        &request("/tenants/acme/models/x", &[])
    ));
    assert!(!allowed(
        &p,
        acme.clone(),
        &request("/tenants/globex/models/x", &[])
    ));
    assert!(!allowed(
        &p,
        json!({"tenant": ""}),
        &request("/tenants//models/x", &[])
    ));
    assert!(
        !allowed(
            &p,
            json!({"tenant": ["acme"]}),
            &request("/tenants/acme/x", &[])
        ),
        "non-string claims never relate"
    );
    assert!(allowed(
        &p,
        acme.clone(),
        &request("/shared/x", &[("x-tenant", "acme")])
    ));
    assert!(!allowed(
        &p,
        acme,
        &request("/shared/x", &[("x-tenant", "globex")])
    ));
}

#[test]
fn model_and_mcp_conditions() {
    let p = policy(json!([
        {"id": "models", "effect": "allow", "when": {"models": ["gpt-4o", "llama3-*"]}},
        {"id": "lists", "effect": "allow", "when": {"mcp": {"methods": ["tools/list", "initialize"]}}},
        {"id": "tools", "effect": "allow", "when": {"mcp": {"tools": ["search", "get_*"]}}},
        {"id": "resources", "effect": "allow", "when": {"mcp": {"resources": ["file:///public/*"]}}},
        {"id": "prompts", "effect": "allow", "when": {"mcp": {"methods": ["prompts/get"], "prompts": ["summary"]}}},
        {"id": "no-delete", "effect": "deny", "when": {"mcp": {"tools": ["delete_*"]}}}
    ]));
    let r = request("/v1/chat/completions", &[]);
    assert!(allowed(&p, json!({}), &r.with_model(Some("gpt-4o"))));
    assert!(allowed(&p, json!({}), &r.with_model(Some("llama3-70b"))));
    assert!(!allowed(&p, json!({}), &r.with_model(Some("gpt-4o-mini"))));
    assert!(!allowed(&p, json!({}), &r));
    let cases = [
        (McpCall::new("tools/list"), true),
        (McpCall::new("resources/list"), false),
        (McpCall::targeting("tools/call", "search"), true),
        (McpCall::targeting("tools/call", "get_weather"), true),
        (McpCall::targeting("tools/call", "searchx"), false),
        (McpCall::targeting("tools/call", "delete_everything"), false),
        (McpCall::new("tools/call"), false),
        (
            McpCall::targeting("resources/read", "file:///public/a"),
            true,
        ),
        (
            McpCall::targeting("resources/read", "file:///secret/a"),
            false,
        ),
        (McpCall::targeting("prompts/get", "summary"), true),
        (McpCall::targeting("prompts/get", "search"), false),
    ];
    let mcp = request("/mcp", &[]);
    for (call, expected) in cases {
        assert_eq!(
            allowed(&p, json!({}), &mcp.with_mcp(Some(&call))),
            expected,
            "{call:?}"
        );
    }
    assert!(p.needs_body());
    assert!(p.allows_target(&claims(json!({})), &mcp, TargetKind::Tool, "search"));
    assert!(!p.allows_target(&claims(json!({})), &mcp, TargetKind::Tool, "delete_x"));
}

#[test]
fn deny_rules_come_first_whatever_their_order() {
    let p = policy(json!([
        {"id": "everyone", "effect": "allow"},
        {"id": "no-interns", "effect": "deny", "when": {"claims": [{"claim": "roles", "contains_any": ["intern"]}]}}
    ]));
    let d = p.decide(&claims(json!({"roles": ["intern"]})), &request("/", &[]));
    assert_eq!(
        (d.effect, d.reason, d.rule_label()),
        (Effect::Deny, Reason::RuleDeny, "no-interns")
    );
    let d = p.decide(&claims(json!({"roles": ["staff"]})), &request("/", &[]));
    assert_eq!((d.effect, d.rule_label()), (Effect::Allow, "everyone"));
}

#[test]
fn no_rules_means_default_deny() {
    let d = policy(json!([])).decide(&claims(json!({"roles": ["admin"]})), &request("/", &[]));
    assert_eq!(d, Decision::deny(Reason::DefaultDeny));
}

#[test]
fn dry_run_rules_are_reported_not_enforced() {
    let p = policy(json!([
        {"id": "all", "effect": "allow"},
        {"id": "would-block-interns", "effect": "deny", "dry_run": true,
         "when": {"claims": [{"claim": "roles", "contains_any": ["intern"]}]}}
    ]));
    let d = p.decide(&claims(json!({"roles": ["intern"]})), &request("/", &[]));
    assert_eq!((d.effect, d.rule_label()), (Effect::Allow, "all"));
    let shadow = d.dry_run.expect("dry-run outcome recorded");
    assert_eq!(
        (shadow.effect, shadow.rule_id.as_deref()),
        (Effect::Deny, Some("would-block-interns"))
    );
    let d = p.decide(&claims(json!({"roles": ["staff"]})), &request("/", &[]));
    assert!(d.dry_run.is_none(), "nothing to report when dry run agrees");
}

#[test]
fn a_dry_run_bundle_lets_traffic_pass_and_says_what_it_would_do() {
    let p = policy_with(
        json!({"dry_run": true, "rules": [{"id": "admins", "effect": "allow",
        "when": {"claims": [{"claim": "roles", "contains_any": ["admin"]}]}}]}),
    );
    let d = p.decide(&claims(json!({"roles": ["user"]})), &request("/", &[]));
    assert_eq!((d.effect, d.reason), (Effect::Allow, Reason::DryRun));
    assert_eq!(d.dry_run.unwrap().reason, Reason::DefaultDeny);
    let d = p.deny_for(Reason::MissingToken);
    assert_eq!(
        (d.effect, d.dry_run.unwrap().reason),
        (Effect::Allow, Reason::MissingToken)
    );
    let d = p.decide(&claims(json!({"roles": ["admin"]})), &request("/", &[]));
    assert_eq!((d.effect, d.reason), (Effect::Allow, Reason::RuleAllow));
}

#[test]
fn every_call_of_a_batch_must_be_allowed() {
    let p = policy(
        json!([{"id": "safe-tools", "effect": "allow", "when": {"mcp": {"tools": ["search", "weather"]}}}]),
    );
    let c = claims(json!({}));
    let r = request("/mcp", &[]);
    let ok = [
        McpCall::targeting("tools/call", "search"),
        McpCall::targeting("tools/call", "weather"),
    ];
    assert_eq!(p.decide_calls(&c, &r, &ok).effect, Effect::Allow);
    let mixed = [
        McpCall::targeting("tools/call", "search"),
        McpCall::targeting("tools/call", "delete"),
    ];
    let d = p.decide_calls(&c, &r, &mixed);
    assert_eq!((d.effect, d.reason), (Effect::Deny, Reason::DefaultDeny));
    assert_eq!(
        p.decide_calls(&c, &r, &[]).effect,
        Effect::Deny,
        "no calls: decided as a plain request"
    );
}

#[test]
fn explain_says_which_condition_failed() {
    let p = policy(json!([{"id": "chat", "effect": "allow", "when": {
        "methods": ["POST"], "path": {"exact": "/v1/chat"},
        "claims": [{"claim": "roles", "contains_any": ["model-user"]}]}}]));
    let e = p.explain(
        &claims(json!({"roles": ["viewer"]})),
        &request("/v1/chat", &[]),
    );
    assert_eq!(e.decision.reason, Reason::DefaultDeny);
    let rule = &e.rules[0];
    assert!(!rule.matched);
    let held: Vec<bool> = rule.conditions.iter().map(|c| c.held).collect();
    assert_eq!(held, [true, true, false], "{:?}", rule.conditions);
    assert!(rule.conditions[2].condition.contains("roles"));
    assert_eq!(rule.conditions[2].actual, r#"["viewer"]"#);
}

/// The index only prunes: for many random rules and requests, `decide`
/// equals a brute-force evaluation of every rule (from `explain`).
#[test]
fn the_rule_index_never_changes_a_decision() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    let paths = [
        "/v1/chat",
        "/v1/embed",
        "/mcp",
        "/tenants/a/x",
        "/tenants/b/x",
        "/",
        "/v2/chat",
    ];
    let tools = ["search", "delete", "weather", "get_x"];
    let models = ["m1", "m2", "m3"];
    let roles = ["r1", "r2", "r3"];
    for round in 0..40 {
        let rules: Vec<Value> = (0..30)
            .map(|i| {
                let mut when = json!({});
                match next(6) {
                    0 => when["path"] = json!({"exact": paths[next(paths.len())]}),
                    1 => {
                        let prefix = ["/v1/", "/tenants/", "/v", "/"][next(4)];
                        when["path"] = json!({ "prefix": prefix });
                    }
                    2 => {
                        let template = ["/tenants/{t}/x", "/{a}/chat", "/v1/{x*}"][next(3)];
                        when["path"] = json!({ "template": template });
                    }
                    3 => {
                        let names = [tools[next(4)], "get_*"][..1 + next(2)].to_vec();
                        when["mcp"] = json!({ "tools": names });
                    }
                    4 => when["models"] = json!([models[next(3)]]),
                    _ => {}
                }
                if next(2) == 0 {
                    when["claims"] = json!([{"claim": "roles", "contains_any": [roles[next(3)]]}]);
                }
                let effect = if next(4) == 0 { "deny" } else { "allow" };
                json!({"id": format!("r{i}"), "effect": effect, "dry_run": next(8) == 0, "when": when})
            })
            .collect();
        let p = policy(Value::Array(rules));
        for _ in 0..40 {
            let call = McpCall::targeting("tools/call", tools[next(tools.len())]);
            let r = RequestAttrs::new("POST", paths[next(paths.len())], "h")
                .with_model(Some(models[next(3)]))
                .with_mcp((next(2) == 0).then_some(&call));
            let c = claims(json!({"roles": [roles[next(3)]]}));
            let explained = p.explain(&c, &r);
            let brute = explained
                .rules
                .iter()
                .filter(|e| e.matched && !e.dry_run)
                .map(|e| e.id.clone())
                .next();
            assert_eq!(
                p.decide(&c, &r).rule_id.as_deref(),
                brute.as_deref(),
                "round {round}, request {r:?}"
            );
        }
    }
}
