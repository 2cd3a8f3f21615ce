//! The exchange's side of rate limits and token budgets
//! ([`crate::limits`]): which limits an allowed request counts under,
//! the checks before it goes upstream, the answer metered on its way
//! back and the charge when the stream is logged.

use std::sync::Arc;

use mcp_guard_engine::rate_limit::usage::{Format, UsageMeter};
use mcp_guard_engine::rate_limit::{CompiledLimit, LimitKind, OnUnavailable, Store, Window};
use mcp_guard_engine::{Decision, Reason};

use super::{Exchange, Next, RequestState};
use crate::active::ActivePolicy;
use crate::host::{Host, Level, RateLimitEvent};
use crate::limits::global::{self, Verdict};
use crate::limits::local::{self, Count};
use crate::limits::{PendingCheck, Refusal};
use crate::record::LimitNote;
use crate::token_exchange::CalloutAnswer;

/// What the checks decided.
pub(super) enum Step {
    /// Go on with the allowed request.
    Go,
    /// Refuse it with this decision (429 or 503).
    Refuse(Decision),
    /// A global check is on its way: hold the request.
    Wait,
}

impl Exchange {
    /// Whether a refusal over `limit` is only recorded (a dry-run limit
    /// or bundle).
    fn limit_dry_run(active: &ActivePolicy, limit: &CompiledLimit) -> bool {
        limit.dry_run || active.policy.bundle().dry_run
    }

    /// Records the limit in the decision record: a refusing one always
    /// wins, else the one with the least left.
    fn note_limit(&mut self, note: LimitNote) {
        let replace = match &self.record.limit {
            None => true,
            Some(old) if old.outcome == "ok" => {
                note.outcome != "ok" || note.remaining < old.remaining
            }
            Some(_) => false,
        };
        if replace {
            self.record.limit = Some(note);
        }
    }

    /// A limit is spent: refused, or (dry run) recorded and let through.
    fn over(
        &mut self,
        host: &mut impl Host,
        active: &ActivePolicy,
        limit: &CompiledLimit,
        reset_secs: u64,
    ) -> Option<Decision> {
        host.count_rate_limit(RateLimitEvent::Over, 1);
        self.note_limit(LimitNote {
            id: Arc::clone(&limit.id),
            outcome: "over",
            remaining: 0,
            charged_tokens: None,
        });
        if Self::limit_dry_run(active, limit) {
            host.log(
                Level::Info,
                &format!("dry run: limit {} would refuse this request", limit.id),
            );
            return None;
        }
        self.limits.refusal = Some(Refusal {
            id: Arc::clone(&limit.id),
            limit: limit.kind.amount(),
            window_secs: limit.window_secs,
            reset_secs,
        });
        Some(Decision::deny(Reason::RateLimited))
    }

    /// The store or service could not say: refused (503) unless the
    /// limit is a dry run or the bundle lets it through.
    fn unavailable(
        &mut self,
        host: &mut impl Host,
        active: &ActivePolicy,
        limit: &CompiledLimit,
        why: &str,
        detail: &'static str,
        allow: bool,
    ) -> Option<Decision> {
        host.count_rate_limit(RateLimitEvent::Error, 1);
        host.log(
            Level::Warn,
            &format!("rate limit {} could not be checked ({why})", limit.id),
        );
        self.note_limit(LimitNote {
            id: Arc::clone(&limit.id),
            outcome: "unavailable",
            remaining: 0,
            charged_tokens: None,
        });
        if allow || Self::limit_dry_run(active, limit) {
            return None;
        }
        Some(Decision::deny(Reason::RateLimitUnavailable).with_detail(detail))
    }

