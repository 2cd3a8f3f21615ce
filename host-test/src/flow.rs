//! Envoy's filter-chain flow control around one filter.
//!
//! The host plays the rest of Envoy: it delivers headers and body chunks to
//! the filter and decides, from the filter's answers, what moves on (to
//! upstream for the request, to the client for the response):
//!
//! * headers `Continue` releases the headers; `Pause` (StopIteration) holds
//!   them, yet body callbacks are still delivered (Envoy >= 1.35 with
//!   `allow_on_headers_stop_iteration`). Without that flag
//!   (`PluginOptions::headers_stop_iteration` false, an Istio `WasmPlugin`)
//!   a pause at headers stops the whole direction: data and trailers are
//!   buffered with no callback until a resume, which releases the headers
//!   and then delivers the buffered body and trailers to the filter;
//! * body `Continue` releases held headers and everything buffered as one
//!   chunk; `Pause` (StopIterationAndBuffer) keeps the data buffered, so the
//!   next callback sees the total size and `get_buffer_bytes` the whole body;
//! * trailers end the stream instead of a body callback with
//!   `end_of_stream` (Envoy never sends one then): `Continue` releases held
//!   headers, the buffered body and the trailers; `Pause` holds everything
//!   until a resume or a local reply. While the body was buffered, the
//!   trailers callback sees and may replace the whole body; after streaming
//!   bodies it sees none (see `docs/envoy-trailers.md`);
//! * a header or trailer map is gone once its callback returned `Continue`
//!   (Envoy drops the pointer), and body data is reachable only in a body
//!   callback or while buffered;
//! * `proxy_continue_stream` releases what is held once the callback returns;
//! * `proxy_send_local_response` ends the request path (nothing more goes
//!   upstream) and runs the reply through the filter's own response
//!   callbacks, headers then body with `end_of_stream`;
//! * queue-ready notifications are delivered when the host regains control.
//!
//! Data held at end of stream stays held: the stream is reported stalled
//! instead of hanging.

use crate::error::HostError;
use crate::header_map::HeaderMap;
use crate::http_calls::{ActiveResponse, HttpCallResponse};
use crate::state::{Direction, LocalReply, StreamState};
use crate::stream::Action;
use crate::vm::Vm;

/// Bound on follow-up work after one callback (resumes, replies, queue
/// notifications), so a guest that keeps re-triggering itself cannot hang
/// the host.
const PUMP_LIMIT: usize = 10_000;

/// Which half of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Request,
    Response,
}

impl Side {
    fn headers_export(self) -> &'static str {
        match self {
            Side::Request => "proxy_on_request_headers",
            Side::Response => "proxy_on_response_headers",
        }
    }

    fn body_export(self) -> &'static str {
        match self {
            Side::Request => "proxy_on_request_body",
            Side::Response => "proxy_on_response_body",
        }
    }

    fn trailers_export(self) -> &'static str {
        match self {
            Side::Request => "proxy_on_request_trailers",
            Side::Response => "proxy_on_response_trailers",
        }
    }
}

fn dir(stream: &mut StreamState, side: Side) -> &mut Direction {
    match side {
        Side::Request => &mut stream.request,
        Side::Response => &mut stream.response,
    }
}

/// Lets held headers, buffered data and trailers go on, ending the stream
/// if the end already arrived.
fn release(d: &mut Direction) {
    if d.sent_headers.is_none() {
        d.sent_headers = Some(d.headers.clone());
    }
    d.headers_held = false;
    d.buffering = false;
    let body = std::mem::take(&mut d.body);
    if !body.is_empty() {
        d.sent_chunks.push(body);
    }
    if d.end_received {
        if d.trailers_received && d.sent_trailers.is_none() {
            d.sent_trailers = Some(d.trailers.clone());
        }
        d.complete = true;
    }
}

/// Whether header and body callbacks are no longer delivered: the stream
/// was reset or deleted, or a local reply replaced the exchange.
fn blocked(stream: &StreamState) -> bool {
    stream.reset || stream.finished || stream.local_reply.is_some()
}

/// The headers the client gets for a local reply, before the filter's
/// response callbacks see them: `:status`, the filter's headers, then
/// `content-length` and a default `content-type` when there is a body.
pub(crate) fn local_reply_headers(reply: &LocalReply) -> HeaderMap {
    let mut headers = HeaderMap::default();
    headers.add(b":status", reply.status.to_string().as_bytes());
    for (k, v) in &reply.headers {
        headers.add(k.as_bytes(), v.as_bytes());
    }
    if !reply.body.is_empty() {
        headers.replace(b"content-length", reply.body.len().to_string().as_bytes());
        if headers.get(b"content-type").is_none() {
            headers.add(b"content-type", b"text/plain");
        }
    }
    headers
}

