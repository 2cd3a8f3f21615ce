//! When a decision chain's head goes to the control service to be
//! countersigned: both shims keep one [`CheckpointSchedule`] per chain and
//! ask it on every timer tick, so the wasm filter and the native module
//! post at the same pace.
//!
//! Only the current head is ever posted: a failed post (no answer, 429,
//! 5xx) is followed, an interval later, by the head as it is then — the
//! same one again when the chain is quiet, else never the head of a quiet
//! chain would be countersigned after one lost post. A 409 is not retried
//! (the service refuses an older head after a
//! newer one, and records the refusal as a conflict).

use mcp_guard_engine::audit::ChainHead;

/// Pace and state of one chain's checkpoints.
#[derive(Debug, Clone, Default)]
pub struct CheckpointSchedule {
    /// Sequence number of the last head posted (answered or not).
    posted_seq: u64,
    /// When it was posted, ms since the epoch.
    posted_ms: u64,
    /// The post waiting for its answer: (host call id, the `posted_seq`
    /// before it, restored if the post fails).
    in_flight: Option<(u64, u64)>,
}

/// What became of a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointAnswer {
    /// Countersigned (201) or already held (200).
    Countersigned,
    /// 409: the service holds another hash at or beyond this seq for the
    /// chain — someone else claims this chain id, or a post came late.
    Conflict,
    /// Anything else (network, 429, 5xx): the head is posted again at the
    /// next interval, whether or not the chain grew.
    Failed,
}

impl CheckpointSchedule {
    /// Whether `head` should be posted now: checkpoints on, nothing in
    /// flight, new records since the last post, and `interval_ms` passed.
    pub fn due(&self, head: &ChainHead, now_ms: u64, interval_ms: u64) -> bool {
        interval_ms > 0
            && self.in_flight.is_none()
            && head.seq > self.posted_seq
            && now_ms >= self.posted_ms.saturating_add(interval_ms)
    }

    /// Notes a post sent for `head` under host call `id`.
    pub fn posted(&mut self, id: u64, head: &ChainHead, now_ms: u64) {
        self.in_flight = Some((id, self.posted_seq));
        self.posted_seq = head.seq;
        self.posted_ms = now_ms;
    }

    /// Notes a post the host refused to send: tried again at the next due
    /// time.
    pub fn not_sent(&mut self, now_ms: u64) {
        self.posted_ms = now_ms;
    }

    /// The answer to call `id` with HTTP `status` (`None`: no answer);
    /// `None` when `id` is not this schedule's post.
    pub fn answered(&mut self, id: u64, status: Option<u32>) -> Option<CheckpointAnswer> {
        match self.in_flight {
            Some((pending, before)) if pending == id => {
                self.in_flight = None;
                Some(match status {
                    Some(200 | 201) => CheckpointAnswer::Countersigned,
                    Some(409) => CheckpointAnswer::Conflict,
                    _ => {
                        self.posted_seq = before;
                        CheckpointAnswer::Failed
                    }
                })
            }
            _ => None,
        }
    }

    /// A post whose answer never came (the host dropped the call): the
    /// head goes again at the next interval.
    pub fn abandon(&mut self) {
        if let Some((_, before)) = self.in_flight.take() {
            self.posted_seq = before;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(seq: u64) -> ChainHead {
        ChainHead {
            chain: "n/1".into(),
            seq,
            hash: [0; 32],
        }
    }

    #[test]
    fn posts_new_heads_at_the_interval_one_at_a_time() {
        let mut s = CheckpointSchedule::default();
        assert!(!s.due(&head(0), 50_000, 10_000), "nothing to vouch for");
        assert!(!s.due(&head(3), 50_000, 0), "checkpoints off");
        assert!(s.due(&head(3), 50_000, 10_000));
        s.posted(7, &head(3), 50_000);
        assert!(!s.due(&head(9), 70_000, 10_000), "one in flight");
        assert_eq!(s.answered(8, Some(201)), None, "not ours");
        assert_eq!(
            s.answered(7, Some(201)),
            Some(CheckpointAnswer::Countersigned)
        );
        assert!(!s.due(&head(3), 70_000, 10_000), "no new records");
        assert!(!s.due(&head(9), 55_000, 10_000), "too soon");
        assert!(s.due(&head(9), 60_000, 10_000));
        s.posted(8, &head(9), 60_000);
        assert_eq!(s.answered(8, Some(409)), Some(CheckpointAnswer::Conflict));
        s.posted(9, &head(10), 70_000);
        assert_eq!(s.answered(9, None), Some(CheckpointAnswer::Failed));
        assert!(
            s.due(&head(11), 80_000, 10_000),
            "a failed post is replaced by the next head"
        );
    }

    #[test]
    fn a_quiet_chain_whose_post_failed_is_posted_again() {
        // The last records before traffic stops: one lost post (the
        // service down, or its rate limit drained by a flood) must not
        // leave them unprovable for good.
        let mut s = CheckpointSchedule::default();
        s.posted(1, &head(5), 10_000);
        assert_eq!(s.answered(1, Some(429)), Some(CheckpointAnswer::Failed));
        assert!(!s.due(&head(5), 15_000, 10_000), "not before the interval");
        assert!(s.due(&head(5), 20_000, 10_000), "the same head again");
        s.posted(2, &head(5), 20_000);
        s.abandon();
        assert!(s.due(&head(5), 30_000, 10_000), "after a dropped call too");
        s.posted(3, &head(5), 30_000);
        assert_eq!(
            s.answered(3, Some(201)),
            Some(CheckpointAnswer::Countersigned)
        );
        assert!(!s.due(&head(5), 90_000, 10_000), "countersigned: done");
        s.posted(4, &head(6), 90_000);
        assert_eq!(s.answered(4, Some(409)), Some(CheckpointAnswer::Conflict));
        assert!(
            !s.due(&head(6), 200_000, 10_000),
            "a refused head is not pressed on the service"
        );
    }
}
