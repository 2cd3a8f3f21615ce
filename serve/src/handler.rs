//! What the loop serves: any `Fn(Request, Lane) -> Future<Result<Response>>`.

use std::error::Error as StdError;
use std::future::Future;

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};

use crate::Lane;

/// An error hyper can carry.
pub type BoxError = Box<dyn StdError + Send + Sync>;

/// Answers one request, told the [`Lane`] it came in on. Implemented by
/// every `Fn(Request<Incoming>, Lane) -> impl Future<Output =
/// Result<Response<B>, E>>` that can be shared between connections.
pub trait Handler: Send + Sync + 'static {
    /// The response body.
    type Body: Body<Data: Send, Error: Into<BoxError>> + Send + 'static;
    /// What the handler may fail with (the connection is then closed).
    type Error: Into<BoxError>;
    /// The answer, in time.
    type Future: Future<Output = Result<Response<Self::Body>, Self::Error>> + Send + 'static;

    /// Answers `request`.
    fn call(&self, request: Request<Incoming>, lane: Lane) -> Self::Future;
}

impl<F, Fut, B, E> Handler for F
where
    F: Fn(Request<Incoming>, Lane) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
    E: Into<BoxError>,
{
    type Body = B;
    type Error = E;
    type Future = Fut;

    fn call(&self, request: Request<Incoming>, lane: Lane) -> Fut {
        self(request, lane)
    }
}