impl Vm {
    fn stream_checked(&mut self, id: u32) -> Result<&mut StreamState, HostError> {
        match self.state_mut().streams.get_mut(&id) {
            Some(stream) if !stream.finished => Ok(stream),
            _ => Err(HostError::Sequence {
                stream: id,
                message: "the stream does not exist or was finished".into(),
            }),
        }
    }

    fn live_dir(&mut self, id: u32, side: Side) -> Result<&mut Direction, HostError> {
        Ok(dir(self.stream_checked(id)?, side))
    }

    /// Delivers headers from the client (request) or upstream (response).
    pub fn deliver_headers(
        &mut self,
        id: u32,
        side: Side,
        headers: HeaderMap,
        end_of_stream: bool,
    ) -> Result<Action, HostError> {
        let stream = self.stream_checked(id)?;
        if blocked(stream) {
            return Ok(Action::NotCalled);
        }
        let problem = if dir(stream, side).headers_received {
            Some("headers were already delivered")
        } else if side == Side::Response && stream.request.sent_headers.is_none() {
            Some("the request never reached upstream, so there is no upstream response")
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(HostError::Sequence {
                stream: id,
                message: message.into(),
            });
        }
        let action = self.headers_raw(id, side, headers, end_of_stream)?;
        self.pump()?;
        Ok(action)
    }

