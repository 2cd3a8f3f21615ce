//! A small `ShouldRateLimit` client: the tests speak to the service with
//! it, and it shows what a caller sends.

use std::time::Duration;

use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::proto::{RateLimitRequest, RateLimitResponse, SHOULD_RATE_LIMIT_PATH};

/// A connection to the service.
#[derive(Debug, Clone)]
pub struct Client {
    grpc: tonic::client::Grpc<Channel>,
}

impl Client {
    /// Connects to `addr` (`host:port`, plaintext HTTP/2).
    pub async fn connect(addr: &str) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await?;
        Ok(Self {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    /// One `ShouldRateLimit` call.
    pub async fn should_rate_limit(
        &mut self,
        request: RateLimitRequest,
    ) -> Result<RateLimitResponse, Status> {
        self.call(request).await
    }

    /// Sends any message on the `ShouldRateLimit` path and decodes the
    /// answer as a `RateLimitResponse` (tests send malformed messages
    /// with it).
    pub async fn call<M>(&mut self, message: M) -> Result<RateLimitResponse, Status>
    where
        M: prost::Message + Send + Sync + 'static,
    {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("not ready: {e}")))?;
        let codec = tonic_prost::ProstCodec::<M, RateLimitResponse>::default();
        self.grpc
            .unary(
                Request::new(message),
                PathAndQuery::from_static(SHOULD_RATE_LIMIT_PATH),
                codec,
            )
            .await
            .map(tonic::Response::into_inner)
    }
}
