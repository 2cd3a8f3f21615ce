//! The gRPC service: routes `ShouldRateLimit` to the [`Limiter`].
//!
//! Written against tonic's server building blocks (what `tonic-build`
//! would generate) because the messages are hand-written (see
//! [`crate::proto`]); every other path answers `UNIMPLEMENTED`.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::codegen::{http, Body, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::limiter::{Limiter, Refusal};
use crate::proto::{RateLimitRequest, RateLimitResponse, SERVICE, SHOULD_RATE_LIMIT_PATH};

/// `envoy.service.ratelimit.v3.RateLimitService` as a tower service.
#[derive(Debug, Clone)]
pub struct RateLimitService {
    limiter: Arc<Limiter>,
    max_request_bytes: usize,
}

impl RateLimitService {
    /// The service over `limiter`; request messages over
    /// `max_request_bytes` are refused (`RESOURCE_EXHAUSTED`) before they
    /// are decoded.
    pub fn new(limiter: Arc<Limiter>, max_request_bytes: usize) -> Self {
        Self {
            limiter,
            max_request_bytes,
        }
    }
}

impl NamedService for RateLimitService {
    const NAME: &'static str = SERVICE;
}

/// The one method.
struct ShouldRateLimit(Arc<Limiter>);

impl UnaryService<RateLimitRequest> for ShouldRateLimit {
    type Response = RateLimitResponse;
    type Future = BoxFuture<Response<RateLimitResponse>, Status>;

    fn call(&mut self, request: Request<RateLimitRequest>) -> Self::Future {
        let limiter = self.0.clone();
        Box::pin(async move {
            match limiter.should_rate_limit(request.get_ref()).await {
                Ok(answer) => Ok(Response::new(answer)),
                Err(refusal @ Refusal::Invalid(_)) => {
                    Err(Status::invalid_argument(refusal.to_string()))
                }
                Err(refusal @ Refusal::Unavailable) => {
                    Err(Status::unavailable(refusal.to_string()))
                }
            }
        })
    }
}

impl<B> Service<http::Request<B>> for RateLimitService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != SHOULD_RATE_LIMIT_PATH {
            return Box::pin(async { Ok(Status::unimplemented("unknown method").into_http()) });
        }
        let method = ShouldRateLimit(self.limiter.clone());
        let max = self.max_request_bytes;
        Box::pin(async move {
            let codec = tonic_prost::ProstCodec::<RateLimitResponse, RateLimitRequest>::default();
            let mut grpc = Grpc::new(codec).apply_max_message_size_config(Some(max), None);
            Ok(grpc.unary(method, request).await)
        })
    }
}
