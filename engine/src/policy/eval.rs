//! Evaluating one compiled rule against a request, optionally recording
//! why each condition held or failed (for `explain`).

use serde::Serialize;
use serde_json::Value;

use crate::arguments::CallArguments;
use crate::bundle::{
    ClaimCondition, ClaimTest, Conditions, PathCondition, Relation, Rule, RuleEffect, TimeWindow,
    Weekday,
};
use crate::claims::Claims;
use crate::mcp::{McpCall, TargetKind};
use crate::peer::{self, PeerPattern};
use crate::request::RequestAttrs;
use crate::resource_template::ResourceTemplate;
use crate::strict_json::FloatTexts;
use crate::template::PathTemplate;

/// What a rule needs besides its text to be evaluated: kept alongside the
/// bundle's rules (same positions), never a second copy of them.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// Rule id, shared cheaply with every decision it makes.
    pub id: std::sync::Arc<str>,
    /// The parsed path template, when the path condition is one.
    pub template: Option<PathTemplate>,
    /// The `peers` patterns, compiled (a bad one matches nothing).
    pub peers: Box<[PeerPattern]>,
    /// The parsed `mcp.resource_templates`, in bundle order.
    pub resource_templates: Vec<ResourceTemplate>,
}

/// How one condition fared, for explanations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionTrace {
    /// The condition, in the bundle's words.
    pub condition: String,
    /// Whether it held.
    pub held: bool,
    /// What the request had, when useful.
    pub actual: String,
}

/// Records condition outcomes when explaining; free otherwise.
pub struct Tracer<'t>(pub Option<&'t mut Vec<ConditionTrace>>);

impl Tracer<'_> {
    /// Records one outcome; returns whether evaluation may stop early.
    fn record(
        &mut self,
        held: bool,
        condition: impl FnOnce() -> String,
        actual: impl FnOnce() -> String,
    ) -> bool {
        match &mut self.0 {
            Some(trace) => {
                trace.push(ConditionTrace {
                    condition: condition(),
                    held,
                    actual: actual(),
                });
                false
            }
            None => !held,
        }
    }
}

/// Matches a name against a list entry: exact, or prefix with a final `*`.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

fn any_glob(patterns: &[String], value: Option<&str>) -> bool {
    value.is_some_and(|v| patterns.iter().any(|p| glob_match(p, v)))
}

fn show(value: Option<&str>) -> String {
    value.map_or_else(|| "(none)".to_string(), str::to_string)
}

fn show_json(value: Option<&Value>) -> String {
    value.map_or_else(|| "(absent)".to_string(), Value::to_string)
}

impl CompiledRule {
    /// Compiles a validated rule (its template parsed once).
    pub fn new(rule: &Rule) -> Self {
        let template = match &rule.when.path {
            Some(PathCondition::Template(t)) => PathTemplate::parse(t).ok(),
            _ => None,
        };
        let resource_templates = rule
            .when
            .mcp
            .iter()
            .flat_map(|m| &m.resource_templates)
            .filter_map(|t| ResourceTemplate::parse(t).ok())
            .collect();
        Self {
            id: rule.id.as_str().into(),
            template,
            peers: rule
                .when
                .peers
                .iter()
                .map(|p| PeerPattern::compile(p))
                .collect(),
            resource_templates,
        }
    }

