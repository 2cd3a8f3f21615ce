//! One request/response exchange as an explicit state machine.
//!
//! Every proxy callback is a transition, and every way out of an exchange
//! is either *decided* (the policy allowed it; the answer was scanned) or
//! *refused* (a local reply, a replaced body, an SSE error event). A
//! callback that arrives in a state where it makes no sense is refused
//! too, so a host that orders callbacks differently (trailers instead of
//! an end-of-stream body, a body without headers) cannot open a gap.
//!
//! Request side: `Start` → (`AwaitingBody` | `Verifying`) → `Forwarded` |
//! `Answered`. The decision is taken at request headers, or — when rules
//! read the body or prompts are scrubbed — at the end of the body, which
//! is either the body callback with `end_of_stream` or the trailers
//! callback. A request decided on its `Mcp-Method` / `Mcp-Name` headers
//! ([`crate::mcp_headers`]) is `Verifying` until its body is shown to
//! make the same call.
//!
//! When the host does not hold headers while a body is read (an Istio
//! `WasmPlugin`: [`Exchange::with_held_headers`]), `AwaitingBody` lets the
//! headers go first, made ready for the upstream, and holds only the body;
//! the decision at its end is the same, and an answer arriving before it
//! is refused.
//!
//! Response side: `Start` → `Pass` | `Held` | `Streaming` | `Refused`.
//! Bodies the scanner reads are held (headers too, so a refusal can still
//! change the status) and finished at the body's end or at trailers;
//! event streams are scrubbed as they pass.

use std::sync::Arc;

use mcp_guard_engine::audit::DecisionChain;
use mcp_guard_engine::bundle::{Fallback, PiiSettings};
use mcp_guard_engine::inject::header_value;
use mcp_guard_engine::mcp::{filter_list_answers_pinned, BodyAttrs, TargetKind};
use mcp_guard_engine::mcp_sse::McpSseFilter;
use mcp_guard_engine::peer::SpiffeId;
use mcp_guard_engine::pii::{ContentMode, PiiReport, Scanner, StreamScrubber};
use mcp_guard_engine::pins::OnChange;
use mcp_guard_engine::policy::claim_holds;
use mcp_guard_engine::{Claims, Decision, Effect, McpCall, Reason, RequestAttrs};

use crate::active::ActivePolicy;
use crate::content::{classify, is_listed_safe, sniff, ContentClass, Sniffed};
use crate::edges;
use crate::fallback::{self, Replay};
use crate::host::{Host, Level, Side};
use crate::identity::identify;
use crate::mcp_headers::{self, HeaderPlan};
use crate::peer::{workload_caller, Peer};
use crate::pins;
use crate::proxy_replies;
use crate::record::AuditRecord;
use crate::reply;
use crate::resource;
use crate::routing;
use crate::timing::Timing;
use crate::token_exchange::{self as txchg, CalloutAnswer, Pending, Started};
use mcp_guard_engine::routes::RouteChoice;

mod limits;
mod timed;
mod verify;

/// What the proxy should do after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Let this part of the exchange go on.
    Continue,
    /// Hold it (buffer bodies) until the flow decides, or for good after
    /// a local reply.
    Pause,
}

/// Where the request side stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RequestState {
    /// Nothing seen yet.
    Start,
    /// Headers read; the body is buffered until its end.
    AwaitingBody,
    /// Allowed on its MCP headers, which went upstream; the body is held
    /// until it is shown to make the announced call.
    Verifying,
    /// Allowed; held until the RFC 8693 token exchange answers.
    Exchanging,
    /// Allowed by the rules; held until the rate-limit service answers.
    Limiting,
    /// Allowed: the request goes upstream.
    Forwarded,
    /// Refused with a local reply.
    Answered,
}

/// How a held response body is read at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// The content type says which mode.
    Text(ContentMode),
    /// No or a generic content type: the bytes decide.
    Sniff,
}

/// Where the response side stands.
enum ResponseState {
    /// Nothing seen yet.
    Start,
    /// Nothing to check (local reply, no scanner and no list, safe type).
    Pass,
    /// Headers and body held until the end of the body.
    Held(Held),
    /// Filtered and scrubbed as it streams, with a bounded hold-back.
    Streaming(Box<Streaming>),
    /// Refused: whatever still arrives is dropped.
    Refused,
    /// Refused with a local reply, which passes back through these
    /// callbacks (Envoy runs a local reply through the filter chain).
    Replied,
    /// The route's cluster failed; the request was replayed to its
    /// fallback and the failed answer is held (and dropped) until the
    /// fallback's answer replaces it.
    FallingBack,
}

/// What a streamed answer goes through, in order.
struct Streaming {
    /// MCP list answers inside an event stream lose hidden entries.
    lists: Option<McpSseFilter>,
    /// PII scrubbing.
    scrubber: Option<StreamScrubber>,
}

/// Why a stream was refused half-way.
type StreamRefusal = &'static str;

/// The request line as the policy sees it.
#[derive(Debug, Default)]
struct RequestLine {
    method: String,
    path: String,
    authority: String,
}

/// One request/response exchange.
pub struct Exchange {
    policy: Option<Arc<ActivePolicy>>,
    request: RequestState,
    response: ResponseState,
    record: AuditRecord,
    claims: Claims,
    /// The peer workload's SPIFFE ID (read only when the bundle uses it).
    peer: Option<SpiffeId>,
    /// The caller is identified by `peer` alone (no token).
    workload_only: bool,
    line: RequestLine,
    /// Request headers as read at the headers callback (rules read them).
    headers: Vec<(String, String)>,
    request_id: String,
    list_calls: Vec<McpCall>,
    /// The scanner for this exchange; `None` when scrubbing is off or the
    /// caller is exempt.
    scanner: Option<Arc<Scanner>>,
    /// Bytes of request body buffered so far.
    request_len: usize,
    /// Bytes of response body buffered so far.
    response_len: usize,
    /// A local reply already answered the response side.
    response_replied: bool,
    /// The request headers said the request had no body.
    request_ended: bool,
    /// The body of that local reply: the only bytes that may pass once
    /// the answer was refused (Envoy runs a local reply back through the
    /// filter; anything else is dropped).
    reply_body: Vec<u8>,
    scratch: Vec<u8>,
    /// The MCP call the `Mcp-Method` / `Mcp-Name` headers announced; the
    /// body must make exactly this call.
    announced: Option<McpCall>,
    /// The JSON-RPC id of the body, for a `header_mismatch` answer.
    jsonrpc_id: Option<serde_json::Value>,
    /// Client secret for RFC 8693 token exchange (plugin configuration).
    exchange_secret: Option<Arc<str>>,
    /// `Authorization` values as the client sent them, read only when the
    /// bundle exchanges tokens.
    authorization: Vec<String>,
    /// The token exchange on its way, while `Exchanging`.
    pending: Option<Pending>,
    /// The allow decision carried out once the exchange answers.
    pending_decision: Option<Decision>,
    /// The `insufficient_scope` challenge of a denial, when it is one.
    scope_challenge: Option<String>,
    /// [`Exchange::admit`] ran: the request's headers are ready for the
    /// upstream (client token out, forged injected headers out).
    admitted: bool,
    /// Time spent in callbacks, per side ([`Exchange::timed`]).
    timing: Timing,
    /// The host holds headers while the flow reads a body
    /// ([`Exchange::with_held_headers`]).
    held_headers: bool,
    /// The response's content type, read at its headers (a released
    /// header map cannot be read later).
    response_content_type: Option<String>,
    /// The route the policy chose for the allowed request.
    route: Option<RouteChoice>,
    /// Headers not held: the route the request's headers carried when
    /// they left (chosen on the headers alone); the body's choice must
    /// be the same.
    route_sent: Option<Option<RouteChoice>>,
    /// The request body as forwarded, while the route has a fallback.
    forwarded_body: Option<Vec<u8>>,
    /// The forwarded request, kept for the route's fallback.
    replay: Option<Replay>,
    /// The fallback's HTTP call on its way.
    fallback_call: Option<u64>,
    /// Rate limits and token budgets of this request.
    limits: crate::limits::LimitState,
}

/// Sets the exchanged token as the upstream's only `Authorization`.
fn set_bearer(host: &mut impl Host, token: &str) {
    host.set_header(Side::Request, "authorization", &format!("Bearer {token}"));
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The request headers a policy's rules read (`names`), out of the
/// headers as read at the headers callback.
fn rule_headers<'a>(
    names: &'a [String],
    headers: &'a [(String, String)],
) -> Vec<(&'a str, &'a str)> {
    names
        .iter()
        .filter_map(|name| find_header(headers, name).map(|v| (name.as_str(), v)))
        .collect()
}

/// Scrubs a whole body in the given mode into `out`.
fn scrub_whole(
    scanner: &Arc<Scanner>,
    mode: ContentMode,
    body: &[u8],
    out: &mut Vec<u8>,
) -> PiiReport {
    out.clear();
    match mode {
        ContentMode::Json => scanner.scrub_json(body, out),
        ContentMode::Text => scanner.scrub_text(body, out),
        ContentMode::Sse => {
            let mut stream = StreamScrubber::new(Arc::clone(scanner), ContentMode::Sse);
            stream.push(body, out);
            stream.finish(out);
            stream.report()
        }
    }
}

