//! The request side of an exchange decided on its `Mcp-Method` /
//! `Mcp-Name` headers: the decision at the headers, then the held body's
//! check against the announced call ([`crate::mcp_headers`]).

use std::sync::Arc;

use mcp_guard_engine::mcp::{verify_body, BodyAttrs, TargetKind};
use mcp_guard_engine::{Effect, Reason};

use super::{Exchange, Next, RequestState};
use crate::active::ActivePolicy;
use crate::host::Host;

impl Exchange {
    /// Decides on the announced call. A denial is answered now, before
    /// any body byte; an allowed request's headers go upstream while its
    /// body is held for [`Exchange::finish_verify`]. The allow is counted
    /// once the body agrees.
    pub(super) fn decide_on_headers(
        &mut self,
        host: &mut impl Host,
        active: &Arc<ActivePolicy>,
    ) -> Next {
        let decision = self.evaluate(host, active, None);
        if decision.effect != Effect::Allow {
            return self.enforce(host, decision);
        }
        // Global limits decide at the body (a held request waits for the
        // service there); local ones count the announced call now.
        match self.check_limits(host, active, &decision) {
            super::limits::Step::Go => {}
            super::limits::Step::Refuse(refusal) => return self.enforce(host, refusal),
            super::limits::Step::Wait => {
                self.limits.pending = None;
                let d = mcp_guard_engine::Decision::deny(Reason::RateLimitUnavailable)
                    .with_detail("headers_decision");
                return self.enforce(host, d);
            }
        }
        self.admit(host, active);
        self.record.decision = Some(decision);
        self.record.publish(host);
        self.request = RequestState::Verifying;
        Next::Continue
    }

    /// A body chunk of a request allowed on its headers: held to its end,
    /// within the bundle's limit.
    pub(super) fn verify_chunk(
        &mut self,
        host: &mut impl Host,
        size: usize,
        end_of_stream: bool,
    ) -> Next {
        let Some(active) = self.policy.clone() else {
            return self.refuse_out_of_order(host);
        };
        if size > active.policy.bundle().limits.max_request_body_bytes {
            let d = active.policy.deny_for(Reason::BodyTooLarge);
            return self.enforce(host, d);
        }
        self.request_len = size;
        if end_of_stream {
            self.finish_verify(host)
        } else {
            Next::Pause
        }
    }

    /// The whole body of a request allowed on its headers: it must be
    /// strict JSON making exactly the announced call, or the request is
    /// answered (Envoy then resets the upstream stream, which never got
    /// the body).
    pub(super) fn finish_verify(&mut self, host: &mut impl Host) -> Next {
        let Some(active) = self.policy.clone() else {
            return self.refuse_out_of_order(host);
        };
        let body = match self.whole_request_body(host, &active) {
            Ok(body) => body,
            Err(refused) => return refused,
        };
        let attrs = match active.policy.request_body(&body) {
            Ok(attrs) => attrs,
            Err(refusal) => {
                let d = active.policy.refuse_body(refusal);
                return self.enforce(host, d);
            }
        };
        if let Some(detail) = self.check_announced(&attrs) {
            return self.refuse(host, &active, Reason::HeaderMismatch, detail);
        }
        // The body's calls carry the ids that list answers are matched by.
        self.list_calls = attrs
            .mcp
            .into_iter()
            .filter(|c| TargetKind::of_list_method(&c.method).is_some())
            .collect();
        match self.record.decision.clone() {
            Some(allowed) => self.enforce(host, allowed),
            None => self.refuse_out_of_order(host),
        }
    }

    /// The detail code when a read body does not make the announced call
    /// (and keeps its JSON-RPC id for the answer); `None` when it does or
    /// nothing was announced.
    pub(super) fn check_announced(&mut self, attrs: &BodyAttrs) -> Option<&'static str> {
        let announced = self.announced.as_ref()?;
        self.jsonrpc_id = attrs.mcp.first().and_then(|c| c.id.clone());
        verify_body(announced, attrs).err().map(|m| m.code())
    }
}
