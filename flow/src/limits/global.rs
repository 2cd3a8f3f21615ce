//! `store: global` limits: one `ShouldRateLimit` call to the rate-limit
//! service per request (every global limit that applies is one
//! descriptor), sent as a gRPC unary request over the proxy's HTTP
//! callout and read back from its answer.
//!
//! Each descriptor carries `("limit", id)`, the caller key's entries and
//! the limit itself as the descriptor's `limit` override, so the bundle
//! (not the service's configuration) defines every limit.

use mcp_guard_engine::rate_limit::rls::{self, Answer, Code, Descriptor};
use mcp_guard_engine::rate_limit::{CallerKey, CompiledLimit, GlobalLimits, Per};

use crate::host::Host;
use crate::token_exchange::CalloutAnswer;

/// The unit of the service's override for a window length (bundles only
/// name these four).
fn per_of(secs: u64) -> Per {
    match secs {
        1 => Per::Second,
        60 => Per::Minute,
        3_600 => Per::Hour,
        _ => Per::Day,
    }
}

/// Most descriptors the rate-limit service takes in one call (its
/// `max_descriptors` bound); a request matching more is refused.
pub const MAX_DESCRIPTORS: usize = 16;

/// The descriptor of one limit for one caller.
pub fn descriptor(limit: &CompiledLimit, key: &CallerKey) -> Descriptor {
    let mut entries = Vec::with_capacity(key.entries.len() + 1);
    entries.push(("limit".to_owned(), limit.id.to_string()));
    entries.extend(key.entries.iter().cloned());
    let per_unit = u32::try_from(limit.kind.amount()).unwrap_or(u32::MAX);
    Descriptor {
        entries,
        limit: Some((per_unit, per_of(limit.window_secs))),
    }
}

/// Sends a `ShouldRateLimit` call; the callout id, `None` when the proxy
/// refused it. `detached`: a charge nobody waits for, sent from a
/// context that outlives the stream (`true` when the proxy took it).
pub fn send(
    host: &mut impl Host,
    global: &GlobalLimits,
    descriptors: &[Descriptor],
    hits_addend: u32,
    detached: bool,
) -> Option<u64> {
    let body = rls::encode_request(&global.domain, descriptors, hits_addend);
    let timeout = format!("{}m", global.timeout_ms);
    let headers = [
        (":method", "POST"),
        (":path", rls::PATH),
        (":authority", global.cluster.as_str()),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("grpc-timeout", timeout.as_str()),
    ];
    if detached {
        return host
            .http_call_detached(&global.cluster, &headers, &body, global.timeout_ms)
            .then_some(0);
    }
    host.http_call(&global.cluster, &headers, &body, global.timeout_ms)
}

/// What the service said about the descriptors sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every descriptor is under its limit; remaining per descriptor.
    Ok(Vec<u64>),
    /// Descriptor `index` is over; seconds until its window resets, as
    /// the service says.
    Over {
        /// Position among the descriptors sent.
        index: usize,
        /// `duration_until_reset`, when sent.
        reset_secs: Option<u64>,
    },
    /// No usable answer: unreachable, timed out, not gRPC OK, or not a
    /// `RateLimitResponse` for these descriptors.
    Unavailable(&'static str),
}

/// Reads the service's answer to `sent` descriptors.
pub fn verdict(answer: &CalloutAnswer, sent: usize) -> Verdict {
    match answer.status.as_deref() {
        None => return Verdict::Unavailable("no_answer"),
        Some("200") => {}
        Some(_) => return Verdict::Unavailable("http_status"),
    }
    // gRPC status from the trailers (or the headers of a trailers-only
    // answer): anything but 0 is a failed call.
    if answer.grpc_status.as_deref().map(str::trim) != Some("0") {
        return Verdict::Unavailable("grpc_status");
    }
    let Ok(Answer { overall, statuses }) = rls::decode_answer(&answer.body) else {
        return Verdict::Unavailable("undecodable");
    };
    if statuses.len() != sent {
        return Verdict::Unavailable("statuses_mismatch");
    }
    match overall {
        Code::Ok if statuses.iter().all(|s| s.code == Code::Ok) => {
            Verdict::Ok(statuses.iter().map(|s| u64::from(s.remaining)).collect())
        }
        Code::OverLimit => match statuses.iter().position(|s| s.code == Code::OverLimit) {
            Some(index) => Verdict::Over {
                index,
                reset_secs: statuses.get(index).and_then(|s| s.reset_secs),
            },
            None => Verdict::Unavailable("over_without_status"),
        },
        _ => Verdict::Unavailable("unknown_code"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn answer(body: &[u8], grpc: Option<&str>) -> CalloutAnswer {
        let mut frame = vec![0];
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(body);
        CalloutAnswer {
            headers: Vec::new(),
            status: Some("200".into()),
            body: frame,
            grpc_status: grpc.map(str::to_owned),
        }
    }

    #[test]
    fn verdicts() {
        // OK with one status remaining 4.
        let ok = answer(&[0x08, 1, 0x12, 4, 0x08, 1, 0x18, 4], Some("0"));
        assert_eq!(verdict(&ok, 1), Verdict::Ok(vec![4]));
        assert_eq!(verdict(&ok, 2), Verdict::Unavailable("statuses_mismatch"));
        let over = answer(
            &[
                0x08, 2, 0x12, 2, 0x08, 1, 0x12, 6, 0x08, 2, 0x22, 2, 0x08, 9,
            ],
            Some("0"),
        );
        assert_eq!(
            verdict(&over, 2),
            Verdict::Over {
                index: 1,
                reset_secs: Some(9)
            }
        );
        assert_eq!(
            verdict(&answer(&[0x08, 1], Some("14")), 0),
            Verdict::Unavailable("grpc_status")
        );
        assert_eq!(
            verdict(&answer(&[0x08, 1], None), 0),
            Verdict::Unavailable("grpc_status")
        );
        assert_eq!(
            verdict(&answer(&[0x08, 0xff], Some("0")), 0),
            Verdict::Unavailable("undecodable")
        );
        // OK overall but a status over: not trusted.
        assert_eq!(
            verdict(&answer(&[0x08, 1, 0x12, 2, 0x08, 2], Some("0")), 1),
            Verdict::Unavailable("unknown_code")
        );
        let failed = CalloutAnswer::default();
        assert_eq!(verdict(&failed, 0), Verdict::Unavailable("no_answer"));
    }
}
