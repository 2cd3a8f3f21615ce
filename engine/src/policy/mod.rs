//! A bundle compiled for evaluation, and the decision procedure.
//!
//! Semantics: deny rules are checked first, then allow rules; when no allow
//! rule matches the request is denied (`default_deny`). Dry-run rules are
//! evaluated alongside and reported, never enforced; a dry-run bundle lets
//! every request through and reports what it would have decided.

mod compact;
#[cfg(test)]
mod differential;
mod eval;
mod index;
mod needs;

use std::sync::Arc;

use serde::Serialize;

pub use eval::{claim_holds, glob_match, CompiledRule, ConditionTrace};
pub use needs::BodyNeeds;

use crate::arguments::ArgumentPath;
use crate::arguments::CallArguments;
use crate::bundle::{Bundle, BundleError, RuleEffect};
use crate::claims::Claims;
use crate::decision::{Decision, DryRunOutcome, Effect, Reason};
use crate::jwt::Verifier;
use crate::mcp::{read_body_with, BodyAttrs, BodyError, BodyOptions, McpCall, TargetKind};
use crate::pii::Scanner;
use crate::prompt_pii::{PiiSet, PromptClassifier};
use crate::rate_limit::{CompiledLimit, LimitHit};
use crate::request::RequestAttrs;
use crate::resource::ProtectedResource;
use crate::routes::{as_rule, CompiledRoutes, RouteChoice};
use eval::Tracer;
use index::{ClaimSlots, KindSet, RequestKeys, RuleIndex};

/// An active policy: the bundle plus its compiled, indexed rules.
#[derive(Debug, Clone)]
pub struct Policy {
    bundle: Bundle,
    /// Parallel to `bundle.rules`: the bundle keeps the only copy of each
    /// rule's text.
    rules: Box<[CompiledRule]>,
    deny: RuleIndex,
    allow: RuleIndex,
    /// The keys either index looks up: a request hashes only these.
    key_kinds: KindSet,
    /// The claim names both indexes file string-equality rules under.
    claim_slots: ClaimSlots,
    has_dry_run_rules: bool,
    body_needs: BodyNeeds,
    needs_peer: bool,
    /// Every argument path a rule reads, deduplicated: what bodies are
    /// checked along. Empty when no rule reads arguments.
    argument_paths: Vec<ArgumentPath>,
    /// Whether some rule names resources or matches resource templates.
    canonical_uris: bool,
    header_names: Vec<String>,
    verifier: Option<Verifier>,
    scanner: Option<Arc<Scanner>>,
    /// The `resource` section compiled (metadata, challenges, audiences).
    resource: Option<ProtectedResource>,
    /// The `routes` section compiled.
    routes: Option<CompiledRoutes>,
    /// Classifies prompts for `prompt_pii` conditions (rules or routes).
    prompt: Option<PromptClassifier>,
    /// `limits.rate`, compiled (bundle order).
    limits: Box<[CompiledLimit]>,
}

/// A tracer that records nothing (plain evaluation).
pub(crate) fn no_trace() -> Tracer<'static> {
    Tracer(None)
}

/// One rule's evaluation, for `explain`.
#[derive(Debug, Clone, Serialize)]
pub struct RuleExplanation {
    /// Rule id.
    pub id: String,
    /// `allow` or `deny`.
    pub effect: RuleEffect,
    /// Whether it is a dry-run rule.
    pub dry_run: bool,
    /// Whether every condition held.
    pub matched: bool,
    /// Each condition and whether it held.
    pub conditions: Vec<ConditionTrace>,
}

/// The answer to "why was I (not) allowed?".
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The decision the filter makes.
    pub decision: Decision,
    /// Every rule in evaluation order (deny rules first).
    pub rules: Vec<RuleExplanation>,
}

/// A request refused for its body: the reason (`body_too_large` or
/// `invalid_body`) and, for invalid bodies, the finer code (`bom`,
/// `duplicate_key`, `model_mismatch`, ...) for the reply and access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}{}", reason.as_str(), detail.map(|d| format!(" ({d})")).unwrap_or_default())]
pub struct BodyRefusal {
    /// The decision reason.
    pub reason: Reason,
    /// The finer code, when there is one.
    pub detail: Option<&'static str>,
}

impl BodyRefusal {
    fn invalid(detail: &'static str) -> Self {
        Self {
            reason: Reason::InvalidBody,
            detail: Some(detail),
        }
    }
}

