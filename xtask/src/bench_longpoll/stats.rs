//! The pure parts of the long-poll benchmark: percentiles, medians over
//! rounds, and reading what the control service and `/proc` print.

/// Nearest-rank percentile `p` (0–100) of `sorted` (ascending); `None`
/// when empty.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted.get(index).copied()
}

/// Latency summary of one round, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many values.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// Summarises `values` (any order); `None` when empty.
pub fn summarise(values: &[f64]) -> Option<Summary> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    Some(Summary {
        count: sorted.len(),
        p50: percentile(&sorted, 50.0)?,
        p99: percentile(&sorted, 99.0)?,
        max: *sorted.last()?,
    })
}

/// The median of per-round values (the lower middle for an even count,
/// so it is always a value that was measured); `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len().checked_sub(1)? / 2;
    sorted.get(middle).copied()
}

/// The address in the control service's `listening on ADDR` line.
pub fn listening_addr(output: &str) -> Option<std::net::SocketAddr> {
    output
        .lines()
        .find_map(|l| l.strip_prefix("listening on "))
        .and_then(|a| a.trim().parse().ok())
}

/// The value of an unlabelled gauge or counter in a Prometheus text page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok()).flatten()
    })
}

/// A `Key:   123 kB` field of `/proc/PID/status` or `smaps_rollup`, in KiB.
pub fn proc_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        // Ten values: p99 is the largest, p50 the fifth.
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&ten, 99.0), Some(10.0));
        assert_eq!(percentile(&ten, 50.0), Some(5.0));
    }

    #[test]
    fn summaries_sort_and_skip_non_finite() {
        let s = summarise(&[3.0, f64::NAN, 1.0, 2.0]).unwrap();
        assert_eq!(s.count, 3);
        assert_eq!((s.p50, s.p99, s.max), (2.0, 3.0, 3.0));
        assert!(summarise(&[]).is_none());
    }

    #[test]
    fn median_of_rounds() {
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 2.0]), Some(2.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn reads_service_and_proc_output() {
        let out = "something\nlistening on 127.0.0.1:4321\n";
        assert_eq!(listening_addr(out), Some("127.0.0.1:4321".parse().unwrap()));
        assert_eq!(listening_addr("listening on nowhere"), None);
        let page = "# HELP mcp_guard_control_long_polls_waiting x\n\
                    # TYPE mcp_guard_control_long_polls_waiting gauge\n\
                    mcp_guard_control_long_polls_waiting_total 9\n\
                    mcp_guard_control_long_polls_waiting 42\n";
        assert_eq!(
            metric(page, "mcp_guard_control_long_polls_waiting"),
            Some(42.0)
        );
        assert_eq!(metric(page, "absent"), None);
        let status = "Name:\tx\nVmRSS:\t   12345 kB\nRss:  1 kB\n";
        assert_eq!(proc_kib(status, "VmRSS"), Some(12345));
        let rollup = "Rss:   200 kB\nPss:   150 kB\nPss_Anon: 100 kB\n";
        assert_eq!(proc_kib(rollup, "Pss"), Some(150));
        assert_eq!(proc_kib(rollup, "Swap"), None);
    }
}
