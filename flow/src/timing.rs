//! Time spent inside the filter per exchange, for the latency histograms
//! (`mcp_decision_duration_microseconds`, `mcp_scrub_duration_microseconds`).
//!
//! The shims time every callback with the proxy's clock
//! ([`crate::Host::now_ns`]) through [`crate::Exchange::timed`]; the
//! exchange adds each callback's time to the side it belongs to and hands
//! the totals to the host once, when the stream is done
//! ([`crate::Exchange::finish_timing`]). Only time inside our callbacks
//! counts: waiting for the client, the upstream or a token endpoint does
//! not.

/// What one exchange spent, recorded once per exchange.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Durations {
    /// Request-side callbacks until the request was decided (allowed or
    /// refused), microseconds; `None` when it never was (stream reset
    /// before a decision).
    pub decision_us: Option<u64>,
    /// Response body and trailer callbacks of an answer the filter read
    /// (held or streamed for scrubbing or list filtering), microseconds;
    /// `None` when the answer passed unread or never came.
    pub scrub_us: Option<u64>,
}

/// Per-side accumulator, owned by the exchange.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    decision_ns: u64,
    scrub_ns: u64,
    scrubbed: bool,
    recorded: bool,
}

/// Nanoseconds to whole microseconds, rounded up so that any measured
/// work lands above the zero bucket.
fn micros(ns: u64) -> u64 {
    ns.div_ceil(1000)
}

impl Timing {
    /// Adds one request-side callback that ran before the decision.
    pub fn add_decision(&mut self, ns: u64) {
        self.decision_ns = self.decision_ns.saturating_add(ns);
    }

    /// Adds one response body / trailers callback that read the answer.
    pub fn add_scrub(&mut self, ns: u64) {
        self.scrub_ns = self.scrub_ns.saturating_add(ns);
        self.scrubbed = true;
    }

    /// The totals, once: later calls return `None` so a host that reports
    /// the end of a stream twice does not count it twice.
    pub fn take(&mut self, decided: bool) -> Option<Durations> {
        if self.recorded {
            return None;
        }
        self.recorded = true;
        Some(Durations {
            decision_us: decided.then(|| micros(self.decision_ns)),
            scrub_us: self.scrubbed.then(|| micros(self.scrub_ns)),
        })
    }
}

/// Elapsed nanoseconds between two clock readings; a clock that went
/// backwards (a wall clock stepped by NTP) counts as zero, never as a
/// huge value.
pub fn elapsed(start: u64, end: u64) -> u64 {
    end.saturating_sub(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_are_rounded_up_to_microseconds_and_taken_once() {
        let mut t = Timing::default();
        t.add_decision(1_500);
        t.add_decision(1_000);
        t.add_scrub(1);
        let d = t.take(true).unwrap();
        assert_eq!(d.decision_us, Some(3));
        assert_eq!(d.scrub_us, Some(1));
        assert_eq!(t.take(true), None);
    }

    #[test]
    fn undecided_and_unread_sides_are_not_recorded() {
        let mut t = Timing::default();
        t.add_decision(5_000);
        let d = t.take(false).unwrap();
        assert_eq!(d, Durations::default());
    }

    #[test]
    fn a_clock_going_backwards_adds_nothing() {
        assert_eq!(elapsed(10, 4), 0);
        assert_eq!(elapsed(4, 10), 6);
    }
}