impl Policy {
    /// Parses, validates and compiles bundle text in one step: what the
    /// filter activates and what the control service and CLI accept are
    /// the same thing.
    pub fn compile(text: &[u8]) -> Result<Self, BundleError> {
        Self::new(Bundle::parse(text)?)
    }

    /// Compiles a bundle once: templates parsed, rules indexed, token
    /// verifier and PII scanner built. Any part that does not compile is
    /// an error: nothing is silently left out.
    pub fn new(mut bundle: Bundle) -> Result<Self, BundleError> {
        compact::shrink_rules(&mut bundle.rules);
        let rules: Box<[CompiledRule]> = bundle.rules.iter().map(CompiledRule::new).collect();
        let claim_slots = ClaimSlots::choose(&bundle.rules);
        let deny = RuleIndex::build(&bundle.rules, &rules, &claim_slots, |r| {
            r.effect == RuleEffect::Deny
        });
        let allow = RuleIndex::build(&bundle.rules, &rules, &claim_slots, |r| {
            r.effect == RuleEffect::Allow
        });
        let limits: Box<[CompiledLimit]> =
            bundle.limits.rate.iter().map(CompiledLimit::new).collect();
        let limit_rules: Vec<crate::bundle::Rule> =
            limits.iter().map(|l| l.rule().clone()).collect();
        // Route and limit conditions read the request like rules do.
        let route_rules: Vec<crate::bundle::Rule> = bundle
            .routes
            .iter()
            .flat_map(|r| &r.rules)
            .map(as_rule)
            .collect();
        let every_rule = || {
            bundle
                .rules
                .iter()
                .chain(route_rules.iter())
                .chain(limit_rules.iter())
        };
        let mut header_names: Vec<String> =
            bundle.attributes.model_header.iter().cloned().collect();
        for rule in every_rule() {
            let when = &rule.when;
            header_names.extend(when.headers.iter().map(|h| h.name.clone()));
            header_names.extend(
                when.relations
                    .iter()
                    .filter_map(|r| r.equals_header.clone()),
            );
        }
        header_names.sort();
        header_names.dedup();
        header_names.shrink_to_fit();
        let verifier = match &bundle.identity.verify {
            Some(v) => Some(Verifier::new(v).map_err(|e| {
                BundleError::single(format!("$.identity.verify.{}", e.path()), e.reason())
            })?),
            None => None,
        };
        let scanner = if bundle.pii.enabled {
            let scanner = Scanner::new(&bundle.pii.scanner_config())
                .map_err(|e| BundleError::single("$.pii", e.to_string()))?;
            Some(Arc::new(scanner))
        } else {
            None
        };
        let resource = match &bundle.resource {
            Some(settings) => Some(
                ProtectedResource::new(settings, &bundle.rules)
                    .map_err(|e| BundleError::single("$.resource", e))?,
            ),
            None => None,
        };
        let mut argument_paths: Vec<ArgumentPath> = Vec::new();
        let mut canonical_uris = false;
        for mcp in every_rule().filter_map(|r| r.when.mcp.as_ref()) {
            // Names and globs are matched on the URI as sent, like
            // templates: `file:///public/*` must not match
            // `file:///public/../etc/passwd`.
            canonical_uris |= !mcp.resource_templates.is_empty() || !mcp.resources.is_empty();
            for test in &mcp.arguments {
                if !argument_paths.contains(test.path()) {
                    argument_paths.push(test.path().clone());
                }
            }
        }
        let mut prompt_types: Vec<crate::pii::PiiType> = every_rule()
            .flat_map(|r| r.when.prompt_pii.iter().copied())
            .collect();
        prompt_types.sort();
        prompt_types.dedup();
        let prompt = PromptClassifier::new(&prompt_types, &bundle.pii.custom_terms)
            .map_err(|e| BundleError::single("$.pii.custom_terms", e.to_string()))?;
        let mut body_needs = BodyNeeds::of(&bundle.rules).with_mcp(bundle.tool_pins.is_some());
        if let Some(routes) = &bundle.routes {
            let route_needs = BodyNeeds::of(&route_rules);
            body_needs.mcp |= route_needs.mcp;
            body_needs.model |= route_needs.model;
            // A model rewrite changes the body, a fallback replays it: it
            // must be held and read.
            body_needs.other |= route_needs.other
                || routes
                    .rules
                    .iter()
                    .any(|r| !r.models.is_empty() || r.fallback.is_some());
        }
        // Limits read what their conditions and keys read.
        let body_needs = body_needs
            .union(BodyNeeds::of(&limit_rules))
            .with_mcp(limits.iter().any(|l| l.by.tool))
            .with_model(limits.iter().any(|l| l.by.model));
        let needs_peer = every_rule().any(|r| !r.when.peers.is_empty())
            || bundle
                .identity
                .workloads
                .as_ref()
                .is_some_and(|w| w.allow_without_token);
        let routes = bundle.routes.as_ref().map(CompiledRoutes::new);
        Ok(Self {
            routes,
            prompt,
            argument_paths,
            canonical_uris,
            verifier,
            scanner,
            resource,
            has_dry_run_rules: bundle.rules.iter().any(|r| r.dry_run),
            // Tool pins read every MCP call (calls to check, lists to
            // watch), whatever the rules read.
            body_needs,
            needs_peer,
            header_names,
            limits,
            rules,
            key_kinds: deny.kinds().union(allow.kinds()),
            claim_slots,
            deny,
            allow,
            bundle,
        })
    }

