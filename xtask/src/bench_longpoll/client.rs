//! The client side: keep-alive "admin" connections (push, metrics) opened
//! before the load, so they work even when the server is out of
//! descriptors, and the long-polls themselves, one connection each.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, ETAG, HOST, IF_NONE_MATCH};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// How long one connect may take (a full accept queue drops SYNs, and the
/// kernel retries them for minutes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP/1.1 keep-alive connection for requests in sequence.
pub struct Admin {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A whole response.
pub struct Answer {
    /// Status.
    pub status: StatusCode,
    /// The `ETag`, if any.
    pub etag: Option<String>,
    /// The body.
    pub body: Bytes,
}

impl Admin {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Result<Self, String> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connect to {addr} timed out"))?
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends one request and reads the whole answer (bounded by 10 s).
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Bytes,
    ) -> Result<Answer, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.host);
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let exchange = async {
            self.sender.ready().await.map_err(|e| e.to_string())?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let etag = response
                .headers()
                .get(ETAG)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok(Answer { status, etag, body })
        };
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| format!("{path}: no answer in 10 s"))?
    }
}

/// What became of one long-poll.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// A whole answer arrived.
    Answered {
        /// Its status.
        status: u16,
        /// When the last body byte arrived.
        at: Instant,
    },
    /// It failed: how (connect refused, reset, timed out...).
    Failed {
        /// What went wrong, short.
        what: String,
    },
}

/// How far the polls have got, shared with the driver.
#[derive(Debug, Default)]
pub struct Progress {
    /// Connections established.
    pub connected: AtomicUsize,
    /// Requests handed to the connection.
    pub sent: AtomicUsize,
    /// Polls finished (answered or failed).
    pub done: AtomicUsize,
}

/// One long-poll for `path` with `If-None-Match: etag`; at most
/// `connects` connects are in progress at once.
pub async fn poll(
    addr: SocketAddr,
    path: Arc<str>,
    etag: Arc<str>,
    connects: Arc<Semaphore>,
    progress: Arc<Progress>,
    deadline: Duration,
) -> Outcome {
    let outcome = poll_once(addr, &path, &etag, connects, &progress, deadline).await;
    progress.done.fetch_add(1, Ordering::Relaxed);
    match outcome {
        Ok(status) => Outcome::Answered {
            status,
            at: Instant::now(),
        },
        Err(what) => Outcome::Failed { what },
    }
}

async fn poll_once(
    addr: SocketAddr,
    path: &str,
    etag: &str,
    connects: Arc<Semaphore>,
    progress: &Progress,
    deadline: Duration,
) -> Result<u16, String> {
    let permit = connects.acquire_owned().await.map_err(|e| e.to_string())?;
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Err(_) => return Err("connect timed out".into()),
        Ok(Err(e)) => return Err(format!("connect: {:?}", e.kind())),
        Ok(Ok(stream)) => stream,
    };
    drop(permit);
    progress.connected.fetch_add(1, Ordering::Relaxed);
    let (mut sender, connection) = http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    let request = Request::builder()
        .uri(path)
        .header(HOST, addr.to_string())
        .header(IF_NONE_MATCH, etag)
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    progress.sent.fetch_add(1, Ordering::Relaxed);
    let exchange = async {
        let response = sender.send_request(request).await.map_err(classify)?;
        let status = response.status().as_u16();
        response.into_body().collect().await.map_err(classify)?;
        Ok(status)
    };
    tokio::time::timeout(deadline, exchange)
        .await
        .map_err(|_| "no answer before the client deadline".to_string())?
}

/// A short name for a hyper client error.
fn classify(error: hyper::Error) -> String {
    if error.is_incomplete_message() {
        "connection closed before an answer".into()
    } else if error.is_closed() || error.is_canceled() {
        "connection closed".into()
    } else {
        format!("http: {error}")
    }
}
