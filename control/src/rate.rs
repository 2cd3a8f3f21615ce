//! One token bucket, for the unauthenticated endpoints (status reports,
//! the sync table's new rows, checkpoints): anyone can post to them, so
//! each takes at most `per_second` on average and `burst` at once, from
//! everyone together.

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// A thread-safe token bucket that starts full.
#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    /// A full bucket refilled at `per_second` up to `burst`.
    pub fn new(per_second: f64, burst: f64) -> Self {
        Self {
            per_second,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Takes one token; `false` when the bucket is empty.
    pub fn try_take(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * self.per_second;
        state.0 = (state.0 + refill).min(self.burst);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_nothing_until_refilled() {
        let bucket = TokenBucket::new(0.0, 3.0);
        assert_eq!((0..5).filter(|_| bucket.try_take()).count(), 3);
        let refilling = TokenBucket::new(1_000_000.0, 1.0);
        assert!(refilling.try_take());
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(refilling.try_take());
    }
}