    /// `limits.rate`, compiled, in bundle order.
    pub fn limits(&self) -> &[CompiledLimit] {
        &self.limits
    }

    /// The limits that count this allowed request, each with the
    /// caller's key (`tool`: the MCP tool it calls, if any).
    pub fn limits_for(
        &self,
        claims: &Claims,
        request: &RequestAttrs<'_>,
        tool: Option<&str>,
    ) -> Vec<LimitHit> {
        self.limits
            .iter()
            .enumerate()
            .filter(|(_, l)| l.applies(claims, request))
            .map(|(index, l)| LimitHit {
                index,
                key: l.caller_key(claims, request.model, tool),
            })
            .collect()
    }

    /// The PII scanner, when the bundle turns scrubbing on; shared by
    /// every exchange.
    pub fn scanner(&self) -> Option<&Arc<Scanner>> {
        self.scanner.as_ref()
    }

    /// The `routes` section, compiled; `None` when the bundle routes
    /// nothing.
    pub fn routes(&self) -> Option<&CompiledRoutes> {
        self.routes.as_ref()
    }

    /// The route for an allowed request (first matching rule), if any.
    pub fn route(&self, claims: &Claims, request: &RequestAttrs<'_>) -> Option<RouteChoice> {
        self.routes.as_ref()?.choose(claims, request)
    }

    /// The PII types a request body holds, among those some `prompt_pii`
    /// condition names (empty when none does).
    pub fn prompt_pii(&self, body: &[u8]) -> PiiSet {
        self.prompt
            .as_ref()
            .map_or_else(PiiSet::default, |p| p.classify(body))
    }

    /// The bundle this policy enforces.
    pub fn bundle(&self) -> &Bundle {
        &self.bundle
    }

    /// The protected-resource duties, when the bundle has a `resource`
    /// section.
    pub fn resource(&self) -> Option<&ProtectedResource> {
        self.resource.as_ref()
    }

    /// For a request denied by default under a `resource` section: the
    /// RFC 6750 `insufficient_scope` challenge of the first allow rule that
    /// would have matched but for its scope conditions. Judged on the call
    /// that was denied (the first, as in [`Policy::decide_calls`]). Only
    /// for the deny path: it evaluates rules again.
    pub fn scope_challenge(
        &self,
        decision: &Decision,
        claims: &Claims,
        request: &RequestAttrs<'_>,
        calls: &[McpCall],
    ) -> Option<&str> {
        let resource = self.resource.as_ref()?;
        if decision.effect != Effect::Deny
            || decision.reason != Reason::DefaultDeny
            || !resource.has_scope_rules()
        {
            return None;
        }
        let denied = calls
            .iter()
            .map(|call| request.with_mcp(Some(call)))
            .find(|r| self.decide(claims, r).effect == Effect::Deny);
        let request = match (&denied, calls.is_empty()) {
            (Some(r), _) => r,
            (None, true) => request,
            (None, false) => return None,
        };
        resource.scope_challenge(claims, request)
    }

    /// The in-filter token verifier, when the bundle ships issuers.
    pub fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    /// Whether any rule looks at the request body (model or MCP), so the
    /// filter reads bodies only when it must.
    pub fn needs_body(&self) -> bool {
        self.body_needs.any()
    }

    /// Why the rules read the body (see [`BodyNeeds`]): the filter decides
    /// at the `Mcp-Method` / `Mcp-Name` headers only when the MCP call is
    /// the sole reason.
    pub fn body_needs(&self) -> BodyNeeds {
        self.body_needs
    }

    /// Whether resource URIs must be canonical
    /// ([`crate::resource_template::check_uri`]) because some rule names
    /// resources or matches templates; a URI announced in `Mcp-Name` that
    /// is not is then decided at the body, which refuses it.
    pub fn canonical_uris(&self) -> bool {
        self.canonical_uris
    }

