//! The index must only prune: for random bundles and requests, the
//! indexed decision equals a linear walk over every rule in order (deny
//! rules, then allow rules, first match wins). Vocabularies are small and
//! overlapping so rules collide on keys, and hostile on purpose: case
//! variants, trailing slashes, empty and huge keys, globs next to exact
//! names, requests that hit many buckets at once.

use serde_json::{json, Value};

use super::*;
use crate::bundle::RuleEffect;

/// A small seeded xorshift generator: deterministic, no dependency.
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

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items
            .get(self.below(items.len()))
            .copied()
            .unwrap_or_default()
    }

    /// One to three picks, as a JSON list.
    fn some(&mut self, items: &[&str]) -> Value {
        let n = 1 + self.below(3);
        Value::Array((0..n).map(|_| json!(self.pick(items))).collect())
    }
}

const HUGE: &str = "/x/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const PATHS: &[&str] = &[
    "",
    "v1/chat",
    "/",
    "/v1",
    "/v1/",
    "/V1/",
    "/v1/chat",
    "/v1/chat/",
    "/v1/Chat",
    "/v10/chat",
    "/mcp",
    "/mcp/",
    "/MCP",
    "/t/acme/docs",
    "/t/other/docs",
    "/t//docs",
    "//",
    "/v1//chat",
    HUGE,
];
const PREFIXES: &[&str] = &[
    "", "v1/", "/", "/v1", "/v1/", "/V1/", "/v1/chat", "/mcp", "/t/", "//", "/x/a",
];
const TEMPLATES: &[&str] = &[
    "/t/{tenant}/docs",
    "/v1/{rest*}",
    "/{any}/chat",
    "/mcp",
    "/v1/chat",
];
const MODELS: &[&str] = &[
    "gpt-4", "GPT-4", "gpt-4o", "gpt-*", "g*", "*", "claude", "", "m-2",
];
const TOOLS: &[&str] = &["search", "Search", "search*", "delete", "s*", "*", "", "x"];
const RESOURCES: &[&str] = &[
    "file:///a",
    "file:///*",
    "db://x",
    "search",
    "file:///t/acme/x",
    "file:///t/other/x/y",
    "file:///t/acme/../other/x",
    "FILE:///t/acme/x",
];
const RESOURCE_TEMPLATES: &[&str] = &[
    "file:///t/{tenant}/{path*}",
    "file:///t/{tenant}/x",
    "file:///{any}",
    "db://{table}",
];
/// Argument tests, some on the same paths with opposite outcomes.
const ARGUMENT_TESTS: &[&str] = &[
    r#"{"path":"customer_id","in_claim":"customers"}"#,
    r#"{"path":"customer_id","equals_claim":"tenant"}"#,
    r#"{"path":"amount","max":1000}"#,
    r#"{"path":"amount","min":0,"max":10}"#,
    r#"{"path":"amount","equals":5}"#,
    r#"{"path":"region","one_of":["eu","us"]}"#,
    r#"{"path":"region","prefix":"e"}"#,
    r#"{"path":"items.0","exists":true}"#,
    r#"{"path":"dry","exists":false}"#,
];
/// Call arguments as sent, including numbers a double misreads.
const ARGUMENTS: &[&str] = &[
    r#"{}"#,
    r#"{"customer_id":"acme","amount":5}"#,
    r#"{"customer_id":"other","amount":1000.0000000000000001}"#,
    r#"{"customer_id":["acme"],"amount":5.0,"region":"eu"}"#,
    r#"{"customer_id":"acme","amount":"5","region":"us","items":[1]}"#,
    r#"{"customer_id":5,"amount":1e3,"dry":true,"items":{"0":1}}"#,
];
const MCP_METHODS: &[&str] = &[
    "tools/call",
    "tools/*",
    "resources/read",
    "resources/subscribe",
    "prompts/get",
    "tools/list",
    "initialize",
];
const METHODS: &[&str] = &["GET", "POST", "DELETE"];
/// Peer patterns, valid and not (the generator skips validation; a bad
/// pattern must match nothing on both paths).
const PEERS: &[&str] = &[
    "spiffe://cluster.local/ns/agents/sa/agent",
    "spiffe://cluster.local/ns/agents/*",
    "spiffe://cluster.local/*",
    "spiffe://other.td/ns/agents/sa/agent",
    "spiffe://cluster.local/ns/agents",
    "spiffe:/*",
    "*",
];
/// Peer IDs requests come from.
const PEER_IDS: &[&str] = &[
    "spiffe://cluster.local/ns/agents/sa/agent",
    "spiffe://cluster.local/ns/agents/sa/other",
    "spiffe://cluster.local/ns/agents",
    "spiffe://cluster.local/ns/agents-x/sa/agent",
    "spiffe://other.td/ns/agents/sa/agent",
];
const HOSTS: &[&str] = &["api.local", "API.local", "other"];