    /// Whether every condition holds. With a tracer that records, every
    /// condition is evaluated and recorded; otherwise the first failure
    /// stops evaluation.
    /// `rule` is the rule this was compiled from.
    pub fn matches(
        &self,
        rule: &Rule,
        claims: &Claims,
        request: &RequestAttrs<'_>,
        tracer: &mut Tracer<'_>,
    ) -> bool {
        let when: &Conditions = &rule.when;
        let mut all = true;
        macro_rules! check {
            ($held:expr, $cond:expr, $actual:expr) => {{
                let held: bool = $held;
                all &= held;
                if tracer.record(held, || $cond, || $actual) {
                    return false;
                }
            }};
        }
        if request.workload_only && rule.effect == RuleEffect::Allow {
            check!(
                peer::admits_workload_only(when),
                "workload-only caller: allow rule names peers and tests no claims".to_string(),
                show(request.peer.map(|p| p.as_str()))
            );
        }
        if !when.peers.is_empty() {
            check!(
                peer::any_matches(&self.peers, request.peer),
                format!("peer in {:?}", when.peers),
                show(request.peer.map(|p| p.as_str()))
            );
        }
        if !when.methods.is_empty() {
            check!(
                when.methods.iter().any(|m| m == request.method),
                format!("method in {:?}", when.methods),
                request.method.to_string()
            );
        }
        if !when.hosts.is_empty() {
            check!(
                when.hosts
                    .iter()
                    .any(|h| h.eq_ignore_ascii_case(request.host)),
                format!("host in {:?}", when.hosts),
                request.host.to_string()
            );
        }
        if let Some(path) = &when.path {
            let held = match path {
                PathCondition::Exact(p) => request.path == p,
                PathCondition::Prefix(p) => request.path.starts_with(p.as_str()),
                PathCondition::Template(_) => self
                    .template
                    .as_ref()
                    .is_some_and(|t| t.matches(request.path, None).is_some()),
            };
            check!(held, describe_path(path), request.path.to_string());
        }
        for h in &when.headers {
            let actual = request.header(&h.name);
            let held = match (&h.equals, h.exists) {
                (Some(expected), _) => actual == Some(expected.as_str()),
                (None, Some(exists)) => actual.is_some() == exists,
                (None, None) => false,
            };
            check!(
                held,
                format!(
                    "header {} {}",
                    h.name,
                    h.equals.as_ref().map_or_else(
                        || format!("exists={:?}", h.exists),
                        |e| format!("equals {e:?}")
                    )
                ),
                show(actual)
            );
        }
        for c in &when.claims {
            check!(
                claim_holds(c, claims),
                format!("claim {} {}", c.claim, describe_test(&c.test)),
                show_json(claims.get(&c.claim))
            );
        }
        if !when.models.is_empty() {
            check!(
                any_glob(&when.models, request.model),
                format!("model in {:?}", when.models),
                show(request.model)
            );
        }
        if let Some(mcp) = &when.mcp {
            let call = request.mcp;
            if !mcp.methods.is_empty() {
                check!(
                    any_glob(&mcp.methods, call.map(|c| c.method.as_str())),
                    format!("mcp method in {:?}", mcp.methods),
                    show(call.map(|c| c.method.as_str()))
                );
            }
            for (names, method, label) in [
                (&mcp.tools, "tools/call", "tool"),
                (&mcp.resources, "resources/read", "resource"),
                (&mcp.prompts, "prompts/get", "prompt"),
            ] {
                if names.is_empty() {
                    continue;
                }
                let kind_matches = call
                    .is_some_and(|c| c.target_kind() == crate::mcp::TargetKind::of_method(method));
                let target = call
                    .filter(|_| kind_matches)
                    .and_then(|c| c.target.as_deref());
                check!(
                    any_glob(names, target),
                    format!("mcp {label} in {names:?}"),
                    show(target)
                );
            }
            if !mcp.resource_templates.is_empty() {
                let uri = resource_uri(call);
                check!(
                    uri.is_some_and(|u| self.resource_capture(u, None).is_some()),
                    format!("mcp resource template in {:?}", mcp.resource_templates),
                    show(uri)
                );
            }
            let args_call = call
                .filter(|c| matches!(c.target_kind(), Some(TargetKind::Tool | TargetKind::Prompt)));
            for test in &mcp.arguments {
                let held = match args_call.map(|c| &c.arguments) {
                    None => false,
                    Some(CallArguments::Listing) => rule.effect == RuleEffect::Allow,
                    Some(CallArguments::Absent) => test.holds(None, &FloatTexts::default(), claims),
                    Some(CallArguments::Sent { value, floats }) => {
                        test.holds(Some(value), floats, claims)
                    }
                };
                check!(
                    held,
                    format!("mcp argument {}", test.describe()),
                    show_argument(args_call, test.path())
                );
            }
        }
        for r in &when.relations {
            check!(
                self.relation_holds(r, claims, request),
                describe_relation(r),
                show_json(claims.get(&r.claim))
            );
        }
        if !when.prompt_pii.is_empty() {
            check!(
                when.prompt_pii
                    .iter()
                    .any(|t| request.prompt_pii.contains(*t)),
                format!("prompt_pii in {:?}", when.prompt_pii),
                format!("{:?}", request.prompt_pii.iter().collect::<Vec<_>>())
            );
        }
        if let Some(window) = &when.time {
            check!(
                time_holds(window, request.now_unix),
                describe_window(window),
                describe_time(request.now_unix)
            );
        }
        all
    }

    fn relation_holds(
        &self,
        relation: &Relation,
        claims: &Claims,
        request: &RequestAttrs<'_>,
    ) -> bool {
        let Some(claim) = claims.get(&relation.claim).and_then(Value::as_str) else {
            return false;
        };
        let other = match (
            &relation.equals_path,
            &relation.equals_header,
            &relation.equals_capture,
        ) {
            (Some(capture), _, _) => self
                .template
                .as_ref()
                .and_then(|t| t.matches(request.path, Some(capture))),
            (None, Some(header), _) => request.header(header),
            (None, None, Some(capture)) => {
                resource_uri(request.mcp).and_then(|uri| self.resource_capture(uri, Some(capture)))
            }
            (None, None, None) => None,
        };
        // Empty captures never match, so an empty claim cannot equal one.
        other.is_some_and(|o| !o.is_empty() && o == claim)
    }
}

