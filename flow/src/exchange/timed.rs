//! Callback timing for the latency histograms (see [`crate::timing`]).

use super::{Exchange, ResponseState};
use crate::host::{Host, Side};
use crate::timing::elapsed;

impl Exchange {
    /// Runs one callback of `side` (`f` is the exchange's own callback
    /// method) and adds the time it took, by the host's clock, to that
    /// side: request-side callbacks count until the request is decided,
    /// response-side ones only while the answer is being read (held or
    /// streamed). Two clock readings per callback.
    pub fn timed<H: Host, T>(
        &mut self,
        host: &mut H,
        side: Side,
        f: impl FnOnce(&mut Self, &mut H) -> T,
    ) -> T {
        let counts = match side {
            Side::Request => !self.decided(),
            Side::Response => matches!(
                self.response,
                ResponseState::Held(_) | ResponseState::Streaming(_)
            ),
        };
        if !counts {
            return f(self, host);
        }
        let start = host.now_ns();
        let out = f(self, host);
        let ns = elapsed(start, host.now_ns());
        match side {
            Side::Request => self.timing.add_decision(ns),
            Side::Response => self.timing.add_scrub(ns),
        }
        out
    }

    /// Hands this exchange's durations to the host, once (call it when
    /// the stream is done; later calls do nothing).
    pub fn finish_timing(&mut self, host: &mut impl Host) {
        let decided = self.decided();
        if let Some(durations) = self.timing.take(decided) {
            host.record_durations(&durations);
        }
    }
}
