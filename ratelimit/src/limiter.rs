//! One `ShouldRateLimit` call: check the request, count in Redis, answer.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::metrics::{Metrics, Outcome};
use crate::plan::{self, Bounds, Item, Limit};
use crate::proto::{self, Code, DescriptorStatus, RateLimitRequest, RateLimitResponse};
use crate::store::Store;

/// Why a call got no verdict.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The request is malformed or out of bounds (`INVALID_ARGUMENT`).
    #[error(transparent)]
    Invalid(#[from] plan::PlanError),
    /// Redis did not answer (`UNAVAILABLE`).
    #[error("rate limit store unavailable")]
    Unavailable,
}

/// The rate limiter behind the gRPC method.
#[derive(Debug)]
pub struct Limiter {
    store: Store,
    bounds: Bounds,
    default_limit: Option<Limit>,
    metrics: Arc<Metrics>,
}

impl Limiter {
    /// A limiter counting in `store`; descriptors without an override get
    /// `default_limit` (none: answered OK and not counted).
    pub fn new(
        store: Store,
        bounds: Bounds,
        default_limit: Option<Limit>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            store,
            bounds,
            default_limit,
            metrics,
        }
    }

    /// The store (for readiness checks).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Answers one request at the current time.
    pub async fn should_rate_limit(
        &self,
        request: &RateLimitRequest,
    ) -> Result<RateLimitResponse, Refusal> {
        let started = Instant::now();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let result = self.answer(request, now_ms).await;
        let outcome = match &result {
            Ok(response) if response.overall_code == Code::OverLimit as i32 => Outcome::OverLimit,
            Ok(_) => Outcome::Ok,
            Err(Refusal::Invalid(_)) => Outcome::Invalid,
            Err(Refusal::Unavailable) => Outcome::Unavailable,
        };
        self.metrics
            .request(outcome, started.elapsed().as_secs_f64());
        result
    }

    /// Answers one request as of `now_ms` (Unix milliseconds).
    pub async fn answer(
        &self,
        request: &RateLimitRequest,
        now_ms: i64,
    ) -> Result<RateLimitResponse, Refusal> {
        let plan = plan::plan(request, &self.bounds, self.default_limit, now_ms).map_err(|e| {
            tracing::debug!(domain = %truncated(&request.domain), error = %e, "request refused");
            e
        })?;
        let counts = self
            .store
            .add(plan.counters(), plan.hits)
            .await
            .map_err(|e| {
                self.metrics.redis_error();
                tracing::warn!(error = %e, "redis unavailable: answering UNAVAILABLE");
                Refusal::Unavailable
            })?;
        let mut counts = counts.into_iter();
        let mut over = 0u64;
        let mut statuses = Vec::with_capacity(plan.items.len());
        for item in &plan.items {
            let status = match item {
                Item::Unlimited => DescriptorStatus {
                    code: Code::Ok as i32,
                    current_limit: None,
                    limit_remaining: 0,
                    duration_until_reset: None,
                },
                Item::Counted { limit, window, .. } => {
                    // `add` returned one count per counted item.
                    let count = counts.next().ok_or(Refusal::Unavailable)?;
                    let allowed = u64::from(limit.requests_per_unit);
                    let code = if count > allowed {
                        over += 1;
                        Code::OverLimit
                    } else {
                        Code::Ok
                    };
                    let millis = window.millis_until_end(now_ms);
                    DescriptorStatus {
                        code: code as i32,
                        current_limit: Some(proto::RateLimit {
                            requests_per_unit: limit.requests_per_unit,
                            unit: limit.unit as i32,
                            name: String::new(),
                        }),
                        limit_remaining: u32::try_from(allowed.saturating_sub(count))
                            .unwrap_or(u32::MAX),
                        duration_until_reset: Some(proto::Duration {
                            seconds: millis / 1000,
                            nanos: i32::try_from((millis % 1000) * 1_000_000).unwrap_or(0),
                        }),
                    }
                }
            };
            statuses.push(status);
        }
        if over > 0 {
            self.metrics.over_limit(over);
        }
        Ok(RateLimitResponse {
            overall_code: if over > 0 { Code::OverLimit } else { Code::Ok } as i32,
            statuses,
        })
    }
}

/// At most 64 characters of caller input, for logs.
fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}