    /// Delivers a body chunk from the client (request) or upstream (response).
    pub fn deliver_body(
        &mut self,
        id: u32,
        side: Side,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HostError> {
        let stream = self.stream_checked(id)?;
        if blocked(stream) {
            return Ok(Action::NotCalled);
        }
        let d = dir(stream, side);
        let problem = if !d.headers_received {
            Some("body before headers")
        } else if d.end_received {
            Some("body after end_of_stream")
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(HostError::Sequence {
                stream: id,
                message: message.into(),
            });
        }
        if d.stopped_all {
            // Envoy buffers it at this filter without a callback.
            d.body.extend_from_slice(chunk);
            d.end_received = end_of_stream;
            return Ok(Action::NotCalled);
        }
        let action = self.body_raw(id, side, chunk, end_of_stream)?;
        self.pump()?;
        Ok(action)
    }

    /// Delivers trailers from the client (request) or upstream (response):
    /// the end of that direction.
    pub fn deliver_trailers(
        &mut self,
        id: u32,
        side: Side,
        trailers: HeaderMap,
    ) -> Result<Action, HostError> {
        let stream = self.stream_checked(id)?;
        if blocked(stream) {
            return Ok(Action::NotCalled);
        }
        let d = dir(stream, side);
        let problem = if !d.headers_received {
            Some("trailers before headers")
        } else if d.end_received {
            Some("trailers after end_of_stream")
        } else {
            None
        };
        if let Some(message) = problem {
            return Err(HostError::Sequence {
                stream: id,
                message: message.into(),
            });
        }
        let d = self.live_dir(id, side)?;
        let count = trailers.len() as u32;
        d.trailers = trailers;
        d.trailers_received = true;
        d.end_received = true;
        if d.stopped_all {
            return Ok(Action::NotCalled);
        }
        let raw = self.call(id, side.trailers_export(), &[id, count])?;
        let action = Action::from_raw(raw);
        if action == Action::Continue {
            let d = self.live_dir(id, side)?;
            d.trailers_gone = true;
            release(d);
        }
        self.pump()?;
        Ok(action)
    }

    fn headers_raw(
        &mut self,
        id: u32,
        side: Side,
        headers: HeaderMap,
        end_of_stream: bool,
    ) -> Result<Action, HostError> {
        let d = self.live_dir(id, side)?;
        let count = headers.len() as u32;
        d.headers = headers;
        d.headers_received = true;
        d.end_received = end_of_stream;
        let raw = self.call(
            id,
            side.headers_export(),
            &[id, count, end_of_stream.into()],
        )?;
        let action = Action::from_raw(raw);
        let stop_all = !self.state().headers_stop_iteration;
        let d = self.live_dir(id, side)?;
        if action == Action::Continue {
            d.headers_gone = true;
            release(d);
        } else {
            d.headers_held = true;
            d.stopped_all = stop_all && !end_of_stream;
        }
        Ok(action)
    }

    /// Resumes a direction stopped at its headers without
    /// `allow_on_headers_stop_iteration`, as Envoy's filter manager does:
    /// the headers go on to the next filter, then what was buffered meanwhile
    /// is delivered to this filter — the body (ending the stream unless
    /// trailers came), then the trailers.
    fn resume_stopped_all(&mut self, id: u32, side: Side) -> Result<(), HostError> {
        let d = self.live_dir(id, side)?;
        d.stopped_all = false;
        d.headers_held = false;
        d.headers_gone = true;
        if d.sent_headers.is_none() {
            d.sent_headers = Some(d.headers.clone());
        }
        let has_trailers = d.trailers_received;
        let body_end = d.end_received && !has_trailers;
        if !d.body.is_empty() || body_end {
            let action = self.body_raw(id, side, &[], body_end)?;
            if action != Action::Continue || blocked(self.stream_checked(id)?) {
                return Ok(());
            }
        }
        if has_trailers {
            let count = self.live_dir(id, side)?.trailers.len() as u32;
            let raw = self.call(id, side.trailers_export(), &[id, count])?;
            if Action::from_raw(raw) == Action::Continue {
                let d = self.live_dir(id, side)?;
                d.trailers_gone = true;
                release(d);
            }
        }
        Ok(())
    }

    fn body_raw(
        &mut self,
        id: u32,
        side: Side,
        chunk: &[u8],
        end_of_stream: bool,
    ) -> Result<Action, HostError> {
        let d = self.live_dir(id, side)?;
        d.body.extend_from_slice(chunk);
        d.end_received = end_of_stream;
        d.in_body_callback = true;
        let size = d.body.len() as u32;
        let raw = self.call(id, side.body_export(), &[id, size, end_of_stream.into()]);
        // The stream may be gone if the call failed; the error wins then.
        if let Ok(d) = self.live_dir(id, side) {
            d.in_body_callback = false;
        }
        let action = Action::from_raw(raw?);
        let d = self.live_dir(id, side)?;
        if action == Action::Continue {
            release(d);
        } else {
            d.buffering = true;
        }
        Ok(action)
    }

    /// Acts on everything the filter asked for during callbacks: local
    /// replies, resumes and queue notifications, until nothing is left.
    pub fn pump(&mut self) -> Result<(), HostError> {
        for _ in 0..PUMP_LIMIT {
            let state = self.state();
            let live = || state.streams.iter().filter(|(_, s)| !s.finished);
            if let Some(id) = live()
                .find(|(_, s)| s.local_reply_pending)
                .map(|(id, _)| *id)
            {
                self.inject_local_reply(id)?;
                continue;
            }
            let resume = live().find_map(|(id, s)| {
                if s.request.resume_requested {
                    Some((*id, Side::Request))
                } else if s.response.resume_requested {
                    Some((*id, Side::Response))
                } else {
                    None
                }
            });
            if let Some((id, side)) = resume {
                let stream = self.stream_checked(id)?;
                dir(stream, side).resume_requested = false;
                let ignored = stream.reset
                    || (side == Side::Request && stream.local_reply.is_some())
                    || !dir(stream, side).headers_received;
                if ignored {
                    continue;
                }
                if dir(stream, side).stopped_all {
                    self.resume_stopped_all(id, side)?;
                } else {
                    release(dir(stream, side));
                }
                continue;
            }
            let ready = self.state().shared.borrow_mut().ready.pop_front();
            if let Some((ctx, queue)) = ready {
                if self.state().context_exists(ctx) {
                    self.call(ctx, "proxy_on_queue_ready", &[ctx, queue])?;
                }
                continue;
            }
            return Ok(());
        }
        Ok(())
    }

    /// Runs a recorded local reply through the response callbacks, or resets
    /// the stream when the client already got response headers.
    fn inject_local_reply(&mut self, id: u32) -> Result<(), HostError> {
        let stream = self.stream_checked(id)?;
        stream.local_reply_pending = false;
        let Some(reply) = stream.local_reply.clone() else {
            return Ok(());
        };
        if stream.local_reply_injected {
            return Ok(());
        }
        if stream.response.sent_headers.is_some() {
            stream.reset = true;
            return Ok(());
        }
        stream.local_reply_injected = true;
        stream.response = Direction::default();
        let headers = local_reply_headers(&reply);
        let end_of_stream = reply.body.is_empty();
        self.headers_raw(id, Side::Response, headers, end_of_stream)?;
        if !end_of_stream {
            self.body_raw(id, Side::Response, &reply.body, true)?;
        }
        Ok(())
    }

    /// Delivers the answer (or failure, `None`) of a pending HTTP call to the
    /// context that dispatched it.
    pub fn answer_http_call(
        &mut self,
        token: u32,
        response: Option<&HttpCallResponse>,
    ) -> Result<(), HostError> {
        let call = self
            .state_mut()
            .http
            .pending
            .remove(&token)
            .ok_or(HostError::UnknownHttpCall(token))?;
        let active = match response {
            None => ActiveResponse::default(),
            Some(r) => {
                let mut headers = HeaderMap::default();
                headers.add(b":status", r.status.to_string().as_bytes());
                for (k, v) in &r.headers {
                    headers.add(k.as_bytes(), v.as_bytes());
                }
                ActiveResponse {
                    headers,
                    body: r.body.clone(),
                    trailers: HeaderMap::from_pairs(&r.trailers),
                }
            }
        };
        let args = [
            call.context_id,
            token,
            active.headers.len() as u32,
            active.body.len() as u32,
            active.trailers.len() as u32,
        ];
        self.state_mut().http.active = Some(active);
        let result = self.call(call.context_id, "proxy_on_http_call_response", &args);
        self.state_mut().http.active = None;
        result?;
        self.pump()
    }

    /// Fails every pending call whose timeout has passed (Envoy calls back
    /// with no headers and no body). A zero timeout never expires.
    pub fn expire_http_calls(&mut self) -> Result<(), HostError> {
        loop {
            let now = self.state().now_nanos;
            let expired = self
                .state()
                .http
                .pending
                .values()
                .find(|c| !c.timeout.is_zero() && c.deadline_nanos() <= now)
                .map(|c| c.token);
            match expired {
                Some(token) => self.answer_http_call(token, None)?,
                None => return Ok(()),
            }
        }
    }

    /// Ends a stream like Envoy destroying it: `proxy_on_log`,
    /// `proxy_on_done`, `proxy_on_delete`, and its pending calls are
    /// cancelled. Idempotent.
    pub fn finish_stream(&mut self, id: u32) -> Result<(), HostError> {
        match self.state().streams.get(&id) {
            Some(stream) if !stream.finished => {}
            _ => return Ok(()),
        }
        let mut outcome = Ok(());
        for export in ["proxy_on_log", "proxy_on_done", "proxy_on_delete"] {
            self.state_mut().in_log = export == "proxy_on_log";
            let result = self.call(id, export, &[id]);
            self.state_mut().in_log = false;
            if let Err(e) = result {
                outcome = Err(e);
                break;
            }
        }
        let state = self.state_mut();
        state.http.cancel_for(id);
        if let Some(stream) = state.streams.get_mut(&id) {
            stream.finished = true;
        }
        outcome?;
        self.pump()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_reply_headers_follow_envoy() {
        let reply = LocalReply {
            status: 403,
            headers: vec![("x-reason".into(), "denied".into())],
            body: b"no".to_vec(),
            details: String::new(),
            grpc_status: -1,
        };
        assert_eq!(
            local_reply_headers(&reply).to_pairs(),
            vec![
                (":status".into(), "403".into()),
                ("x-reason".into(), "denied".into()),
                ("content-length".into(), "2".into()),
                ("content-type".into(), "text/plain".into()),
            ]
        );
        let json = LocalReply {
            headers: vec![("content-type".into(), "application/json".into())],
            body: Vec::new(),
            ..reply
        };
        assert_eq!(
            local_reply_headers(&json).to_pairs(),
            vec![
                (":status".into(), "403".into()),
                ("content-type".into(), "application/json".into()),
            ]
        );
    }

    #[test]
    fn release_moves_everything_on() {
        let mut d = Direction {
            headers: HeaderMap::from_pairs(&[(":path", "/")]),
            headers_received: true,
            headers_held: true,
            body: b"abc".to_vec(),
            end_received: true,
            ..Direction::default()
        };
        assert!(d.stalled());
        release(&mut d);
        assert!(d.complete && !d.stalled() && !d.headers_held && d.body.is_empty());
        assert_eq!(d.sent_chunks, vec![b"abc".to_vec()]);
        assert!(d.sent_headers.is_some());
    }
}
