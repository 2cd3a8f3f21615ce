//! Metrics defined by the guest, with Envoy's update rules.

use std::collections::BTreeMap;

use crate::abi::status::Status;

/// The kind of a metric (`proxy_define_metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Monotonic: increments must be positive.
    Counter,
    /// Settable and incrementable up or down.
    Gauge,
    /// Records samples; its value cannot be read back.
    Histogram,
}

impl MetricType {
    /// Parses the ABI value.
    pub fn from_u32(value: u32) -> Option<Self> {
        Some(match value {
            0 => Self::Counter,
            1 => Self::Gauge,
            2 => Self::Histogram,
            _ => return None,
        })
    }
}

/// All metrics of one VM. Values are keyed by name, so defining the same
/// name twice shares the value like Envoy's stats scope does.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    defs: Vec<(String, MetricType)>,
    values: BTreeMap<String, u64>,
    histograms: BTreeMap<String, Vec<u64>>,
}

impl Metrics {
    /// Defines (or re-finds) a metric and returns its id (ids start at 1).
    pub fn define(&mut self, kind: MetricType, name: &str) -> u32 {
        if let Some(index) = self.defs.iter().position(|(n, k)| n == name && *k == kind) {
            return index as u32 + 1;
        }
        self.defs.push((name.to_string(), kind));
        match kind {
            MetricType::Histogram => {
                self.histograms.entry(name.to_string()).or_default();
            }
            _ => {
                self.values.entry(name.to_string()).or_insert(0);
            }
        }
        self.defs.len() as u32
    }

    fn lookup(&self, id: u32) -> Option<(String, MetricType)> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.defs.get(index).cloned()
    }

    /// `proxy_increment_metric`: counters only go up; histograms refuse.
    pub fn increment(&mut self, id: u32, offset: i64) -> Status {
        let Some((name, kind)) = self.lookup(id) else {
            return Status::NotFound;
        };
        let value = self.values.entry(name).or_insert(0);
        match kind {
            MetricType::Counter if offset > 0 => *value = value.wrapping_add(offset as u64),
            MetricType::Gauge if offset >= 0 => *value = value.wrapping_add(offset as u64),
            MetricType::Gauge => *value = value.wrapping_sub(offset.unsigned_abs()),
            _ => return Status::BadArgument,
        }
        Status::Ok
    }

    /// `proxy_record_metric`: adds to a counter, sets a gauge, samples a
    /// histogram.
    pub fn record(&mut self, id: u32, value: u64) -> Status {
        let Some((name, kind)) = self.lookup(id) else {
            return Status::NotFound;
        };
        match kind {
            MetricType::Counter => {
                let current = self.values.entry(name).or_insert(0);
                *current = current.wrapping_add(value);
            }
            MetricType::Gauge => {
                self.values.insert(name, value);
            }
            MetricType::Histogram => self.histograms.entry(name).or_default().push(value),
        }
        Status::Ok
    }

    /// `proxy_get_metric`.
    pub fn get(&self, id: u32) -> Result<u64, Status> {
        match self.lookup(id) {
            None => Err(Status::NotFound),
            Some((_, MetricType::Histogram)) => Err(Status::BadArgument),
            Some((name, _)) => Ok(self.values.get(&name).copied().unwrap_or(0)),
        }
    }

    /// Counter and gauge values by name.
    pub fn values(&self) -> BTreeMap<String, u64> {
        self.values.clone()
    }

    /// Histogram samples by name.
    pub fn histograms(&self) -> BTreeMap<String, Vec<u64>> {
        self.histograms.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_gauges_histograms() {
        let mut m = Metrics::default();
        let c = m.define(MetricType::Counter, "requests");
        let g = m.define(MetricType::Gauge, "inflight");
        let h = m.define(MetricType::Histogram, "latency");
        assert_eq!(m.define(MetricType::Counter, "requests"), c);
        assert_eq!(m.increment(c, 2), Status::Ok);
        assert_eq!(m.increment(c, -1), Status::BadArgument);
        assert_eq!(m.record(c, 3), Status::Ok);
        assert_eq!(m.get(c), Ok(5));
        assert_eq!(m.increment(g, 5), Status::Ok);
        assert_eq!(m.increment(g, -2), Status::Ok);
        assert_eq!(m.get(g), Ok(3));
        assert_eq!(m.record(g, 9), Status::Ok);
        assert_eq!(m.get(g), Ok(9));
        assert_eq!(m.record(h, 7), Status::Ok);
        assert_eq!(m.get(h), Err(Status::BadArgument));
        assert_eq!(m.increment(h, 1), Status::BadArgument);
        assert_eq!(m.get(99), Err(Status::NotFound));
        assert_eq!(m.get(0), Err(Status::NotFound));
        assert_eq!(m.values()["requests"], 5);
        assert_eq!(m.histograms()["latency"], vec![7]);
    }
}