fn random_rule(rng: &mut Rng, i: usize) -> Value {
    let mut when = serde_json::Map::new();
    if rng.chance(40) {
        when.insert("methods".into(), rng.some(METHODS));
    }
    if rng.chance(10) {
        when.insert("hosts".into(), rng.some(HOSTS));
    }
    let mut template = false;
    match rng.below(5) {
        0 => {
            when.insert("path".into(), json!({"exact": rng.pick(PATHS)}));
        }
        1 => {
            when.insert("path".into(), json!({"prefix": rng.pick(PREFIXES)}));
        }
        2 => {
            let t = rng.pick(TEMPLATES);
            template = t.contains("{tenant}");
            when.insert("path".into(), json!({ "template": t }));
        }
        _ => {}
    }
    if rng.chance(40) {
        when.insert("models".into(), rng.some(MODELS));
    }
    if rng.chance(45) {
        let mut mcp = serde_json::Map::new();
        if rng.chance(40) {
            mcp.insert("methods".into(), rng.some(MCP_METHODS));
        }
        match rng.below(4) {
            0 | 1 => {
                mcp.insert("tools".into(), rng.some(TOOLS));
            }
            2 => {
                let key = if rng.chance(50) {
                    "resources"
                } else {
                    "prompts"
                };
                mcp.insert(key.into(), rng.some(RESOURCES));
            }
            _ => {}
        }
        let mut templates = false;
        if rng.chance(20) {
            mcp.insert("resource_templates".into(), rng.some(RESOURCE_TEMPLATES));
            templates = true;
        }
        if rng.chance(25) {
            let n = 1 + rng.below(2);
            let tests: Vec<Value> = (0..n)
                .map(|_| serde_json::from_str(rng.pick(ARGUMENT_TESTS)).unwrap_or_default())
                .collect();
            mcp.insert("arguments".into(), Value::Array(tests));
        }
        when.insert("mcp".into(), Value::Object(mcp));
        // Deserialised without validation, so the capture may be missing
        // from some templates: the index must agree all the same.
        if templates && rng.chance(50) {
            when.insert(
                "relations".into(),
                json!([{"claim": "tenant", "equals_capture": rng.pick(&["tenant", "table"])}]),
            );
        }
    }
    let mut claims = Vec::new();
    if rng.chance(30) {
        let role = rng.pick(&["admin", "user", "viewer"]);
        claims.push(json!({"claim": "roles", "contains_any": [role]}));
    }
    // String equality (indexed by claim), and its look-alikes: a number,
    // `one_of` mixing types, a claim that is an array, a nested path.
    for _ in 0..rng.below(3) {
        let claim = rng.pick(&["tenant", "sub", "org.id", "roles", "level"]);
        claims.push(match rng.below(5) {
            0 | 1 => json!({"claim": claim, "equals": rng.pick(&["acme", "other", "", "u", "5"])}),
            2 => json!({"claim": claim, "one_of": [rng.pick(&["acme", "u"]), rng.pick(&["other", "x"])]}),
            3 => json!({"claim": claim, "one_of": ["acme", 5]}),
            _ => json!({"claim": claim, "equals": 5}),
        });
    }
    if !claims.is_empty() {
        when.insert("claims".into(), Value::Array(claims));
    }
    if rng.chance(10) {
        when.insert(
            "headers".into(),
            json!([{"name": "x-team", "equals": rng.pick(&["a", "b"])}]),
        );
    }
    if template && rng.chance(50) {
        when.insert(
            "relations".into(),
            json!([{"claim": "tenant", "equals_path": "tenant"}]),
        );
    }
    if rng.chance(5) {
        when.insert("time".into(), json!({"hours": [9, 17]}));
    }
    if rng.chance(20) {
        when.insert("peers".into(), rng.some(PEERS));
    }
    json!({
        "id": format!("r{i}"),
        "effect": if rng.chance(30) { "deny" } else { "allow" },
        "dry_run": rng.chance(10),
        "when": when,
    })
}