    /// Runs the checks of an allowed request (once).
    pub(super) fn check_limits(
        &mut self,
        host: &mut impl Host,
        active: &ActivePolicy,
        decision: &Decision,
    ) -> Step {
        if self.limits.checked {
            return Step::Go;
        }
        self.limits.checked = true;
        if self.limits.hits.is_empty() {
            return Step::Go;
        }
        let limits = active.policy.limits();
        let now = host.now_ms() / 1000;
        let hits = self.limits.hits.clone();
        self.limits.metered = hits.iter().any(|h| {
            limits
                .get(h.index)
                .is_some_and(|l| matches!(l.kind, LimitKind::Tokens(_)))
        });
        // Local: read every counter first, so a spent one refuses before
        // anything is counted.
        let mut keys: Vec<(usize, String, u64)> = Vec::new();
        for (pos, hit) in hits.iter().enumerate() {
            let Some(limit) = limits.get(hit.index) else {
                continue;
            };
            if limit.store != Store::Local {
                continue;
            }
            let window = Window::at(now, limit.window_secs);
            let used = local::counter_key(host, &hit.key.shared_key(&limit.id))
                .and_then(|key| local::peek(host, &key, window.start).map(|used| (key, used)));
            match used {
                Err(_) => {
                    if let Some(d) = self.unavailable(host, active, limit, "store", "store", false)
                    {
                        return Step::Refuse(d);
                    }
                }
                Ok((_, used)) if used >= limit.kind.amount() => {
                    if let Some(d) = self.over(host, active, limit, window.reset_in(now)) {
                        return Step::Refuse(d);
                    }
                }
                Ok((key, used)) => keys.push((pos, key, used)),
            }
        }
        for (pos, key, used) in keys {
            let Some(limit) = hits.get(pos).and_then(|h| limits.get(h.index)) else {
                continue;
            };
            let window = Window::at(now, limit.window_secs);
            let amount = limit.kind.amount();
            let used = match limit.kind {
                LimitKind::Tokens(_) => Ok(Count::Under { used }),
                LimitKind::Requests(_) => local::add(host, &key, window.start, 1, Some(amount)),
            };
            match used {
                Err(_) => {
                    if let Some(d) = self.unavailable(host, active, limit, "store", "store", false)
                    {
                        return Step::Refuse(d);
                    }
                }
                Ok(Count::Over { .. }) => {
                    if let Some(d) = self.over(host, active, limit, window.reset_in(now)) {
                        return Step::Refuse(d);
                    }
                }
                Ok(Count::Under { used }) => self.note_limit(LimitNote {
                    id: Arc::clone(&limit.id),
                    outcome: "ok",
                    remaining: amount.saturating_sub(used),
                    charged_tokens: None,
                }),
            }
        }
        // Global: one call for every global limit.
        let sent: Vec<usize> = hits
            .iter()
            .enumerate()
            .filter(|(_, h)| {
                limits
                    .get(h.index)
                    .is_some_and(|l| l.store == Store::Global)
            })
            .map(|(pos, _)| pos)
            .collect();
        let Some(settings) = active.policy.bundle().limits.global.as_ref() else {
            return Step::Go;
        };
        if sent.is_empty() {
            return Step::Go;
        }
        if sent.len() > global::MAX_DESCRIPTORS {
            // The service refuses the call whole; that is no outage for
            // `on_unavailable: allow` to let through (a batch of many
            // limited calls would pass uncounted).
            host.count_rate_limit(RateLimitEvent::Error, 1);
            host.log(
                Level::Warn,
                &format!(
                    "{} global limits for one request, the service takes {}: refused",
                    sent.len(),
                    global::MAX_DESCRIPTORS
                ),
            );
            if active.policy.bundle().dry_run {
                return Step::Go;
            }
            return Step::Refuse(
                Decision::deny(Reason::RateLimitUnavailable).with_detail("too_many_descriptors"),
            );
        }
        let descriptors: Vec<_> = sent
            .iter()
            .filter_map(|&pos| {
                let hit = hits.get(pos)?;
                Some(global::descriptor(limits.get(hit.index)?, &hit.key))
            })
            .collect();
        match global::send(host, settings, &descriptors, 1, false) {
            Some(id) => {
                self.limits.pending = Some(PendingCheck {
                    id,
                    sent,
                    decision: decision.clone(),
                });
                Step::Wait
            }
            None => self.global_unavailable(host, active, &sent, "callout_refused"),
        }
    }