impl Exchange {
    /// An exchange bound to the policy active when the request started, so
    /// a bundle swap never changes the rules half-way through.
    pub fn new(policy: Option<Arc<ActivePolicy>>) -> Self {
        Self {
            policy,
            request: RequestState::Start,
            response: ResponseState::Start,
            record: AuditRecord::default(),
            claims: Claims::default(),
            peer: None,
            workload_only: false,
            line: RequestLine::default(),
            headers: Vec::new(),
            request_id: String::new(),
            list_calls: Vec::new(),
            scanner: None,
            request_len: 0,
            response_len: 0,
            response_replied: false,
            request_ended: false,
            reply_body: Vec::new(),
            scratch: Vec::new(),
            announced: None,
            jsonrpc_id: None,
            exchange_secret: None,
            authorization: Vec::new(),
            pending: None,
            pending_decision: None,
            scope_challenge: None,
            admitted: false,
            timing: Timing::default(),
            held_headers: true,
            response_content_type: None,
            route: None,
            route_sent: None,
            forwarded_body: None,
            replay: None,
            fallback_call: None,
            limits: crate::limits::LimitState::default(),
        }
    }

    /// Whether the host holds a side's headers while the flow reads its
    /// body (Envoy's proxy-wasm `allow_on_headers_stop_iteration`, the
    /// native module). When it does not (an Istio `WasmPlugin`: Envoy
    /// turns a pause at headers into "stop all" and never delivers the
    /// body), the flow lets headers go on — ready for the upstream, the
    /// client's token already out — and holds the body instead: the
    /// upstream never gets a byte of a denied body (Envoy resets it when
    /// the denial's local reply is sent), an answer that comes before the
    /// decision is refused, and a response refused after its headers left
    /// gets the refusal as its body. Default: held.
    pub fn with_held_headers(mut self, held: bool) -> Self {
        self.held_headers = held;
        self
    }

    /// The client secret the bundle's `token_exchange` authenticates with
    /// (it lives in the plugin configuration, never in the bundle).
    pub fn with_exchange_secret(mut self, secret: Option<Arc<str>>) -> Self {
        self.exchange_secret = secret;
        self
    }

    /// The decision record as it stands (tests, the CLI).
    pub fn record(&self) -> &AuditRecord {
        &self.record
    }

    /// Whether the request was decided (allowed or refused).
    pub fn decided(&self) -> bool {
        matches!(
            self.request,
            RequestState::Forwarded | RequestState::Answered
        )
    }

    /// The request waited at its headers for a body that never came to
    /// the filter: what a proxy that does not hold headers
    /// (`allow_on_headers_stop_iteration` off) does to a flow told it
    /// does. Also a client that sent headers and gave up; the shim warns.
    pub fn waited_for_body_in_vain(&self) -> bool {
        self.held_headers && self.request == RequestState::AwaitingBody && self.request_len == 0
    }

    /// Whether the request was allowed upstream.
    pub fn forwarded(&self) -> bool {
        self.request == RequestState::Forwarded
    }

    /// Whether the request was allowed on its MCP headers (which went
    /// upstream) and its body is still held to be verified.
    pub fn verifying(&self) -> bool {
        self.request == RequestState::Verifying
    }

    /// Tool pins are on: every JSON or SSE answer of an allowed request
    /// is read for list answers, also one smuggled into the answer of
    /// another call (a client routes a JSON-RPC answer by its id, whatever
    /// HTTP answer carries it).
    fn watch_lists(&self) -> bool {
        self.policy
            .as_ref()
            .is_some_and(|a| a.policy.bundle().tool_pins.is_some())
    }

    fn settings(&self) -> Option<&PiiSettings> {
        Some(&self.policy.as_ref()?.policy.bundle().pii)
    }

    /// Records, counts and carries out a decision.
    fn enforce(&mut self, host: &mut impl Host, decision: Decision) -> Next {
        if decision.effect == Effect::Allow && !self.admitted {
            // A denial a dry-run bundle lets through before the rules ran
            // (identity, request line, headers, body) goes upstream like
            // any allowed request: without the client's token or forged
            // injected headers, with an exchanged token or a 503.
            if let Some(active) = self.policy.clone() {
                return self.admit_and_enforce(host, &active, decision);
            }
        }
        host.count_decision(&decision);
        let denied = decision.effect == Effect::Deny;
        // Answered before the reply is sent: a host that runs the local
        // reply through the response hooks at once (Envoy does, from a
        // decoder filter) must see it as ours, even from `Verifying`.
        if denied && decision.reason == Reason::HeaderMismatch {
            self.request = RequestState::Answered;
            let id = self.jsonrpc_id.as_ref();
            mcp_headers::send_mismatch(host, &decision, id, &self.request_id);
        } else if denied && decision.reason == Reason::RateLimited && self.limits.refusal.is_some()
        {
            self.request = RequestState::Answered;
            if let Some(refusal) = &self.limits.refusal {
                crate::limits::send_refusal(host, &decision, refusal, &self.request_id);
            }
        } else if denied {
            self.request = RequestState::Answered;
            let resource_duties = self.policy.as_ref().and_then(|a| a.policy.resource());
            let challenge =
                resource::challenge(resource_duties, &decision, self.scope_challenge.as_deref());
            reply::send_denial(host, &decision, &self.request_id, challenge);
        } else {
            self.request = RequestState::Forwarded;
            self.keep_for_fallback(host);
        }
        self.record.decision = Some(decision);
        self.record.publish(host);
        if denied {
            Next::Pause
        } else {
            Next::Continue
        }
    }

    /// Refuses a request that broke the expected order of callbacks.
    fn refuse_out_of_order(&mut self, host: &mut impl Host) -> Next {
        host.log(Level::Warn, "request callback out of order: refused");
        if self.request == RequestState::Answered {
            // Already answered with a local reply: one reply per request.
            return Next::Pause;
        }
        let decision = Decision::deny(Reason::InvalidRequest).with_detail("callback_order");
        self.enforce(host, decision)
    }

    /// Refuses the request for `reason` with the check's code as detail
    /// (e.g. `invalid_request` for a line or headers not in the form the
    /// rules are matched on, `header_mismatch`, `invalid_body`).
    fn refuse(
        &mut self,
        host: &mut impl Host,
        active: &ActivePolicy,
        reason: Reason,
        detail: &'static str,
    ) -> Next {
        let d = active.policy.deny_for(reason).with_detail(detail);
        self.enforce(host, d)
    }

    /// The whole buffered request body (`request_len` bytes), or the
    /// refusal already sent when the host cannot give all of it.
    fn whole_request_body(
        &mut self,
        host: &mut impl Host,
        active: &ActivePolicy,
    ) -> Result<Vec<u8>, Next> {
        let size = self.request_len;
        match host.body(Side::Request, size) {
            Some(body) if body.len() == size => Ok(body),
            None if size == 0 => Ok(Vec::new()),
            _ => Err(self.refuse(host, active, Reason::InvalidBody, "body_unreadable")),
        }
    }

    fn deny_with(&self, active: &ActivePolicy, denial: Decision) -> Decision {
        match denial.detail {
            Some(detail) => active.policy.deny_for(denial.reason).with_detail(detail),
            None => active.policy.deny_for(denial.reason),
        }
    }