fn random_policy(rng: &mut Rng) -> Policy {
    let n = rng.below(40);
    let rules: Vec<Value> = (0..n).map(|i| random_rule(rng, i)).collect();
    let text = json!({"name": "diff", "version": 1, "dry_run": rng.chance(5), "rules": rules});
    // Deserialised without validation: the index must stay exact even for
    // keys validation refuses (empty models, tools, paths).
    let compiled = serde_json::from_value::<Bundle>(text).map(Policy::new);
    match compiled {
        Ok(Ok(policy)) => policy,
        _ => unreachable!("generated bundles deserialise and compile"),
    }
}

/// The reference: every rule, in bundle order, no index.
fn evaluate_linear(
    policy: &Policy,
    claims: &Claims,
    request: &RequestAttrs<'_>,
    include_dry_run: bool,
) -> (Effect, Option<Arc<str>>, Reason) {
    for (effect, reason, decided) in [
        (RuleEffect::Deny, Reason::RuleDeny, Effect::Deny),
        (RuleEffect::Allow, Reason::RuleAllow, Effect::Allow),
    ] {
        let hit = policy
            .bundle
            .rules
            .iter()
            .zip(policy.rules.iter())
            .filter(|(r, _)| r.effect == effect && (include_dry_run || !r.dry_run))
            .find(|(r, c)| c.matches(r, claims, request, &mut Tracer(None)));
        if let Some((_, compiled)) = hit {
            return (decided, Some(compiled.id.clone()), reason);
        }
    }
    (Effect::Deny, None, Reason::DefaultDeny)
}

fn decide_linear(policy: &Policy, claims: &Claims, request: &RequestAttrs<'_>) -> Decision {
    policy.decide_with(|dry| evaluate_linear(policy, claims, request, dry))
}

fn random_call(rng: &mut Rng) -> Option<McpCall> {
    let method = rng.pick(MCP_METHODS);
    let mut call = match rng.below(4) {
        0 => return None,
        1 => McpCall::new(method),
        _ => {
            let all: Vec<&str> = TOOLS.iter().chain(RESOURCES).copied().collect();
            McpCall::targeting(method, rng.pick(&all))
        }
    };
    call.arguments = match rng.below(4) {
        0 => CallArguments::Absent,
        1 => CallArguments::Listing,
        _ => {
            let text = rng.pick(ARGUMENTS);
            match crate::strict_json::parse_keeping_floats(
                text.as_bytes(),
                crate::strict_json::Options::REQUEST,
            ) {
                Ok((value, floats)) => CallArguments::Sent {
                    value,
                    floats: Arc::new(floats),
                },
                Err(_) => unreachable!("argument samples are strict JSON"),
            }
        }
    };
    Some(call)
}

fn random_claims(rng: &mut Rng) -> Claims {
    let roles: Vec<&str> = (0..rng.below(3))
        .map(|_| rng.pick(&["admin", "user", "viewer"]))
        .collect();
    let tenant = match rng.below(6) {
        0 => json!(5),
        1 => json!(["acme"]),
        2 => Value::Null,
        _ => json!(rng.pick(&["acme", "other", ""])),
    };
    let org = json!({"id": rng.pick(&["acme", "other"])});
    let level = if rng.chance(50) { json!(5) } else { json!("5") };
    let customers = match rng.below(3) {
        0 => json!(["acme", 5]),
        1 => json!("acme"),
        _ => json!([]),
    };
    match json!({"sub": rng.pick(&["u", "x"]), "roles": roles, "tenant": tenant, "org": org, "level": level, "customers": customers})
    {
        Value::Object(map) => Claims::new(map),
        _ => unreachable!("an object literal"),
    }
}

