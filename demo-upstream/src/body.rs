//! Response bodies: whole ones, and the paced one that makes a stream look
//! like a model producing tokens.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body as HttpBody, Frame, Incoming};
use tokio::time::Sleep;

/// Every response body this server sends: boxed so whole and streamed
/// bodies share one response type.
pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body read; a demo has no business with more.
pub(crate) const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// A body sent in one piece.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed_unsync()
}

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadBodyError {
    /// The client sent more than [`MAX_REQUEST_BYTES`].
    #[error("request body exceeds {MAX_REQUEST_BYTES} bytes")]
    TooLarge,
    /// The connection failed while the body was being read.
    #[error("reading the request body failed: {0}")]
    Failed(String),
}

/// Reads a whole request body, refusing more than [`MAX_REQUEST_BYTES`]:
/// at once when the declared length is too large, otherwise as soon as
/// the data read passes the limit.
pub(crate) async fn read_limited(body: Incoming) -> Result<Bytes, ReadBodyError> {
    let declared = body.size_hint().lower();
    if declared > MAX_REQUEST_BYTES as u64 {
        return Err(ReadBodyError::TooLarge);
    }
    match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ReadBodyError::TooLarge),
        Err(e) => Err(ReadBodyError::Failed(e.to_string())),
    }
}

/// A body that sends each of its frames separately, with a pause between
/// them, so that a proxy sees (and must cope with) data arriving in pieces.
///
/// It reports no size, so HTTP/1.1 sends it chunked.
pub(crate) struct PacedBody {
    frames: VecDeque<Bytes>,
    gap: Duration,
    pause: Option<Pin<Box<Sleep>>>,
}

impl PacedBody {
    /// Sends `frames` in order, the first at once and each next one `gap`
    /// after the previous.
    pub(crate) fn new(frames: Vec<Bytes>, gap: Duration) -> Self {
        Self {
            frames: frames.into(),
            gap,
            pause: None,
        }
    }
}

impl HttpBody for PacedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(pause) = this.pause.as_mut() {
            ready!(pause.as_mut().poll(cx));
            this.pause = None;
        }
        let Some(frame) = this.frames.pop_front() else {
            return Poll::Ready(None);
        };
        if !this.frames.is_empty() {
            this.pause = Some(Box::pin(tokio::time::sleep(this.gap)));
        }
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paced_body_yields_each_frame_separately() {
        let mut body = PacedBody::new(
            vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")],
            Duration::from_millis(1),
        );
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame;
            if let Ok(data) = frame.into_data() {
                seen.push(data);
            }
        }
        assert_eq!(seen, [Bytes::from_static(b"a"), Bytes::from_static(b"b")]);
        assert!(body.is_end_stream());
    }
}