impl CompiledRule {
    /// Capture `want` of the first resource template matching `uri`
    /// (`Some("")` for `None`).
    fn resource_capture<'u>(&self, uri: &'u str, want: Option<&str>) -> Option<&'u str> {
        self.resource_templates
            .iter()
            .find_map(|t| t.matches(uri, want))
    }
}

/// The URI of a resource call.
fn resource_uri(call: Option<&McpCall>) -> Option<&str> {
    call.filter(|c| c.target_kind() == Some(TargetKind::Resource))
        .and_then(|c| c.target.as_deref())
}

/// What a call sent at an argument path, for explanations.
fn show_argument(call: Option<&McpCall>, path: &crate::arguments::ArgumentPath) -> String {
    match call.map(|c| &c.arguments) {
        Some(CallArguments::Sent { value, .. }) => show_json(path.get(value)),
        Some(CallArguments::Listing) => "(listing)".to_string(),
        _ => "(absent)".to_string(),
    }
}

fn describe_path(path: &PathCondition) -> String {
    match path {
        PathCondition::Exact(p) => format!("path exact {p:?}"),
        PathCondition::Prefix(p) => format!("path prefix {p:?}"),
        PathCondition::Template(t) => format!("path template {t:?}"),
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

fn describe_window(window: &TimeWindow) -> String {
    let mut text = String::from("time (UTC)");
    if !window.days.is_empty() {
        let days: Vec<&str> = window.days.iter().map(|d| weekday_name(*d)).collect();
        text.push_str(&format!(" on {}", days.join(",")));
    }
    if let Some([from, to]) = window.hours {
        text.push_str(&format!(" from {from:02}:00 to {to:02}:00"));
    }
    text
}

fn describe_time(now: u64) -> String {
    format!(
        "{} {:02}:{:02} UTC",
        weekday_name(Weekday::of_unix(now)),
        (now / 3600) % 24,
        (now / 60) % 60
    )
}

fn describe_test(test: &ClaimTest) -> String {
    serde_json::to_string(test).unwrap_or_default()
}

fn describe_relation(r: &Relation) -> String {
    match (&r.equals_path, &r.equals_header, &r.equals_capture) {
        (Some(c), _, _) => format!("claim {} equals path capture {{{c}}}", r.claim),
        (_, Some(h), _) => format!("claim {} equals header {h}", r.claim),
        (_, _, Some(c)) => format!("claim {} equals resource capture {{{c}}}", r.claim),
        _ => format!("claim {} relation", r.claim),
    }
}

fn time_holds(window: &TimeWindow, now: u64) -> bool {
    if !window.days.is_empty() && !window.days.contains(&Weekday::of_unix(now)) {
        return false;
    }
    match window.hours {
        Some([from, to]) => {
            let hour = ((now / 3600) % 24) as u8;
            if from < to {
                (from..to).contains(&hour)
            } else {
                hour >= from || hour < to
            }
        }
        None => true,
    }
}

/// Numbers compare by value so `1` and `1.0` are equal (Envoy metadata
/// turns every JSON number into a double).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The string members of a claim: array elements, or the words of a
/// space-separated string such as OAuth's `scope`.
fn has_member(value: &Value, wanted: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some(wanted)),
        Value::String(s) => s.split(' ').any(|w| w == wanted),
        _ => false,
    }
}

/// Whether one claim condition holds for these claims.
pub fn claim_holds(condition: &ClaimCondition, claims: &Claims) -> bool {
    let value = claims.get(&condition.claim);
    match (&condition.test, value) {
        (ClaimTest::Exists(expected), v) => v.is_some() == *expected,
        (_, None) => false,
        (ClaimTest::Equals(expected), Some(v)) => json_eq(v, expected),
        (ClaimTest::OneOf(options), Some(v)) => options.iter().any(|o| json_eq(v, o)),
        (ClaimTest::ContainsAny(wanted), Some(v)) => wanted.iter().any(|w| has_member(v, w)),
        (ClaimTest::ContainsAll(wanted), Some(v)) => wanted.iter().all(|w| has_member(v, w)),
        (ClaimTest::Prefix(prefix), Some(v)) => {
            v.as_str().is_some_and(|s| s.starts_with(prefix.as_str()))
        }
        (ClaimTest::Gt(n), Some(v)) => v.as_f64().is_some_and(|x| x > *n),
        (ClaimTest::Ge(n), Some(v)) => v.as_f64().is_some_and(|x| x >= *n),
        (ClaimTest::Lt(n), Some(v)) => v.as_f64().is_some_and(|x| x < *n),
        (ClaimTest::Le(n), Some(v)) => v.as_f64().is_some_and(|x| x <= *n),
    }
}