#[test]
fn indexed_decisions_equal_a_linear_walk() {
    let mut rng = Rng(0x5eed_1dec_0000_0001);
    let mut compared = 0usize;
    let mut matched_rules = 0usize;
    let (mut by_arguments, mut by_templates) = (0usize, 0usize);
    for _ in 0..1_500 {
        let policy = random_policy(&mut rng);
        for _ in 0..25 {
            let mut path = rng.pick(PATHS).to_string();
            if rng.chance(15) {
                path.push('/');
            }
            if rng.chance(5) {
                path = path.to_uppercase();
            }
            let method = rng.pick(&["GET", "POST", "DELETE", "get", ""]);
            let host = rng.pick(HOSTS);
            let model = rng.chance(60).then(|| rng.pick(MODELS));
            let team = [("x-team", rng.pick(&["a", "b"]))];
            let call = random_call(&mut rng);
            let peer = rng
                .chance(50)
                .then(|| crate::peer::SpiffeId::parse(rng.pick(PEER_IDS)).ok())
                .flatten();
            // A workload-only caller has no claims at all.
            let workload_only = peer.is_some() && rng.chance(30);
            let claims = if workload_only {
                Claims::default()
            } else {
                random_claims(&mut rng)
            };
            let now = [0u64, 10 * 3600, 20 * 3600][rng.below(3)];
            let request = RequestAttrs::new(method, &path, host)
                .with_headers(if rng.chance(50) { &team } else { &[] })
                .with_model(model)
                .with_mcp(call.as_ref())
                .with_peer(peer.as_ref(), workload_only)
                .at(now);
            let indexed = policy.decide(&claims, &request);
            let linear = decide_linear(&policy, &claims, &request);
            assert_eq!(
                format!("{indexed:?}"),
                format!("{linear:?}"),
                "request {request:?} under {:?}",
                policy.bundle.rules
            );
            if let Some(kind) = call.as_ref().and_then(McpCall::target_kind) {
                let name = call
                    .as_ref()
                    .and_then(|c| c.target.as_deref())
                    .unwrap_or_default();
                let plain = request.with_mcp(None);
                let listed = McpCall {
                    arguments: CallArguments::Listing,
                    ..McpCall::targeting(kind.call_method(), name)
                };
                let reference =
                    evaluate_linear(&policy, &claims, &plain.with_mcp(Some(&listed)), false);
                assert_eq!(
                    policy.allows_target(&claims, &plain, kind, name),
                    reference.0 == Effect::Allow
                );
            }
            compared += 1;
            matched_rules += usize::from(linear.rule_id.is_some());
            let deep = |m: &crate::bundle::McpCondition| {
                (!m.arguments.is_empty(), !m.resource_templates.is_empty())
            };
            if let Some(rule) = linear
                .rule_id
                .as_ref()
                .and_then(|id| policy.bundle.rules.iter().find(|r| r.id.as_str() == &**id))
            {
                let (args, templates) = rule.when.mcp.as_ref().map(deep).unwrap_or_default();
                by_arguments += usize::from(args);
                by_templates += usize::from(templates);
            }
        }
    }
    // ...and decisions made by argument and resource-template rules.
    assert!(
        by_arguments > 20 && by_templates > 0,
        "{by_arguments} argument and {by_templates} template rule decisions"
    );
    // The generator must exercise matches, not only default denials.
    assert!(
        matched_rules * 4 > compared,
        "{matched_rules} of {compared} matched a rule"
    );
}

