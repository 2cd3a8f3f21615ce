//! Reading a request body whole, bounded in size and in time: every body
//! the service reads (pushes, status reports, checkpoints) goes through
//! here, so a client that sends headers and then trickles or withholds
//! the body cannot hold a connection (and its slot under the connection
//! limit) for ever.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as HttpBody;

/// Longest a body may take to arrive: an 8 MiB push at about 150 KiB/s.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a body was not read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BodyError {
    /// Longer than the limit.
    #[error("the limit is {limit} bytes")]
    TooLarge {
        /// The limit, bytes.
        limit: usize,
    },
    /// Not all there within [`BODY_READ_TIMEOUT`].
    #[error("the body did not arrive within {} ms", .0.as_millis())]
    TimedOut(Duration),
    /// The connection failed or the framing was bad.
    #[error("the body could not be read")]
    Broken,
}

/// The whole body, at most `limit` bytes, within [`BODY_READ_TIMEOUT`].
pub async fn collect<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    collect_within(body, limit, BODY_READ_TIMEOUT).await
}

async fn collect_within<B>(body: B, limit: usize, within: Duration) -> Result<Bytes, BodyError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    match tokio::time::timeout(within, Limited::new(body, limit).collect()).await {
        Err(_) => Err(BodyError::TimedOut(within)),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(BodyError::TooLarge { limit })
        }
        Ok(Err(_)) => Err(BodyError::Broken),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A body whose bytes never come (a slowloris client).
    pub(crate) struct Withheld;

    impl HttpBody for Withheld {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_withheld_body_times_out_and_limits_hold() {
        let short = Duration::from_millis(50);
        assert_eq!(
            collect_within(Withheld, 10, short).await,
            Err(BodyError::TimedOut(short))
        );
        let full = http_body_util::Full::new(Bytes::from_static(b"0123456789ab"));
        assert_eq!(
            collect_within(full, 10, short).await,
            Err(BodyError::TooLarge { limit: 10 })
        );
        let fits = http_body_util::Full::new(Bytes::from_static(b"0123"));
        assert_eq!(
            collect_within(fits, 10, short).await,
            Ok(Bytes::from_static(b"0123"))
        );
    }
}