    /// The rate-limit service could not be asked about `sent`.
    fn global_unavailable(
        &mut self,
        host: &mut impl Host,
        active: &ActivePolicy,
        sent: &[usize],
        why: &str,
    ) -> Step {
        let allow = active
            .policy
            .bundle()
            .limits
            .global
            .as_ref()
            .is_some_and(|g| g.on_unavailable == OnUnavailable::Allow);
        let limits = active.policy.limits();
        // Counted once per call; the first limit that would refuse does.
        let mut refusal = None;
        for &pos in sent {
            let Some(limit) = self.limits.hits.get(pos).and_then(|h| limits.get(h.index)) else {
                continue;
            };
            if refusal.is_none() {
                refusal = self.unavailable(host, active, limit, why, "unavailable", allow);
                if refusal.is_some() {
                    break;
                }
            }
        }
        match refusal {
            Some(d) => Step::Refuse(d),
            None => Step::Go,
        }
    }

    /// The rate-limit service answered the check `pending` sent.
    pub(super) fn on_limit_answer(
        &mut self,
        host: &mut impl Host,
        active: &Arc<ActivePolicy>,
        pending: PendingCheck,
        answer: &CalloutAnswer,
    ) -> Next {
        let limits = active.policy.limits();
        let now = host.now_ms() / 1000;
        let step = match global::verdict(answer, pending.sent.len()) {
            Verdict::Ok(remaining) => {
                for (&pos, left) in pending.sent.iter().zip(remaining) {
                    if let Some(limit) = self.limits.hits.get(pos).and_then(|h| limits.get(h.index))
                    {
                        let id = Arc::clone(&limit.id);
                        self.note_limit(LimitNote {
                            id,
                            outcome: "ok",
                            remaining: left,
                            charged_tokens: None,
                        });
                    }
                }
                Step::Go
            }
            Verdict::Over { index, reset_secs } => {
                let limit = pending
                    .sent
                    .get(index)
                    .and_then(|&pos| self.limits.hits.get(pos))
                    .and_then(|h| limits.get(h.index));
                match limit {
                    Some(limit) => {
                        let reset = reset_secs
                            .unwrap_or_else(|| Window::at(now, limit.window_secs).reset_in(now))
                            .clamp(1, limit.window_secs.max(1));
                        match self.over(host, active, limit, reset) {
                            Some(d) => Step::Refuse(d),
                            None => Step::Go,
                        }
                    }
                    None => self.global_unavailable(host, active, &pending.sent, "bad_index"),
                }
            }
            Verdict::Unavailable(why) => self.global_unavailable(host, active, &pending.sent, why),
        };
        self.request = RequestState::AwaitingBody;
        let next = match step {
            Step::Refuse(d) => self.enforce(host, d),
            Step::Go | Step::Wait => self.admit_and_enforce(host, active, pending.decision),
        };
        if next == Next::Continue {
            host.resume_request();
        }
        next
    }

    /// The answer's headers: a metered request reads its usage.
    pub(super) fn start_meter(&mut self, host: &mut impl Host) {
        if !self.limits.metered || self.request != RequestState::Forwarded {
            return;
        }
        let status = host.header(crate::host::Side::Response, ":status");
        self.limits.response_ok = status.as_deref().is_some_and(|s| s.starts_with('2'));
        let event_stream = host
            .header(crate::host::Side::Response, "content-type")
            .is_some_and(|t| {
                t.split(';')
                    .next()
                    .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
            });
        self.limits.meter = Some(UsageMeter::new(if event_stream {
            Format::Sse
        } else {
            Format::Json
        }));
    }

