//! Prometheus metrics of the service, served at `GET /metrics` on the
//! HTTP port (text exposition format).

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How a `ShouldRateLimit` call ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Outcome {
    /// Answered OK.
    Ok,
    /// Answered OVER_LIMIT.
    OverLimit,
    /// Refused as malformed or out of bounds (INVALID_ARGUMENT).
    Invalid,
    /// Redis did not answer (UNAVAILABLE).
    Unavailable,
}

impl Outcome {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::OverLimit => "over_limit",
            Outcome::Invalid => "invalid",
            Outcome::Unavailable => "unavailable",
        }
    }
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

/// The `outcome` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// The outcome.
    pub outcome: Outcome,
}

/// Every metric, shared by the gRPC and HTTP sides.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<OutcomeLabel, Counter>,
    over_limit_descriptors: Counter,
    redis_errors: Counter,
    latency: Histogram,
    connections: Gauge,
    refused_connections: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mcp_ratelimit_service");
        let requests = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "requests",
            "ShouldRateLimit calls by outcome (ok, over_limit, invalid, unavailable)",
            requests.clone(),
        );
        let over_limit_descriptors = Counter::default();
        registry.register(
            "over_limit_descriptors",
            "Descriptors answered OVER_LIMIT",
            over_limit_descriptors.clone(),
        );
        let redis_errors = Counter::default();
        registry.register(
            "redis_errors",
            "Redis calls that failed or timed out (each answered UNAVAILABLE)",
            redis_errors.clone(),
        );
        // 0.25 ms .. ~1 s.
        let latency = Histogram::new([
            0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ]);
        registry.register(
            "request_duration_seconds",
            "Time to answer a ShouldRateLimit call, Redis included",
            latency.clone(),
        );
        let connections = Gauge::default();
        registry.register(
            "grpc_connections",
            "Open gRPC (HTTP/2) connections",
            connections.clone(),
        );
        let refused_connections = Counter::default();
        registry.register(
            "refused_connections",
            "gRPC connections closed at once because --max-connections were open",
            refused_connections.clone(),
        );
        Self {
            registry,
            requests,
            over_limit_descriptors,
            redis_errors,
            latency,
            connections,
            refused_connections,
        }
    }

    /// Counts one call and its duration.
    pub fn request(&self, outcome: Outcome, seconds: f64) {
        self.requests.get_or_create(&OutcomeLabel { outcome }).inc();
        self.latency.observe(seconds);
    }

    /// Counts descriptors answered OVER_LIMIT.
    pub fn over_limit(&self, descriptors: u64) {
        self.over_limit_descriptors.inc_by(descriptors);
    }

    /// Counts one failed Redis call.
    pub fn redis_error(&self) {
        self.redis_errors.inc();
    }

    /// The open-connections gauge.
    pub fn connections(&self) -> &Gauge {
        &self.connections
    }

    /// Counts one connection refused for the connection cap.
    pub fn refused_connection(&self) {
        self.refused_connections.inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