    /// Whether any rule tests `peers` or workloads may call without a
    /// token, so the filter reads the peer certificate only when it must.
    pub fn needs_peer(&self) -> bool {
        self.needs_peer
    }

    /// Reads the model and MCP calls from a request body under this
    /// bundle's limits. One place for the filter and the `explain` CLI, so
    /// they cannot drift.
    ///
    /// Call it whenever [`Policy::needs_body`] holds, whatever the content
    /// type: a lenient upstream may parse a `text/plain` or form body as
    /// JSON anyway. Too large → `body_too_large`; any non-empty body that
    /// is not strict JSON, or whose JSON-RPC members are ambiguous or of
    /// the wrong type → `invalid_body` with the [`BodyError::code`] as
    /// detail. An empty body carries no attributes (no call to run, no
    /// model named).
    pub fn request_body(&self, body: &[u8]) -> Result<BodyAttrs, BodyRefusal> {
        if body.len() > self.bundle.limits.max_request_body_bytes {
            return Err(BodyRefusal {
                reason: Reason::BodyTooLarge,
                detail: None,
            });
        }
        let options = BodyOptions {
            argument_paths: &self.argument_paths,
            canonical_uris: self.canonical_uris,
        };
        read_body_with(body, &options).map_err(|e| match e {
            // A resource URI outside canonical form is a request-level
            // ambiguity, like a dot segment in the path.
            BodyError::ResourceUri(uri) => BodyRefusal {
                reason: Reason::InvalidRequest,
                detail: Some(uri.code()),
            },
            e => BodyRefusal::invalid(e.code()),
        })
    }