    /// The fallback cluster's whole answer: metered like an upstream's
    /// (the primary's failed answer was never metered), so an answer
    /// that falls back is charged too.
    pub(super) fn meter_fallback(&mut self, status: u32, answer: &CalloutAnswer) {
        if !self.limits.metered || self.request != RequestState::Forwarded {
            return;
        }
        self.limits.response_ok = (200..300).contains(&status);
        let event_stream = answer.header("content-type").is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("text/event-stream"))
        });
        let mut meter = UsageMeter::new(if event_stream {
            Format::Sse
        } else {
            Format::Json
        });
        meter.push(&answer.body);
        self.limits.meter = Some(meter);
    }

    /// Answer bytes as the upstream sent them (before scrubbing).
    pub(super) fn meter(&mut self, bytes: &[u8]) {
        if let Some(meter) = self.limits.meter.as_mut() {
            meter.push(bytes);
        }
    }

    /// The stream is logged: token budgets are charged what the answer
    /// used (once).
    pub(super) fn charge_tokens(&mut self, host: &mut impl Host) {
        if !self.limits.metered || self.limits.charged || !self.limits.checked {
            return;
        }
        self.limits.charged = true;
        let admitted = matches!(
            self.request,
            RequestState::Forwarded | RequestState::Verifying
        );
        let Some(active) = self.policy.clone().filter(|_| admitted) else {
            return;
        };
        let mut meter = self.limits.meter.take();
        if let Some(m) = meter.as_mut() {
            m.finish();
        }
        let charge = meter.as_ref().map(|m| m.charge(self.request_len as u64));
        let tokens = match charge {
            Some(c) if c.reported || self.limits.response_ok => c.tokens,
            // No usage and no successful answer: the model did not run.
            Some(_) => 0,
            // Forwarded, and the stream ended before any answer (the
            // client reset it): the model read the prompt, and usually
            // answered it, so the prompt is charged as an estimate.
            None if self.request == RequestState::Forwarded => (self.request_len as u64)
                .div_ceil(mcp_guard_engine::rate_limit::usage::BYTES_PER_TOKEN)
                .max(1),
            None => 0,
        };
        if charge.is_some_and(|c| !c.reported) && tokens > 0 {
            host.log(
                Level::Info,
                "answer of a token-limited request reported no usage: an estimate was charged",
            );
        }
        let limits = active.policy.limits();
        let now = host.now_ms() / 1000;
        let hits = std::mem::take(&mut self.limits.hits);
        let mut global_descriptors = Vec::new();
        for hit in &hits {
            let Some(limit) = limits.get(hit.index) else {
                continue;
            };
            if !matches!(limit.kind, LimitKind::Tokens(_)) {
                continue;
            }
            if let Some(note) = self.record.limit.as_mut().filter(|n| n.id == limit.id) {
                note.charged_tokens = Some(tokens);
                note.remaining = note.remaining.saturating_sub(tokens);
            } else if self.record.limit.is_none() {
                self.record.limit = Some(LimitNote {
                    id: Arc::clone(&limit.id),
                    outcome: "ok",
                    remaining: limit.kind.amount().saturating_sub(tokens),
                    charged_tokens: Some(tokens),
                });
            }
            if tokens == 0 {
                continue;
            }
            match limit.store {
                Store::Local => {
                    let window = Window::at(now, limit.window_secs);
                    let charged = local::counter_key(host, &hit.key.shared_key(&limit.id))
                        .and_then(|key| local::add(host, &key, window.start, tokens, None));
                    if charged.is_err() {
                        host.count_rate_limit(RateLimitEvent::Error, 1);
                        host.log(
                            Level::Warn,
                            &format!("token budget {} could not be charged", limit.id),
                        );
                    }
                }
                // The pre-check already counted 1.
                Store::Global if tokens > 1 => {
                    global_descriptors.push(global::descriptor(limit, &hit.key));
                }
                Store::Global => {}
            }
        }
        if tokens > 0 {
            host.count_rate_limit(RateLimitEvent::TokensCharged, tokens);
        }
        if let Some(settings) = active.policy.bundle().limits.global.as_ref() {
            if !global_descriptors.is_empty() {
                let hits_addend = u32::try_from(tokens - 1).unwrap_or(u32::MAX);
                if global::send(host, settings, &global_descriptors, hits_addend, true).is_none() {
                    host.count_rate_limit(RateLimitEvent::Error, 1);
                    host.log(
                        Level::Warn,
                        "token charge could not be sent to the rate-limit service",
                    );
                }
            }
        }
    }
}
