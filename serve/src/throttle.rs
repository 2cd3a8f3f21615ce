//! At most one report per period, counting the ones skipped.

use std::time::Duration;

use tokio::time::Instant;

/// Lets one event through per `period` and counts the rest.
#[derive(Debug)]
pub(crate) struct Throttle {
    period: Duration,
    last: Option<Instant>,
    skipped: u64,
}

impl Throttle {
    pub(crate) fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            skipped: 0,
        }
    }

    /// `Some(events skipped since the last one let through)` when this
    /// event may be reported, `None` (and counted) when it may not.
    pub(crate) fn admit(&mut self) -> Option<u64> {
        if self.last.is_none_or(|at| at.elapsed() >= self.period) {
            self.last = Some(Instant::now());
            Some(std::mem::take(&mut self.skipped))
        } else {
            self.skipped += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn one_per_period_with_the_count_of_the_rest() {
        let mut throttle = Throttle::new(Duration::from_secs(10));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(throttle.admit(), None);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(throttle.admit(), Some(3));
        assert_eq!(throttle.admit(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_period_lets_everything_through() {
        let mut throttle = Throttle::new(Duration::ZERO);
        for _ in 0..3 {
            assert_eq!(throttle.admit(), Some(0));
        }
    }
}