    /// Request headers: request-line and header checks, identity, then a
    /// decision now or a wait for the body.
    pub fn on_request_headers(&mut self, host: &mut impl Host, end_of_stream: bool) -> Next {
        if self.request != RequestState::Start {
            return self.refuse_out_of_order(host);
        }
        self.request_ended = end_of_stream;
        let Some(active) = self.policy.clone() else {
            let mut headers = host.headers(Side::Request);
            routing::strip_client_copies(host, None, &mut headers);
            return self.enforce(host, Decision::deny(Reason::NoPolicy));
        };
        let bundle = active.policy.bundle();
        self.record.policy = Some((bundle.name.clone(), bundle.version));
        self.headers = host.headers(Side::Request);
        routing::strip_client_copies(host, Some(&active.policy), &mut self.headers);
        if bundle.token_exchange.is_some() {
            // Read before any header is stripped: the caller's token is
            // the subject of the exchange, never forwarded itself.
            self.authorization = self
                .headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v.clone())
                .collect();
        }
        self.request_id = find_header(&self.headers, "x-request-id")
            .unwrap_or_default()
            .to_owned();
        self.record.note_request(
            find_header(&self.headers, ":method").unwrap_or_default(),
            find_header(&self.headers, ":path").unwrap_or_default(),
            &self.request_id,
        );
        self.line = RequestLine {
            method: find_header(&self.headers, ":method")
                .unwrap_or_default()
                .to_owned(),
            path: find_header(&self.headers, ":path")
                .unwrap_or_default()
                .to_owned(),
            authority: find_header(&self.headers, ":authority")
                .unwrap_or_default()
                .to_owned(),
        };
        // Protected-resource metadata needs no token (request line in
        // normal form only).
        let (method, path, authority) = (&self.line.method, &self.line.path, &self.line.authority);
        if resource::answer_metadata(host, &active.policy, method, path, authority) {
            self.request = RequestState::Answered;
            return Next::Pause;
        }
        // Identity first, so a refused request line is logged with who
        // sent it.
        if active.policy.needs_peer() {
            self.peer = Peer::read(host).id().cloned();
            self.record.peer = self.peer.as_ref().map(|p| p.as_str().to_owned());
        }
        match identify(host, &active) {
            Ok(claims) => self.claims = claims,
            Err(denial) => match workload_caller(bundle, &denial, self.peer.as_ref()) {
                Some(id) => {
                    self.workload_only = true;
                    self.record.subject = Some(id.as_str().to_owned());
                }
                None => {
                    let d = self.deny_with(&active, denial);
                    return self.enforce(host, d);
                }
            },
        }
        if !self.workload_only {
            self.record.subject = self
                .claims
                .get_str(&bundle.identity.subject_claim)
                .map(str::to_owned);
        }
        match edges::check_request_line(&self.line.path, &self.line.authority) {
            Ok(checked) => {
                // Rules see the path without its query and the host
                // without port, as checked.
                self.line.path = checked.path;
                self.line.authority = checked.host;
            }
            Err(detail) => return self.refuse(host, &active, Reason::InvalidRequest, detail),
        }
        match edges::plan_headers(&active.policy, &self.headers) {
            Ok(plan) => {
                for name in &plan.strip {
                    host.remove_header(Side::Request, name);
                }
                self.headers.retain(|(k, _)| !plan.strip.contains(k));
            }
            Err(detail) => return self.refuse(host, &active, Reason::InvalidRequest, detail),
        }
        self.choose_scanner(&active);
        let scrub_request = bundle.pii.scrub_requests && self.scanner.is_some();
        // A token exchange runs when the request is allowed and must hold
        // it until the IdP answers; on the header path the headers would
        // already be upstream, so bundles that exchange tokens decide on
        // the MCP headers at the end of the body (still verified).
        // Global rate limits hold the request for the service's answer
        // the same way.
        let decide_at_body =
            scrub_request || bundle.token_exchange.is_some() || bundle.limits.global.is_some();
        match mcp_headers::plan(&active.policy, &self.headers, decide_at_body) {
            HeaderPlan::Absent => {}
            HeaderPlan::Refuse(refusal) => {
                return self.refuse(host, &active, Reason::HeaderMismatch, refusal.code())
            }
            HeaderPlan::Compressed => {
                return self.refuse(host, &active, Reason::InvalidBody, "compressed_request");
            }
            HeaderPlan::DecideNow(_) | HeaderPlan::VerifyAtBody(_) if end_of_stream => {
                // Announced a call but sent no body to make it.
                return self.refuse(host, &active, Reason::HeaderMismatch, "not_a_call");
            }
            HeaderPlan::DecideNow(call) => {
                self.announced = Some(call);
                return self.decide_on_headers(host, &active);
            }
            HeaderPlan::VerifyAtBody(call) => self.announced = Some(call),
        }
        if (active.policy.needs_body() || scrub_request) && !end_of_stream {
            if scrub_request {
                host.remove_header(Side::Request, "content-length");
            }
            self.request = RequestState::AwaitingBody;
            if self.held_headers {
                return Next::Pause;
            }
            return self.release_request_headers(host, &active);
        }
        let decision = self.evaluate(host, &active, None);
        self.admit_and_enforce(host, &active, decision)
    }

    /// A request body chunk (`size` = all bytes buffered so far).
    pub fn on_request_body(
        &mut self,
        host: &mut impl Host,
        size: usize,
        end_of_stream: bool,
    ) -> Next {
        match self.request {
            RequestState::AwaitingBody => {}
            RequestState::Verifying => return self.verify_chunk(host, size, end_of_stream),
            RequestState::Forwarded if self.request_ended => {
                // The headers said there was no body, and the decision was
                // taken without one: a body now is out of order and is
                // dropped, never forwarded undecided.
                if !host.replace_body(Side::Request, size, &[]) {
                    host.reset();
                }
                return Next::Continue;
            }
            RequestState::Exchanging | RequestState::Limiting => {
                // Held until the exchange answers; a body the headers
                // said would not come is dropped.
                if self.request_ended && !host.replace_body(Side::Request, size, &[]) {
                    host.reset();
                }
                return Next::Pause;
            }
            RequestState::Forwarded => return Next::Continue,
            RequestState::Answered => return Next::Pause,
            RequestState::Start => return self.refuse_out_of_order(host),
        }
        let Some(active) = self.policy.clone() else {
            return self.refuse_out_of_order(host);
        };
        if size > active.policy.bundle().limits.max_request_body_bytes {
            let d = active.policy.deny_for(Reason::BodyTooLarge);
            return self.enforce(host, d);
        }
        self.request_len = size;
        if !end_of_stream {
            return Next::Pause;
        }
        self.finish_request(host, &active)
    }

    /// Request trailers: the body (if any) has ended, so a pending decision
    /// is taken now; HTTP/2 bodies that end with trailers never reach the
    /// body callback with `end_of_stream`.
    pub fn on_request_trailers(&mut self, host: &mut impl Host) -> Next {
        self.strip_injected_trailers(host);
        match self.request {
            RequestState::AwaitingBody => {}
            RequestState::Verifying => return self.finish_verify(host),
            RequestState::Exchanging | RequestState::Limiting => return Next::Pause,
            RequestState::Forwarded => return Next::Continue,
            RequestState::Answered => return Next::Pause,
            RequestState::Start => return self.refuse_out_of_order(host),
        }
        let Some(active) = self.policy.clone() else {
            return self.refuse_out_of_order(host);
        };
        self.finish_request(host, &active)
    }

    /// Trailers named like a header the bundle injects are removed: an
    /// upstream that merges trailers into headers must not read a
    /// client's copy of an identity header.
    fn strip_injected_trailers(&mut self, host: &mut impl Host) {
        let Some(active) = self.policy.clone() else {
            return;
        };
        let trailers = host.trailers(Side::Request);
        if trailers.is_empty() {
            return;
        }
        for name in edges::forged_injected(&active.policy, &trailers) {
            host.remove_trailer(Side::Request, &name);
        }
        for (name, _) in &trailers {
            if routing::is_route_header(Some(&active.policy), name) {
                host.remove_trailer(Side::Request, name);
            }
        }
        // No token passthrough in trailers either: an upstream that
        // merges trailers into headers must see no client credential
        // (only the exchanged token, when the bundle exchanges).
        let bundle = active.policy.bundle();
        if !bundle.identity.forward_authorization || bundle.token_exchange.is_some() {
            let verify = bundle.identity.verify.as_ref().map(|v| v.header.as_str());
            for name in ["authorization"].into_iter().chain(verify) {
                if trailers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name)) {
                    host.remove_trailer(Side::Request, name);
                }
            }
        }
    }

    /// The whole request body is here: decide, and scrub prompts.
    fn finish_request(&mut self, host: &mut impl Host, active: &Arc<ActivePolicy>) -> Next {
        let size = self.request_len;
        let body = match self.whole_request_body(host, active) {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let for_rules = active.policy.needs_body().then_some(body.as_slice());
        let mut decision = self.evaluate(host, active, for_rules);
        let (size, body) = if decision.effect == Effect::Allow {
            match self.rewrite_model(host, active, size, body) {
                Ok(rewritten) => rewritten,
                Err(refusal) => return self.enforce(host, refusal),
            }
        } else {
            (size, body)
        };
        let scrub = active.policy.bundle().pii.scrub_requests && self.scanner.is_some();
        if decision.effect == Effect::Allow && scrub {
            if let Err(detail) = self.scrub_request(host, size, &body) {
                decision = active
                    .policy
                    .deny_for(Reason::InvalidBody)
                    .with_detail(detail);
            }
        }
        if decision.effect == Effect::Allow
            && self.route.as_ref().is_some_and(|r| r.fallback.is_some())
        {
            // The body as it goes upstream (rewritten, scrubbed), for a
            // replay to the fallback; bounded by the request limit.
            let limit = active.policy.bundle().limits.max_request_body_bytes;
            self.forwarded_body = host.body(Side::Request, limit.saturating_mul(2));
        }
        self.admit_and_enforce(host, active, decision)
    }

    /// Rewrites the held body's `model` as the chosen route asks, and the
    /// bundle's model header with it; returns the body now buffered. The
    /// length changes, so `content-length` goes (Envoy then frames the
    /// body itself) — possible only while the headers are held; headers
    /// that left with a `content-length` or a model header that cannot be
    /// changed any more refuse the request (503 `route_unavailable`).
    fn rewrite_model(
        &mut self,
        host: &mut impl Host,
        active: &ActivePolicy,
        size: usize,
        body: Vec<u8>,
    ) -> Result<(usize, Vec<u8>), Decision> {
        let Some(choice) = self.route.clone() else {
            return Ok((size, body));
        };
        let Some(model) = choice.model.as_deref() else {
            return Ok((size, body));
        };
        // Never softened by a dry-run bundle: a request that cannot go
        // where its policy routes it goes nowhere.
        let refuse =
            |detail: &'static str| Decision::deny(Reason::RouteUnavailable).with_detail(detail);
        let headers_left = self.route_sent.is_some();
        let model_header = active.policy.bundle().attributes.model_header.as_deref();
        if let Some(name) = model_header {
            if find_header(&self.headers, name).is_some() {
                if headers_left {
                    return Err(refuse("route_needs_held_headers"));
                }
                host.set_header(Side::Request, name, model);
            }
        }
        let rewritten = match routing::rewritten_body(&choice, &body) {
            Ok(Some(rewritten)) => rewritten,
            Ok(None) => return Ok((size, body)),
            Err(code) => return Err(refuse(code)),
        };
        if headers_left
            && rewritten.len() != size
            && find_header(&self.headers, "content-length").is_some()
        {
            return Err(refuse("route_needs_held_headers"));
        }
        if !host.replace_body(Side::Request, size, &rewritten) {
            return Err(refuse("body_not_replaced"));
        }
        if !headers_left {
            host.remove_header(Side::Request, "content-length");
        }
        Ok((rewritten.len(), rewritten))
    }

    /// Scrubs a whole buffered request body (prompts) in place.
    fn scrub_request(
        &mut self,
        host: &mut impl Host,
        size: usize,
        body: &[u8],
    ) -> Result<(), &'static str> {
        let Some(scanner) = self.scanner.clone() else {
            return Ok(());
        };
        if body.is_empty() {
            return Ok(());
        }
        let content_type = find_header(&self.headers, "content-type").map(str::to_owned);
        let safe = self
            .settings()
            .is_some_and(|p| is_listed_safe(&p.safe_content_types, content_type.as_deref()));
        let mode = match classify(content_type.as_deref()) {
            ContentClass::Text(mode) => mode,
            ContentClass::EventStream => ContentMode::Sse,
            ContentClass::Sniff => match sniff(body) {
                Sniffed::Json => ContentMode::Json,
                Sniffed::Text => ContentMode::Text,
                Sniffed::Binary if safe => return Ok(()),
                Sniffed::Binary => return Err("unscannable_content"),
            },
            ContentClass::Opaque if safe => return Ok(()),
            ContentClass::Opaque => return Err("unscannable_content"),
        };
        let mut out = std::mem::take(&mut self.scratch);
        let report = scrub_whole(&scanner, mode, body, &mut out);
        self.count(host, &report);
        let result = if report.blocked() {
            self.record.scrub_note = Some("pii_blocked_in_request");
            host.count_refusal();
            Err("pii_blocked")
        } else if report.total() > 0 && !host.replace_body(Side::Request, size, &out) {
            Err("body_not_replaced")
        } else {
            Ok(())
        };
        self.scratch = out;
        result
    }

    /// Decides with what the headers (and body, if read) say; records
    /// model and MCP calls. No side effects on the traffic.
    fn evaluate(
        &mut self,
        host: &mut impl Host,
        active: &ActivePolicy,
        body: Option<&[u8]>,
    ) -> Decision {
        let policy = &active.policy;
        let attrs = match body.map(|b| policy.request_body(b)) {
            Some(Err(refusal)) => return policy.refuse_body(refusal),
            Some(Ok(attrs)) => {
                if let Some(refusal) = self.check_announced(&attrs) {
                    return policy.deny_for(Reason::HeaderMismatch).with_detail(refusal);
                }
                attrs
            }
            // Decided on the MCP headers: the announced call stands in
            // for the body's until the body is verified.
            None => BodyAttrs {
                mcp: self.announced.iter().cloned().collect(),
                ..BodyAttrs::default()
            },
        };
        let headers = rule_headers(policy.header_names(), &self.headers);
        let model = match policy.request_model(&attrs, &headers) {
            Ok(model) => model,
            Err(refusal) => return policy.refuse_body(refusal),
        };
        let now = host.now_ms() / 1000;
        let prompt_pii = body.map(|b| policy.prompt_pii(b)).unwrap_or_default();
        let request = RequestAttrs::new(&self.line.method, &self.line.path, &self.line.authority)
            .with_headers(&headers)
            .with_model(model)
            .with_peer(self.peer.as_ref(), self.workload_only)
            .with_prompt_pii(prompt_pii)
            .at(now);
        let mut decision = policy.decide_calls(&self.claims, &request, &attrs.mcp);
        self.scope_challenge = resource::note_insufficient_scope(
            policy,
            &mut decision,
            &self.claims,
            &request,
            &attrs.mcp,
        );
        if decision.effect == Effect::Allow {
            if let Some((tool, verdict)) = pins::refused_call(host, policy, &attrs.mcp) {
                host.count_tool_pin_mismatch();
                decision = policy
                    .deny_for(Reason::ToolPinMismatch)
                    .with_detail(match verdict {
                        mcp_guard_engine::pins::CallVerdict::Unobserved => "unobserved",
                        _ => "changed",
                    });
                self.record.tool_pin = Some(tool);
            }
        }
        if decision.effect == Effect::Allow && policy.routes().is_some() {
            let claims = &self.claims;
            let chosen = if attrs.mcp.is_empty() {
                Ok(policy.route(claims, &request))
            } else {
                routing::one_route(
                    attrs
                        .mcp
                        .iter()
                        .map(|call| policy.route(claims, &request.with_mcp(Some(call)))),
                )
            };
            match chosen {
                Ok(route) => self.route = route,
                Err(routing::RoutesDiffer) => {
                    decision =
                        Decision::deny(Reason::RouteUnavailable).with_detail("batch_routes_differ");
                }
            }
        }
        if decision.effect == Effect::Allow && !policy.limits().is_empty() {
            // The model as it goes upstream: behind a route's rewrite
            // (`"*": deployment`) every name the client makes up reaches
            // one deployment, so it must not be a budget of its own.
            let upstream = self.route.as_ref().and_then(|r| r.model.as_deref());
            // Every call of a JSON-RPC batch counts, each under its own
            // `when` and tool: a batch must not hide limited calls behind
            // a first one that is not. Token budgets are charged once
            // per request (one answer), whatever the calls.
            let mut hits: Vec<mcp_guard_engine::rate_limit::LimitHit> = Vec::new();
            let calls: Vec<Option<&_>> = if attrs.mcp.is_empty() {
                vec![None]
            } else {
                attrs.mcp.iter().map(Some).collect()
            };
            let limits = policy.limits();
            for call in calls {
                let mut one = request.with_mcp(call);
                if let Some(model) = upstream {
                    one.model = Some(model);
                }
                let tool = call
                    .filter(|c| c.method == "tools/call")
                    .and_then(|c| c.target.as_deref());
                for hit in policy.limits_for(&self.claims, &one, tool) {
                    let tokens = limits.get(hit.index).is_some_and(|l| {
                        matches!(l.kind, mcp_guard_engine::rate_limit::LimitKind::Tokens(_))
                    });
                    let seen = hits
                        .iter()
                        .any(|h| h.index == hit.index && h.key.digest == hit.key.digest);
                    if !(tokens && seen) {
                        hits.push(hit);
                    }
                }
            }
            self.limits.hits = hits;
        }
        self.record.model = model.map(str::to_owned);
        self.record.note_mcp(&attrs.mcp);
        if decision.effect == Effect::Allow {
            self.list_calls = attrs
                .mcp
                .into_iter()
                .filter(|c| TargetKind::of_list_method(&c.method).is_some())
                .collect();
        }
        decision
    }

    /// Carries out a decision; an allowed request first gets its injected
    /// claims and loses `accept-encoding` when its answer must be read.
    fn admit_and_enforce(
        &mut self,
        host: &mut impl Host,
        active: &ActivePolicy,
        decision: Decision,
    ) -> Next {
        if decision.effect == Effect::Allow {
            match self.check_limits(host, active, &decision) {
                limits::Step::Go => {}
                limits::Step::Refuse(refusal) => return self.enforce(host, refusal),
                limits::Step::Wait => {
                    self.request = RequestState::Limiting;
                    return Next::Pause;
                }
            }
            if let Err(refusal) = self.take_route(host, active) {
                return self.enforce(host, refusal);
            }
            if !self.admitted {
                self.admit(host, active);
            }
            // Last: the exchanged token is the final word on
            // `Authorization` for the upstream.
            if let Some(section) = &active.policy.bundle().token_exchange {
                let secret = self.exchange_secret.clone();
                match txchg::start(
                    host,
                    active,
                    section,
                    secret.as_deref(),
                    &self.authorization,
                    &self.claims,
                ) {
                    Started::Cached(token) => set_bearer(host, &token),
                    Started::Sent(pending) => {
                        self.pending = Some(pending);
                        self.pending_decision = Some(decision);
                        self.request = RequestState::Exchanging;
                        return Next::Pause;
                    }
                    Started::Failed(e) => return self.refuse_exchange(host, e),
                }
            }
        }
        self.enforce(host, decision)
    }

    /// The request is forwarded on a route with a fallback, headers held:
    /// keep it as it goes upstream, to replay it there.
    fn keep_for_fallback(&mut self, host: &mut impl Host) {
        if !self.held_headers {
            return;
        }
        let Some(cluster) = self.route.as_ref().and_then(|r| r.fallback.clone()) else {
            return;
        };
        let body = match self.forwarded_body.take() {
            Some(body) => body,
            // Decided without a body to read: it had none.
            None if self.request_ended => Vec::new(),
            None => return,
        };
        let policy = self.policy.as_ref().map(|a| &a.policy);
        let mut headers = fallback::replay_headers(host.headers(Side::Request));
        // The fallback call goes to its cluster directly.
        headers.retain(|(k, _)| !routing::is_route_header(policy, k));
        self.replay = Some(Replay {
            cluster,
            headers,
            body,
        });
    }

    /// Sends an allowed request along its chosen route: the route header
    /// set (held headers), or — headers that left already — checked to
    /// be the one they carried; recorded and counted.
    fn take_route(&mut self, host: &mut impl Host, active: &ActivePolicy) -> Result<(), Decision> {
        if let Some(sent) = &self.route_sent {
            let cluster = |r: &Option<RouteChoice>| r.as_ref().map(|c| c.cluster.clone());
            if cluster(sent) != cluster(&self.route) {
                host.log(
                    Level::Warn,
                    "the body chose another route than the headers that already left: refused",
                );
                return Err(Decision::deny(Reason::RouteUnavailable)
                    .with_detail("route_needs_held_headers"));
            }
        } else if let Some(choice) = &self.route {
            routing::send_to(host, &active.policy, choice);
        }
        if let Some(choice) = &self.route {
            self.record.route = Some(routing::record(choice));
            host.count_route();
        }
        Ok(())
    }

    /// Headers not held: the request's headers go upstream before the
    /// body decides, so they are made ready for the upstream now (what
    /// [`Exchange::admit`] does for an allowed request, none of which
    /// depends on the body), and the body is held to its end. A bundle
    /// that exchanges tokens cannot set the upstream's token after the
    /// headers left: refused (503) rather than forwarded with none.
    fn release_request_headers(
        &mut self,
        host: &mut impl Host,
        active: &Arc<ActivePolicy>,
    ) -> Next {
        // Headers the rules deny whatever the body says never go upstream:
        // an upstream may act on a request line before reading a body.
        if let Some(denied) = self.denied_by_line(host, active) {
            return self.enforce(host, denied);
        }
        if active.policy.bundle().token_exchange.is_some() {
            host.log(
                Level::Warn,
                "token exchange on a body decision needs headers_stop_iteration (Envoy allow_on_headers_stop_iteration)",
            );
            host.remove_header(Side::Request, "authorization");
            let d = Decision::deny(Reason::TokenExchangeFailed).with_detail("headers_not_held");
            return self.enforce(host, d);
        }
        self.admit(host, active);
        self.route_on_line(host, active);
        // Whatever the body turns out to call, its answer may have to be
        // read (list answers, pins): it must come uncompressed.
        host.remove_header(Side::Request, "accept-encoding");
        Next::Continue
    }

    /// Headers not held: the route is chosen on what the headers show (no
    /// model but the model header's, no call, no prompt) and named before
    /// they leave; the body's choice must match it ([`Exchange::take_route`]).
    /// A bundle that may rewrite models loses `content-length` now, so a
    /// rewrite can still be framed.
    fn route_on_line(&mut self, host: &mut impl Host, active: &ActivePolicy) {
        let policy = &active.policy;
        if policy.routes().is_none() {
            return;
        }
        let headers = rule_headers(policy.header_names(), &self.headers);
        let attrs = BodyAttrs::default();
        let model = policy.request_model(&attrs, &headers).ok().flatten();
        let now = host.now_ms() / 1000;
        let request = RequestAttrs::new(&self.line.method, &self.line.path, &self.line.authority)
            .with_headers(&headers)
            .with_model(model)
            .with_peer(self.peer.as_ref(), self.workload_only)
            .at(now);
        let choice = policy.route(&self.claims, &request);
        if let Some(choice) = &choice {
            routing::send_to(host, policy, choice);
        }
        if policy
            .bundle()
            .routes
            .iter()
            .flat_map(|r| &r.rules)
            .any(|r| !r.models.is_empty())
        {
            host.remove_header(Side::Request, "content-length");
            self.headers
                .retain(|(k, _)| !k.eq_ignore_ascii_case("content-length"));
        }
        self.route_sent = Some(choice);
    }

    /// The denial the request's headers already earn, whatever its body
    /// (the rules with every body condition taken as met,
    /// [`ActivePolicy::line_policy`]); `None` when some body could be
    /// allowed, or a scope the caller lacks could allow it.
    fn denied_by_line(&self, host: &mut impl Host, active: &ActivePolicy) -> Option<Decision> {
        let line = active.line_policy()?;
        let headers = rule_headers(line.header_names(), &self.headers);
        let now = host.now_ms() / 1000;
        let request = RequestAttrs::new(&self.line.method, &self.line.path, &self.line.authority)
            .with_headers(&headers)
            .with_peer(self.peer.as_ref(), self.workload_only)
            .at(now);
        let decision = line.decide(&self.claims, &request);
        if decision.effect != Effect::Deny {
            return None;
        }
        // A scope could lift it: the body decides, so the challenge names
        // the scope its call needs (MCP step-up authorization). A dry-run
        // rule that would allow it is judged on the body too: the record
        // of a rule being tried out must say what the rule would do.
        let dry_run_allows = decision
            .dry_run
            .as_ref()
            .is_some_and(|d| d.effect == Effect::Allow);
        if dry_run_allows
            || line
                .scope_challenge(&decision, &self.claims, &request, &[])
                .is_some()
        {
            return None;
        }
        Some(decision)
    }

    /// An allowed request's headers: injected claims in, and
    /// `accept-encoding` out when its answer must be read.
    fn admit(&mut self, host: &mut impl Host, active: &ActivePolicy) {
        self.admitted = true;
        // No token passthrough: the client's token never reaches the
        // upstream (a token exchange may set a new one after this).
        resource::remove_client_token(host, &active.policy);
        // Client copies of injected headers (already gone when the header
        // checks ran; not when a dry-run bundle allows before them).
        for name in edges::forged_injected(&active.policy, &self.headers) {
            host.remove_header(Side::Request, &name);
        }
        for inj in &active.policy.bundle().inject {
            if let Some(value) = self.claims.get(&inj.claim).and_then(header_value) {
                host.set_header(Side::Request, &inj.header, &value);
            }
        }
        if self.scanner.is_some()
            || !self.list_calls.is_empty()
            || self.watch_lists()
            || self.limits.metered
        {
            host.remove_header(Side::Request, "accept-encoding");
        }
    }

    /// Refuses an allowed request whose upstream token could not be
    /// obtained: 503, never the caller's own token instead.
    fn refuse_exchange(
        &mut self,
        host: &mut impl Host,
        error: mcp_guard_engine::token_exchange::ExchangeError,
    ) -> Next {
        host.log(
            Level::Warn,
            &format!("token exchange failed ({}): {error}", error.code()),
        );
        host.remove_header(Side::Request, "authorization");
        let d = Decision::deny(Reason::TokenExchangeFailed).with_detail(error.code());
        self.enforce(host, d)
    }

    /// The answer to an HTTP call this exchange sent (`id` as the host
    /// returned it). An answer for another call, or arriving after the
    /// stream ended or was answered, is ignored.
    pub fn on_callout_answer(&mut self, host: &mut impl Host, id: u64, answer: &CalloutAnswer) {
        if self.fallback_call.is_some() && self.fallback_call == Some(id) {
            self.fallback_call = None;
            return self.finish_fallback(host, answer);
        }
        if self.request == RequestState::Limiting
            && self.limits.pending.as_ref().map(|p| p.id) == Some(id)
        {
            if let (Some(pending), Some(active)) = (self.limits.pending.take(), self.policy.clone())
            {
                self.on_limit_answer(host, &active, pending, answer);
            }
            return;
        }
        if self.request != RequestState::Exchanging
            || self.pending.as_ref().map(|p| p.id) != Some(id)
        {
            host.log(Level::Info, "late or unknown callout answer ignored");
            return;
        }
        let (Some(pending), Some(decision), Some(active)) = (
            self.pending.take(),
            self.pending_decision.take(),
            self.policy.clone(),
        ) else {
            return;
        };
        let Some(section) = &active.policy.bundle().token_exchange else {
            return;
        };
        match txchg::finish(host, &active, section, &pending, answer) {
            Ok(token) => {
                set_bearer(host, &token);
                self.enforce(host, decision);
                host.resume_request();
            }
            Err(e) => {
                self.refuse_exchange(host, e);
            }
        }
    }

    /// Envoy logs the stream (after its last callback, before the access
    /// log is written): the record is completed, scrubbed of personal data
    /// the bundle's scanner finds in its free-text members, sealed into the
    /// VM's `chain` and published with the flat keys. Once per exchange.
    pub fn on_log(&mut self, host: &mut impl Host, chain: Option<&mut DecisionChain>) {
        self.charge_tokens(host);
        let scanner = self.policy.as_ref().and_then(|a| a.policy.scanner());
        self.record
            .seal_and_publish(host, chain, scanner.map(|s| &**s));
    }

    /// The stream ended (completed or reset): a pending exchange is
    /// abandoned and its answer, if one still comes, ignored.
    pub fn on_stream_done(&mut self) {
        self.fallback_call = None;
        self.replay = None;
        if self.request == RequestState::Limiting {
            self.limits.pending = None;
            self.request = RequestState::Answered;
        }
        if self.request == RequestState::Exchanging {
            self.pending = None;
            self.pending_decision = None;
            self.request = RequestState::Answered;
        }
    }

    /// Picks the scanner for this caller: none when scrubbing is off or the
    /// caller's claims match an exemption (recorded).
    fn choose_scanner(&mut self, active: &ActivePolicy) {
        let pii = &active.policy.bundle().pii;
        // A workload-only caller has no claims: an exemption such as
        // `{"claim": "x", "exists": false}` must not exempt it.
        if !self.workload_only && pii.exempt.iter().any(|c| claim_holds(c, &self.claims)) {
            self.record.scrub_note = Some("exempt");
            return;
        }
        self.scanner = active.policy.scanner().cloned();
    }

    fn count(&mut self, host: &mut impl Host, report: &PiiReport) {
        if report.total() > 0 {
            self.record.redactions.merge(report);
            host.count_redactions(report);
        }
    }

    /// Response headers: choose how the body will be checked.
    pub fn on_response_headers(&mut self, host: &mut impl Host, end_of_stream: bool) -> Next {
        if matches!(self.response, ResponseState::Replied) {
            // Our own 502 coming back through the filter.
            return Next::Continue;
        }
        if !matches!(self.response, ResponseState::Start) {
            self.response = ResponseState::Refused;
            return self.refuse_response_now(host, "callback_order");
        }
        match self.request {
            RequestState::Forwarded => {}
            RequestState::Answered => {
                // Our own local reply coming back through the filter.
                self.response = ResponseState::Pass;
                return Next::Continue;
            }
            RequestState::Verifying if !proxy_replies::is_proxy_own(host) => {
                // The upstream answered a request whose body was never
                // released: nothing it says was asked for, and the body
                // is never released now.
                self.request = RequestState::Answered;
                return self.refuse_response_now(host, "response_before_verification");
            }
            RequestState::AwaitingBody | RequestState::Limiting
                if !self.held_headers && !proxy_replies::is_proxy_own(host) =>
            {
                // Headers not held: in this state they went upstream
                // (`release_request_headers`), the body is still held: the
                // upstream answered a request nobody decided (one that
                // answers on headers alone, while the client keeps the
                // body open). Never passed on, and the body never leaves.
                self.request = RequestState::Answered;
                return self.refuse_response_now(host, "response_before_decision");
            }
            RequestState::Start
            | RequestState::AwaitingBody
            | RequestState::Verifying
            | RequestState::Exchanging
            | RequestState::Limiting => {
                // Nothing was forwarded, or only headers and the proxy
                // says the answer is its own: a timeout, a reset upstream
                // of us, an unreachable upstream. It carries no upstream
                // data. The request is answered by it: a later
                // decision or exchange answer neither releases it
                // upstream nor sends a second reply.
                self.pending = None;
                self.pending_decision = None;
                self.limits.pending = None;
                self.request = RequestState::Answered;
                self.record.scrub_note = Some("response_before_decision");
                self.record.publish(host);
                self.response = ResponseState::Pass;
                return Next::Continue;
            }
        }
        if self.replay.is_some() {
            if let Some(next) = self.try_fallback(host) {
                return next;
            }
        }
        self.start_meter(host);
        if self.scanner.is_none() && self.list_calls.is_empty() && !self.watch_lists() {
            self.response = ResponseState::Pass;
            return Next::Continue;
        }
        let headers = host.headers(Side::Response);
        let content_type = find_header(&headers, "content-type").map(str::to_owned);
        self.response_content_type.clone_from(&content_type);
        let encoding = find_header(&headers, "content-encoding").map(str::to_owned);
        let safe = self
            .settings()
            .is_some_and(|p| is_listed_safe(&p.safe_content_types, content_type.as_deref()));
        // Clients read JSON-RPC only from JSON and event-stream answers:
        // those are read for smuggled list answers when pins are on.
        let readable_rpc = matches!(
            classify(content_type.as_deref()),
            ContentClass::EventStream | ContentClass::Text(ContentMode::Json)
        );
        let watched = self.watch_lists() && readable_rpc;
        if self.scanner.is_none() && self.list_calls.is_empty() && !watched {
            self.response = ResponseState::Pass;
            return Next::Continue;
        }
        let lists = !self.list_calls.is_empty() || watched;
        if let Some(encoding) = encoding {
            let identity = encoding.trim().eq_ignore_ascii_case("identity");
            // A listed-safe type passes compressed or not; anything to
            // scan or filter must arrive readable.
            let passes_anyway = safe && !lists;
            if !identity && !passes_anyway {
                let block = lists
                    || self
                        .settings()
                        .is_some_and(|p| p.on_compressed == Fallback::Block);
                if block {
                    return self.refuse_response_now(host, "compressed_response");
                }
                self.record.scrub_note = Some("compressed_not_scanned");
                self.record.publish(host);
                self.response = ResponseState::Pass;
                return Next::Continue;
            }
        }
        let class = classify(content_type.as_deref());
        if end_of_stream {
            // No body: nothing to scan or filter. A body callback after
            // this one is out of order and is dropped, not passed unscanned.
            self.response = ResponseState::Refused;
            return Next::Continue;
        }
        match class {
            ContentClass::EventStream => {
                host.remove_header(Side::Response, "content-length");
                self.response = ResponseState::Streaming(Box::new(Streaming {
                    lists: lists.then(|| {
                        McpSseFilter::new(&self.list_calls).with_pins(
                            self.policy
                                .as_ref()
                                .and_then(|a| a.policy.bundle().tool_pins.clone()),
                        )
                    }),
                    scrubber: self
                        .scanner
                        .clone()
                        .map(|scanner| StreamScrubber::new(scanner, ContentMode::Sse)),
                }));
                Next::Continue
            }
            ContentClass::Text(mode) => {
                if lists && mode != ContentMode::Json {
                    return self.refuse_response_now(host, "unfilterable_list_answer");
                }
                host.remove_header(Side::Response, "content-length");
                self.response = ResponseState::Held(Held::Text(mode));
                self.hold_response_body()
            }
            ContentClass::Sniff => {
                host.remove_header(Side::Response, "content-length");
                self.response = ResponseState::Held(Held::Sniff);
                self.hold_response_body()
            }
            ContentClass::Opaque if safe && !lists => {
                self.record.scrub_note = Some("safe_type_not_scanned");
                self.record.publish(host);
                self.response = ResponseState::Pass;
                Next::Continue
            }
            ContentClass::Opaque => self.refuse_response_now(host, "unscannable_content"),
        }
    }

    /// The route's cluster answered: a failure (5xx, Envoy's own 503s)
    /// replays the kept request to the fallback cluster and holds this
    /// answer; `None` lets the answer go on as usual (a success, or a
    /// proxy that refused the call — the failed answer is then what the
    /// client gets, checked like any other).
    fn try_fallback(&mut self, host: &mut impl Host) -> Option<Next> {
        let replay = self.replay.take()?;
        let status = host.header(Side::Response, ":status");
        if !fallback::failed(status.as_deref()) {
            return None;
        }
        let headers: Vec<(&str, &str)> = replay
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let id = host.http_call(
            &replay.cluster,
            &headers,
            &replay.body,
            fallback::FALLBACK_TIMEOUT_MS,
        );
        let Some(id) = id else {
            host.log(
                Level::Warn,
                "route fallback: the proxy refused the call; the failed answer passes",
            );
            return None;
        };
        host.log(
            Level::Info,
            &format!(
                "route fallback: {} answered {}; replaying to {}",
                self.route.as_ref().map_or("?", |r| &*r.cluster),
                status.as_deref().unwrap_or("nothing"),
                replay.cluster
            ),
        );
        self.fallback_call = Some(id);
        self.response = ResponseState::FallingBack;
        Some(Next::Pause)
    }

    /// The fallback cluster answered: its answer, checked like an
    /// upstream's (scrubbed, lists filtered), replaces the failed one as
    /// a local reply. No answer, or one that cannot be checked: 502.
    fn finish_fallback(&mut self, host: &mut impl Host, answer: &CalloutAnswer) {
        if !matches!(self.response, ResponseState::FallingBack) {
            return;
        }
        let status = answer
            .status
            .as_deref()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|s| (200..600).contains(s));
        let Some(status) = status else {
            self.response = ResponseState::Start;
            self.refuse_response_now(host, "route_fallback_failed");
            return;
        };
        // Charged whatever the client gets: the model ran.
        self.meter_fallback(status, answer);
        let limit = self.settings().map_or(0, |p| p.max_body_bytes);
        let checked = if answer.body.len() > limit {
            Err("response_too_large")
        } else {
            self.check_fallback_body(host, answer)
        };
        let body = match checked {
            Ok(body) => body,
            Err(reason) => {
                self.response = ResponseState::Start;
                self.refuse_response_now(host, reason);
                return;
            }
        };
        if let Some(route) = self.record.route.as_mut() {
            route.fell_back = true;
        }
        host.count_route_fallback();
        self.response_replied = true;
        let headers = fallback::reply_headers(&answer.headers);
        // Ours before it is sent: a host that runs the reply back through
        // the response hooks at once must see it as ours.
        self.response = ResponseState::Replied;
        self.reply_body.clone_from(&body);
        if !host.send_reply(status, fallback::FALLBACK_DETAILS, &headers, &body) {
            host.log(Level::Warn, "fallback answer refused by host; resetting");
            host.reset();
            self.response = ResponseState::Refused;
        }
        self.record.publish(host);
    }

    /// The fallback's body as the client may see it: what a held answer
    /// goes through ([`Exchange::finish_held`]), on bytes the proxy's
    /// HTTP call gathered. `Err` names why it cannot be passed.
    fn check_fallback_body(
        &mut self,
        host: &mut impl Host,
        answer: &CalloutAnswer,
    ) -> Result<Vec<u8>, &'static str> {
        let body = &answer.body;
        let watch = self.watch_lists();
        if (self.scanner.is_none() && self.list_calls.is_empty() && !watch) || body.is_empty() {
            return Ok(body.clone());
        }
        let encoding = answer.header("content-encoding").map(str::trim);
        if encoding.is_some_and(|e| !e.eq_ignore_ascii_case("identity")) {
            return Err("compressed_response");
        }
        let content_type = answer.header("content-type");
        let safe = self
            .settings()
            .is_some_and(|p| is_listed_safe(&p.safe_content_types, content_type));
        let lists = !self.list_calls.is_empty();
        let mode = match classify(content_type) {
            ContentClass::EventStream if lists => return Err("unfilterable_list_answer"),
            ContentClass::EventStream => ContentMode::Sse,
            ContentClass::Text(mode) => mode,
            ContentClass::Sniff => match sniff(body) {
                Sniffed::Json => ContentMode::Json,
                Sniffed::Text if !lists => ContentMode::Text,
                Sniffed::Binary if !lists && safe => return Ok(body.clone()),
                Sniffed::Text => return Err("unfilterable_list_answer"),
                Sniffed::Binary => return Err("unscannable_content"),
            },
            ContentClass::Opaque if safe && !lists => return Ok(body.clone()),
            ContentClass::Opaque => return Err("unscannable_content"),
        };
        if lists && mode != ContentMode::Json {
            return Err("unfilterable_list_answer");
        }
        let current = if mode == ContentMode::Json && (lists || watch) {
            self.filter_lists(host, body)?
                .unwrap_or_else(|| body.clone())
        } else {
            body.clone()
        };
        let Some(scanner) = self.scanner.clone() else {
            return Ok(current);
        };
        let mut out = Vec::with_capacity(current.len());
        let report = scrub_whole(&scanner, mode, &current, &mut out);
        self.count(host, &report);
        if report.blocked() {
            return Err("pii_blocked");
        }
        Ok(if report.total() > 0 { out } else { current })
    }

    /// A response whose body is read whole: its headers are held too when
    /// the host can; otherwise they go on now (without `content-length`)
    /// and only the body is held.
    fn hold_response_body(&mut self) -> Next {
        if self.held_headers {
            return Next::Pause;
        }
        Next::Continue
    }

    /// Refuses a response whose headers have not left yet with a 502
    /// local reply.
    fn refuse_response_now(&mut self, host: &mut impl Host, reason: &'static str) -> Next {
        if self.response_replied {
            // One local reply per answer: a repeated headers callback
            // after a refusal is held, not answered again.
            self.response = ResponseState::Refused;
            return Next::Pause;
        }
        self.response_replied = true;
        // The record keeps the note operators already search for.
        self.record.scrub_note = Some(match reason {
            "compressed_response" => "compressed_blocked",
            other => other,
        });
        host.count_refusal();
        self.record.publish(host);
        let body = reply::refusal_body(reason, &self.request_id);
        let details = format!("mcp_{reason}");
        let headers = [
            ("content-type", "application/json"),
            ("cache-control", "no-store"),
        ];
        if host.send_reply(502, &details, &headers, &body) {
            self.response = ResponseState::Replied;
            self.reply_body = body;
        } else {
            host.log(Level::Warn, "local reply refused by host; resetting");
            host.reset();
            self.response = ResponseState::Refused;
        }
        Next::Pause
    }

    /// A response body chunk (`size` = bytes buffered so far when held,
    /// the chunk when streaming).
    pub fn on_response_body(
        &mut self,
        host: &mut impl Host,
        size: usize,
        end_of_stream: bool,
    ) -> Next {
        let redactions_before = self.record.redactions.total();
        let next = match &self.response {
            ResponseState::Pass => {
                if self.limits.meter.is_some() && size > 0 {
                    if let Some(chunk) = host.body(Side::Response, size) {
                        self.meter(&chunk);
                    }
                }
                Next::Continue
            }
            ResponseState::FallingBack => {
                // The failed answer never reaches the client: dropped as
                // it comes, held until the fallback's answer replaces it.
                if size > 0 && !host.replace_body(Side::Response, size, &[]) {
                    host.reset();
                }
                Next::Pause
            }
            ResponseState::Replied => {
                // Our own reply's body passes; anything else is dropped.
                let ours = size == 0
                    || host.body(Side::Response, size).is_some_and(|chunk| {
                        !chunk.is_empty()
                            && chunk.len() <= self.reply_body.len()
                            && self
                                .reply_body
                                .windows(chunk.len())
                                .any(|w| w == chunk.as_slice())
                    });
                if !ours && !host.replace_body(Side::Response, size, &[]) {
                    host.reset();
                }
                Next::Continue
            }
            ResponseState::Start | ResponseState::Refused => {
                // A body with no headers seen, or after a refusal: dropped.
                if !host.replace_body(Side::Response, size, &[]) && size > 0 {
                    host.reset();
                }
                Next::Continue
            }
            ResponseState::Streaming(_) => {
                self.stream_chunk(host, size, end_of_stream);
                Next::Continue
            }
            ResponseState::Held(held) => {
                let held = *held;
                self.response_len = size;
                let limit = self.settings().map_or(0, |p| p.max_body_bytes);
                if size > limit {
                    self.overflow(host, held, size, end_of_stream)
                } else if !end_of_stream {
                    Next::Pause
                } else {
                    self.finish_held(host, held, size)
                }
            }
        };
        // Published again whenever the counts move, so a stream reset
        // half-way still logs what was replaced; not on every chunk.
        if end_of_stream || self.record.redactions.total() != redactions_before {
            self.record.publish(host);
        }
        next
    }

    /// A held body outgrew the limit: stream the rest when the bundle says
    /// so and the body is text of a known kind, else refuse.
    fn overflow(
        &mut self,
        host: &mut impl Host,
        held: Held,
        size: usize,
        end_of_stream: bool,
    ) -> Next {
        let stream = self
            .settings()
            .is_some_and(|p| p.on_overflow == Fallback::Stream);
        match (held, self.scanner.clone()) {
            (Held::Text(mode), Some(scanner))
                if stream && self.list_calls.is_empty() && !self.watch_lists() =>
            {
                self.record.scrub_note = Some("over_limit_streamed");
                self.response = ResponseState::Streaming(Box::new(Streaming {
                    lists: None,
                    scrubber: Some(StreamScrubber::new(scanner, mode)),
                }));
                self.stream_chunk(host, size, end_of_stream);
                Next::Continue
            }
            _ => self.refuse_held(host, size, "response_too_large"),
        }
    }

    /// Response trailers: a held body ends here (HTTP/2 answers with
    /// trailers never send a body chunk with `end_of_stream`), and a
    /// stream's held-back tail is flushed.
    pub fn on_response_trailers(&mut self, host: &mut impl Host) -> Next {
        match &self.response {
            ResponseState::Held(held) => {
                let held = *held;
                let size = self.response_len;
                let next = self.finish_held(host, held, size);
                self.record.publish(host);
                return next;
            }
            ResponseState::Streaming(_) => {
                self.stream_end_at_trailers(host);
                self.record.publish(host);
            }
            ResponseState::Start => {
                self.response = ResponseState::Refused;
            }
            ResponseState::FallingBack => return Next::Pause,
            ResponseState::Pass | ResponseState::Refused | ResponseState::Replied => {}
        }
        Next::Continue
    }

    /// The whole held response: list filtering, then scrubbing.
    fn finish_held(&mut self, host: &mut impl Host, held: Held, size: usize) -> Next {
        let body = match host.body(Side::Response, size) {
            Some(body) if body.len() == size => body,
            None if size == 0 => Vec::new(),
            _ => return self.refuse_held(host, size, "body_unreadable"),
        };
        self.meter(&body);
        let content_type = self.response_content_type.clone();
        let safe = self
            .settings()
            .is_some_and(|p| is_listed_safe(&p.safe_content_types, content_type.as_deref()));
        let mode = match held {
            Held::Text(mode) => mode,
            Held::Sniff => match sniff(&body) {
                Sniffed::Json => ContentMode::Json,
                Sniffed::Text if self.list_calls.is_empty() => ContentMode::Text,
                Sniffed::Text => return self.refuse_held(host, size, "unfilterable_list_answer"),
                Sniffed::Binary if self.list_calls.is_empty() && safe => {
                    self.record.scrub_note = Some("safe_type_not_scanned");
                    return Next::Continue;
                }
                Sniffed::Binary => return self.refuse_held(host, size, "unscannable_content"),
            },
        };
        let watched = self.watch_lists() && mode == ContentMode::Json;
        let filtered = if self.list_calls.is_empty() && !watched {
            None
        } else {
            match self.filter_lists(host, &body) {
                Ok(filtered) => filtered,
                Err(reason) => return self.refuse_held(host, size, reason),
            }
        };
        let changed = filtered.is_some();
        let current = filtered.unwrap_or(body);
        let Some(scanner) = self.scanner.clone() else {
            if changed && !host.replace_body(Side::Response, size, &current) {
                return self.refuse_held(host, size, "body_not_replaced");
            }
            return Next::Continue;
        };
        let mut out = std::mem::take(&mut self.scratch);
        let report = scrub_whole(&scanner, mode, &current, &mut out);
        self.count(host, &report);
        let next = if report.blocked() {
            self.refuse_held(host, size, "pii_blocked")
        } else if (changed || report.total() > 0) && !host.replace_body(Side::Response, size, &out)
        {
            self.refuse_held(host, size, "body_not_replaced")
        } else {
            Next::Continue
        };
        self.scratch = out;
        next
    }

    /// Removes MCP list entries the caller may not use.
    /// `Ok(None)` when nothing was removed; `Err` when the answer cannot
    /// be read strictly (it could show entries it was meant to hide).
    fn filter_lists(
        &mut self,
        host: &mut impl Host,
        body: &[u8],
    ) -> Result<Option<Vec<u8>>, &'static str> {
        let active = self.policy.clone().ok_or("no_policy")?;
        let request = RequestAttrs::new(&self.line.method, &self.line.path, &self.line.authority)
            .with_peer(self.peer.as_ref(), self.workload_only);
        let claims = &self.claims;
        let pins = active.policy.bundle().tool_pins.as_deref();
        let outcome = filter_list_answers_pinned(body, pins, |kind, name| {
            active.policy.allows_target(claims, &request, kind, name)
        })
        .map_err(|_| "mcp_list_unfilterable")?;
        let changed = outcome.pins.mismatched.first().cloned();
        pins::remember(
            host,
            &active.policy,
            &outcome.pins.advertised,
            changed.is_some(),
        );
        if changed.is_some() {
            self.record.tool_pin = changed;
            if pins.is_some_and(|p| p.on_change == OnChange::Refuse) {
                return Err("tool_pin_mismatch");
            }
        }
        self.record.mcp_hidden += outcome.removed;
        Ok(outcome.body)
    }

    /// Refuses a response whose headers are still held: 502 with a JSON
    /// body naming the reason. A host that will not replace the body gets
    /// a local reply instead, so the held body never leaves.
    fn refuse_held(&mut self, host: &mut impl Host, size: usize, reason: &'static str) -> Next {
        let body = reply::refusal_body(reason, &self.request_id);
        self.record.scrub_note = Some(reason);
        if !self.held_headers {
            // A held body's headers already left (`hold_response_body`):
            // the status went with them, the refusal is the whole body.
            if host.replace_body(Side::Response, size, &body) {
                self.response = ResponseState::Refused;
                host.count_refusal();
                return Next::Continue;
            }
            // Envoy resets a stream whose answer has started.
            return self.refuse_response_now(host, reason);
        }
        if host.replace_body(Side::Response, size, &body) {
            host.set_header(Side::Response, ":status", "502");
            host.set_header(Side::Response, "content-type", "application/json");
            host.remove_header(Side::Response, "content-length");
            self.response = ResponseState::Refused;
            host.count_refusal();
            return Next::Continue;
        }
        self.refuse_response_now(host, reason)
    }

    /// Ends a stream that has started with an explicit SSE error event; a
    /// host that will not take it resets the exchange instead, so the
    /// chunk never leaves.
    fn refuse_stream(&mut self, host: &mut impl Host, size: usize, reason: &'static str) {
        let event = reply::refusal_event(reason, &self.request_id);
        if !host.replace_body(Side::Response, size, &event) {
            host.reset();
        }
        self.response = ResponseState::Refused;
        self.record.scrub_note = Some(reason);
        host.count_refusal();
    }

    /// Runs bytes through a stream's list filter and scrubber; `end`
    /// flushes what they hold. Appends what may leave to `out`.
    fn run_stream(
        &mut self,
        host: &mut impl Host,
        stream: &mut Streaming,
        input: &[u8],
        end: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), StreamRefusal> {
        let filtered;
        let input = match stream.lists.as_mut() {
            Some(lists) => {
                let mut buf = Vec::with_capacity(input.len());
                let active = self.policy.clone().ok_or("no_policy")?;
                let request =
                    RequestAttrs::new(&self.line.method, &self.line.path, &self.line.authority)
                        .with_peer(self.peer.as_ref(), self.workload_only);
                let claims = &self.claims;
                let allowed = |kind: TargetKind, name: &str| {
                    active.policy.allows_target(claims, &request, kind, name)
                };
                let before = lists.removed();
                let result = lists.push(input, allowed, &mut buf).and_then(|()| {
                    if end {
                        lists.finish(allowed, &mut buf)
                    } else {
                        Ok(())
                    }
                });
                self.record.mcp_hidden += lists.removed().saturating_sub(before);
                let (advertised, changed) = lists.take_advertised();
                pins::remember(host, &active.policy, &advertised, !changed.is_empty());
                if self.record.tool_pin.is_none() {
                    self.record.tool_pin = changed.into_iter().next();
                }
                result.map_err(|e| e.reason())?;
                filtered = buf;
                filtered.as_slice()
            }
            None => input,
        };
        let Some(scrubber) = stream.scrubber.as_mut() else {
            out.extend_from_slice(input);
            return Ok(());
        };
        let before = scrubber.report();
        scrubber.push(input, out);
        if end {
            scrubber.finish(out);
        }
        let after = scrubber.report();
        self.count(host, &after.since(&before));
        if let Some(e) = scrubber.error() {
            return Err(e.reason());
        }
        if after.blocked() {
            return Err("pii_blocked");
        }
        Ok(())
    }

    /// One chunk of a streamed response.
    fn stream_chunk(&mut self, host: &mut impl Host, size: usize, end_of_stream: bool) {
        let Some(chunk) = host.body(Side::Response, size) else {
            if size > 0 {
                self.refuse_stream(host, size, "body_unreadable");
            }
            return;
        };
        let ResponseState::Streaming(mut stream) =
            std::mem::replace(&mut self.response, ResponseState::Refused)
        else {
            return;
        };
        self.meter(&chunk);
        // One output buffer per stream, reused chunk after chunk.
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let result = self.run_stream(host, &mut stream, &chunk, end_of_stream, &mut out);
        self.response = ResponseState::Streaming(stream);
        if let Err(reason) = result {
            self.scratch = out;
            return self.refuse_stream(host, size, reason);
        }
        if out != chunk && !host.replace_body(Side::Response, size, &out) {
            self.scratch = out;
            host.reset();
            self.response = ResponseState::Refused;
            self.record.scrub_note = Some("body_not_replaced");
            host.count_refusal();
            return;
        }
        self.scratch = out;
    }

    /// Trailers end a stream: what the filter and scrubber still hold is
    /// written before them. A host that cannot add body bytes at trailers
    /// loses that tail (recorded), which is never sent unscanned.
    fn stream_end_at_trailers(&mut self, host: &mut impl Host) {
        let ResponseState::Streaming(mut stream) =
            std::mem::replace(&mut self.response, ResponseState::Refused)
        else {
            return;
        };
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        let result = self.run_stream(host, &mut stream, &[], true, &mut out);
        self.response = ResponseState::Streaming(stream);
        match result {
            Err(reason) => self.refuse_stream(host, 0, reason),
            Ok(()) if !out.is_empty() && !host.replace_body(Side::Response, 0, &out) => {
                self.record.scrub_note = Some("stream_tail_dropped");
                host.log(
                    Level::Warn,
                    "stream tail could not be written before trailers; dropped",
                );
            }
            Ok(()) => {}
        }
        self.scratch = out;
    }
}
