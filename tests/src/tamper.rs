//! An HTTP proxy between Envoy and the control service that can alter
//! bundles in transit, to prove the filter rejects what the control service
//! did not sign.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

/// Switch shared with the proxy: when on, every 200 body has one byte
/// changed (see [`tamper`]) and stays a valid bundle, so only the
/// signature can tell.
#[derive(Debug, Clone, Default)]
pub struct TamperSwitch(Arc<AtomicBool>);

impl TamperSwitch {
    /// Starts or stops altering bundles.
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::SeqCst);
    }

    fn on(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Changes one byte of a bundle while keeping it a valid bundle: the
/// description's first letter is flipped in case.
pub fn tamper(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    if let Some(at) = find(&out, b"\"description\"") {
        if let Some(quote) = out[at + 14..].iter().position(|b| *b == b'"') {
            let i = at + 14 + quote + 1;
            if let Some(b) = out.get_mut(i) {
                *b = if b.is_ascii_uppercase() {
                    b.to_ascii_lowercase()
                } else {
                    b.to_ascii_uppercase()
                };
            }
        }
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

async fn forward(
    upstream: u16,
    switch: TamperSwitch,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let failed = || {
        let mut r = Response::new(Full::new(Bytes::from_static(b"proxy error")));
        *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
        r
    };
    let Ok(stream) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return Ok(failed());
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return Ok(failed());
    };
    tokio::spawn(connection);
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let Ok(response) = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await
    else {
        return Ok(failed());
    };
    let (parts, body) = response.into_parts();
    let mut bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if parts.status == hyper::StatusCode::OK && switch.on() {
        bytes = Bytes::from(tamper(&bytes));
    }
    Ok(Response::from_parts(parts, Full::new(bytes)))
}

/// Serves the proxy on `listener`, forwarding to `127.0.0.1:upstream`.
pub async fn serve(listener: TcpListener, upstream: u16, switch: TamperSwitch) {
    while let Ok((stream, _)) = listener.accept().await {
        let switch = switch.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |r| forward(upstream, switch.clone(), r));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tampering_changes_exactly_one_byte() {
        let body = br#"{"name":"demo","version":2,"description":"Demo policy"}"#;
        let out = tamper(body);
        assert_eq!(out.len(), body.len());
        assert_eq!(
            out.iter().zip(body.iter()).filter(|(a, b)| a != b).count(),
            1
        );
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    }
}
