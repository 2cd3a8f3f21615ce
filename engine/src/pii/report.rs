//! What a scan found: counts per type, never the values themselves, so a
//! report can be logged and exported as metrics safely.

use super::config::PiiType;

/// Counts of values replaced, per type, and whether a blocking type fired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PiiReport {
    counts: [u32; PiiType::ALL.len()],
    blocked: bool,
    overflow: bool,
}

impl PiiReport {
    /// Values of type `ty` replaced.
    pub fn count(&self, ty: PiiType) -> usize {
        self.counts.get(ty.index()).copied().unwrap_or(0) as usize
    }

    /// Values replaced, all types together.
    pub fn total(&self) -> usize {
        self.counts.iter().map(|&c| c as usize).sum()
    }

    /// True when a type configured with the `block` action was found: the
    /// caller must end the response instead of forwarding it.
    pub fn blocked(&self) -> bool {
        self.blocked
    }

    /// True when a stream held back as much as it may without a detector
    /// deciding: output stopped before the undecided bytes, and nothing
    /// more will be written. The caller must end the response (an SSE
    /// error event once streaming started), as for [`blocked`](Self::blocked).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Non-zero counts, in [`PiiType::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (PiiType, usize)> + '_ {
        PiiType::ALL
            .iter()
            .map(|&t| (t, self.count(t)))
            .filter(|&(_, n)| n > 0)
    }

    /// Adds another report's counts to this one.
    pub fn merge(&mut self, other: &PiiReport) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.blocked |= other.blocked;
        self.overflow |= other.overflow;
    }

    /// What was found after `earlier` (a report of the same scan taken
    /// before): lets a streaming caller count each chunk's finds once.
    pub fn since(&self, earlier: &PiiReport) -> PiiReport {
        let mut delta = *self;
        for (d, e) in delta.counts.iter_mut().zip(earlier.counts.iter()) {
            *d = d.saturating_sub(*e);
        }
        delta.blocked = self.blocked && !earlier.blocked;
        delta.overflow = self.overflow && !earlier.overflow;
        delta
    }

    pub(crate) fn record_overflow(&mut self) {
        self.overflow = true;
    }

    pub(crate) fn record(&mut self, ty: PiiType, blocks: bool) {
        if let Some(c) = self.counts.get_mut(ty.index()) {
            *c = c.saturating_add(1);
        }
        self.blocked |= blocks;
    }
}