    /// The model a request names: the body's `model`, else the bundle's
    /// model header. When both are present they must agree (the upstream
    /// may read either): otherwise `invalid_body` / `model_mismatch`, as
    /// for two model headers that differ.
    pub fn request_model<'a>(
        &self,
        attrs: &'a BodyAttrs,
        headers: &[(&'a str, &'a str)],
    ) -> Result<Option<&'a str>, BodyRefusal> {
        let header_values = self
            .bundle
            .attributes
            .model_header
            .as_deref()
            .into_iter()
            .flat_map(|name| headers.iter().filter(move |(k, _)| *k == name))
            .map(|(_, v)| *v);
        let mut model = attrs.model.as_deref();
        for value in header_values {
            match model {
                Some(named) if named != value => {
                    return Err(BodyRefusal::invalid("model_mismatch"))
                }
                Some(_) => {}
                None => model = Some(value),
            }
        }
        Ok(model)
    }

    /// The denial for a refused body, with the bundle's dry-run mode
    /// applied and the detail code attached.
    pub fn refuse_body(&self, refusal: BodyRefusal) -> Decision {
        let decision = self.deny_for(refusal.reason);
        match refusal.detail {
            Some(detail) => decision.with_detail(detail),
            None => decision,
        }
    }

    /// Request headers the rules read (lower case), so the filter fetches
    /// only those from the host.
    pub fn header_names(&self) -> &[String] {
        &self.header_names
    }

    /// The first rule among `positions` (ascending) that matches,
    /// honouring dry-run.
    fn first_match(
        &self,
        positions: impl Iterator<Item = u32>,
        claims: &Claims,
        request: &RequestAttrs<'_>,
        include_dry_run: bool,
    ) -> Option<&CompiledRule> {
        positions
            .filter_map(|i| {
                Some((
                    self.bundle.rules.get(i as usize)?,
                    self.rules.get(i as usize)?,
                ))
            })
            .filter(|(rule, _)| include_dry_run || !rule.dry_run)
            .find(|(rule, compiled)| compiled.matches(rule, claims, request, &mut Tracer(None)))
            .map(|(_, compiled)| compiled)
    }

    /// Deny rules first, then allow rules, each among the candidates the
    /// indexes give for the request's keys.
    fn evaluate(
        &self,
        claims: &Claims,
        request: &RequestAttrs<'_>,
        keys: &RequestKeys,
        include_dry_run: bool,
    ) -> (Effect, Option<Arc<str>>, Reason) {
        let deny = self.deny.candidates(keys);
        if let Some(rule) = self.first_match(deny, claims, request, include_dry_run) {
            return (Effect::Deny, Some(rule.id.clone()), Reason::RuleDeny);
        }
        let allow = self.allow.candidates(keys);
        if let Some(rule) = self.first_match(allow, claims, request, include_dry_run) {
            return (Effect::Allow, Some(rule.id.clone()), Reason::RuleAllow);
        }
        (Effect::Deny, None, Reason::DefaultDeny)
    }

    /// Decides one request (or one MCP call of it) from its claims.
    pub fn decide(&self, claims: &Claims, request: &RequestAttrs<'_>) -> Decision {
        let keys = RequestKeys::of(request, claims, &self.claim_slots, self.key_kinds);
        self.decide_with(|include_dry_run| self.evaluate(claims, request, &keys, include_dry_run))
    }

    /// The decision procedure around an evaluator of the rules (the
    /// indexed one, or in tests the linear reference): enforced rules,
    /// then the dry-run pass, then the bundle's dry-run mode.
    fn decide_with(
        &self,
        evaluate: impl Fn(bool) -> (Effect, Option<Arc<str>>, Reason),
    ) -> Decision {
        let (effect, rule_id, reason) = evaluate(false);
        let mut decision = Decision {
            effect,
            rule_id,
            reason,
            detail: None,
            dry_run: None,
        };
        if self.has_dry_run_rules {
            let (effect, rule_id, reason) = evaluate(true);
            if effect != decision.effect || rule_id != decision.rule_id {
                decision.dry_run = Some(DryRunOutcome {
                    effect,
                    rule_id,
                    reason,
                });
            }
        }
        self.apply_bundle_dry_run(decision)
    }

    /// Decides a request carrying MCP calls: every call must be allowed
    /// (a batch is denied by its first denied call). With no calls the
    /// request is decided as is.
    pub fn decide_calls(
        &self,
        claims: &Claims,
        request: &RequestAttrs<'_>,
        calls: &[McpCall],
    ) -> Decision {
        let mut chosen: Option<Decision> = None;
        for call in calls {
            let decision = self.decide(claims, &request.with_mcp(Some(call)));
            if decision.effect == Effect::Deny {
                return decision;
            }
            // Prefer reporting a call that a dry-run rule or mode flagged.
            if chosen
                .as_ref()
                .is_none_or(|c| c.dry_run.is_none() && decision.dry_run.is_some())
            {
                chosen = Some(decision);
            }
        }
        chosen.unwrap_or_else(|| self.decide(claims, request))
    }

    /// Whether the caller may use one listed MCP object, judged as the
    /// call that would use it (for filtering `tools/list` answers).
    pub fn allows_target(
        &self,
        claims: &Claims,
        request: &RequestAttrs<'_>,
        kind: TargetKind,
        name: &str,
    ) -> bool {
        let call = McpCall {
            arguments: CallArguments::Listing,
            ..McpCall::targeting(kind.call_method(), name)
        };
        let request = request.with_mcp(Some(&call));
        let keys = RequestKeys::of(&request, claims, &self.claim_slots, self.key_kinds);
        self.evaluate(claims, &request, &keys, false).0 == Effect::Allow
    }

    /// A denial for an identity or input problem, with the bundle's
    /// dry-run mode applied.
    pub fn deny_for(&self, reason: Reason) -> Decision {
        self.apply_bundle_dry_run(Decision::deny(reason))
    }

    fn apply_bundle_dry_run(&self, decision: Decision) -> Decision {
        if !self.bundle.dry_run || decision.effect == Effect::Allow {
            return decision;
        }
        Decision {
            effect: Effect::Allow,
            rule_id: None,
            reason: Reason::DryRun,
            detail: None,
            dry_run: Some(DryRunOutcome {
                effect: decision.effect,
                rule_id: decision.rule_id,
                reason: decision.reason,
            }),
        }
    }

    /// Evaluates every rule and records each condition: the answer to
    /// "why was I denied?".
    pub fn explain(&self, claims: &Claims, request: &RequestAttrs<'_>) -> Explanation {
        let rules = self.bundle.rules.iter().zip(self.rules.iter());
        let order = rules
            .clone()
            .filter(|(r, _)| r.effect == RuleEffect::Deny)
            .chain(rules.filter(|(r, _)| r.effect == RuleEffect::Allow));
        let rules = order
            .map(|(rule, compiled)| {
                let mut conditions = Vec::new();
                let matched =
                    compiled.matches(rule, claims, request, &mut Tracer(Some(&mut conditions)));
                RuleExplanation {
                    id: rule.id.clone(),
                    effect: rule.effect,
                    dry_run: rule.dry_run,
                    matched,
                    conditions,
                }
            })
            .collect();
        Explanation {
            decision: self.decide(claims, request),
            rules,
        }
    }
}