/// Many rules sharing keys of several kinds at once: the request hits a
/// tool, model, path, segment, MCP-method and HTTP-method bucket together,
/// and each rule is filed under whichever of its keys is rarest.
#[test]
fn requests_hitting_many_buckets_keep_rule_order() {
    let mut rules = Vec::new();
    for i in 0..300 {
        let mut when = json!({"path": {"exact": "/mcp"}, "methods": ["POST"]});
        match i % 5 {
            0 => when["mcp"] = json!({"tools": [format!("t{}", i % 7)]}),
            1 => when["models"] = json!([format!("m{}", i % 3)]),
            2 => when["mcp"] = json!({"methods": ["tools/call"]}),
            3 => when["path"] = json!({"prefix": "/mcp/"}),
            _ => {
                when["claims"] =
                    json!([{"claim": "roles", "contains_any": [format!("r{}", i % 11)]}])
            }
        }
        let effect = if i % 13 == 0 { "deny" } else { "allow" };
        rules.push(json!({"id": format!("r{i}"), "effect": effect, "when": when}));
    }
    let text = json!({"name": "many", "version": 1, "rules": rules}).to_string();
    let Ok(policy) = Policy::compile(text.as_bytes()) else {
        unreachable!("valid bundle")
    };
    let mut rng = Rng(7);
    for _ in 0..2_000 {
        let tool = format!("t{}", rng.below(8));
        let model = format!("m{}", rng.below(4));
        let path = rng.pick(&["/mcp", "/mcp/", "/mcp/x", "/MCP"]);
        let call = McpCall::targeting(rng.pick(&["tools/call", "prompts/get"]), &tool);
        let claims = random_claims(&mut rng);
        let request = RequestAttrs::new(rng.pick(&["POST", "GET"]), path, "h")
            .with_model(Some(&model))
            .with_mcp(Some(&call));
        assert_eq!(
            format!("{:?}", policy.decide(&claims, &request)),
            format!("{:?}", decide_linear(&policy, &claims, &request))
        );
    }
}

/// Rules made mostly of argument tests and resource templates (with
/// captures in relations), so most decisions turn on them: the index
/// files such rules by tool, resource or method and must still agree with
/// the linear walk, for calls, listings and absent arguments alike.
#[test]
fn argument_and_template_rules_keep_index_and_walk_equal() {
    let mut rng = Rng(0xa46_5eed);
    let (mut compared, mut matched) = (0usize, 0usize);
    for _ in 0..400 {
        let rules: Vec<Value> = (0..1 + rng.below(12))
            .map(|i| {
                let mut mcp = serde_json::Map::new();
                let mut when = serde_json::Map::new();
                if rng.chance(50) {
                    mcp.insert("resource_templates".into(), rng.some(RESOURCE_TEMPLATES));
                    if rng.chance(60) {
                        when.insert(
                            "relations".into(),
                            json!([{"claim": "tenant", "equals_capture": "tenant"}]),
                        );
                    }
                    if rng.chance(30) {
                        mcp.insert("resources".into(), rng.some(RESOURCES));
                    }
                } else {
                    let tests: Vec<Value> = (0..1 + rng.below(2))
                        .map(|_| serde_json::from_str(rng.pick(ARGUMENT_TESTS)).unwrap_or_default())
                        .collect();
                    mcp.insert("arguments".into(), Value::Array(tests));
                    if rng.chance(60) {
                        mcp.insert("tools".into(), rng.some(&["search", "x", "s*"]));
                    }
                }
                if rng.chance(30) {
                    mcp.insert("methods".into(), rng.some(MCP_METHODS));
                }
                when.insert("mcp".into(), Value::Object(mcp));
                json!({
                    "id": format!("d{i}"),
                    "effect": if rng.chance(30) { "deny" } else { "allow" },
                    "when": when,
                })
            })
            .collect();
        let text = json!({"name": "deep", "version": 1, "rules": rules});
        let Ok(Ok(policy)) = serde_json::from_value::<Bundle>(text).map(Policy::new) else {
            unreachable!("generated bundles deserialise and compile")
        };
        for _ in 0..40 {
            let Some(mut call) = random_call(&mut rng) else {
                continue;
            };
            if rng.chance(50) {
                let (method, target) = if rng.chance(50) {
                    ("resources/read", rng.pick(RESOURCES))
                } else {
                    (
                        rng.pick(&["tools/call", "prompts/get"]),
                        rng.pick(&["search", "x"]),
                    )
                };
                call.method = method.to_string();
                call.target = Some(target.to_string());
            }
            let claims = random_claims(&mut rng);
            let request = RequestAttrs::new("POST", "/mcp", "h").with_mcp(Some(&call));
            let indexed = policy.decide(&claims, &request);
            let linear = decide_linear(&policy, &claims, &request);
            assert_eq!(
                format!("{indexed:?}"),
                format!("{linear:?}"),
                "call {call:?} under {:?}",
                policy.bundle.rules
            );
            compared += 1;
            matched += usize::from(linear.rule_id.is_some());
        }
    }
    assert!(
        matched * 8 > compared,
        "{matched} of {compared} matched a rule"
    );
}
