//! HTTP/2 on both sides of Envoy, for tests of trailers: a cleartext
//! (prior-knowledge) HTTP/2 client, and an HTTP/2 upstream that records
//! what it receives and answers with scripted bodies and trailers.
//!
//! HTTP/1.1 clients cannot show what these tests need: a body that ends
//! with trailers never reaches a filter's body callback with
//! end-of-stream, only the trailers callback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::channel::{Channel, Sender};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;

use crate::StackError;

/// A body in parts: each `Data` is its own DATA frame, sent `gap` after
/// the previous one; trailers (if any) end the stream.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    /// DATA frames in order.
    pub data: Vec<Vec<u8>>,
    /// Trailers; `None` ends the stream on the last DATA frame.
    pub trailers: Option<Vec<(String, String)>>,
    /// Pause between frames (lets Envoy deliver them as separate chunks).
    pub gap: Duration,
}

impl Parts {
    /// One DATA frame followed by trailers.
    pub fn with_trailers(body: &[u8], trailers: &[(&str, &str)]) -> Self {
        Self {
            data: vec![body.to_vec()],
            trailers: Some(pairs(trailers)),
            gap: Duration::ZERO,
        }
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

fn header_map(list: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in list {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn header_list(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// Writes `parts` into a body channel, then closes it.
async fn feed(mut sender: Sender<Bytes>, parts: Parts) {
    for (i, data) in parts.data.into_iter().enumerate() {
        if i > 0 && !parts.gap.is_zero() {
            tokio::time::sleep(parts.gap).await;
        }
        if sender.send_data(Bytes::from(data)).await.is_err() {
            return;
        }
    }
    if let Some(trailers) = parts.trailers {
        if !parts.gap.is_zero() {
            tokio::time::sleep(parts.gap).await;
        }
        let _ = sender.send_trailers(header_map(&trailers)).await;
    }
}

/// A body that streams `parts` as they are written.
fn streamed(parts: Parts) -> Channel<Bytes> {
    let (sender, body) = Channel::new(4);
    tokio::spawn(feed(sender, parts));
    body
}

/// A message as one side received it.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// Status (responses) or 0 (requests).
    pub status: u16,
    /// Request path (requests) or empty.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
    /// Trailers, when the body ended with some.
    pub trailers: Option<Vec<(String, String)>>,
}

impl Message {
    /// First value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// First value of a trailer.
    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .as_ref()?
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_default()
    }
}

/// Reads a whole body with its trailers.
async fn collect(body: Incoming) -> Result<(Vec<u8>, Option<Vec<(String, String)>>), String> {
    let collected = body.collect().await.map_err(|e| e.to_string())?;
    let trailers = collected.trailers().map(header_list);
    Ok((collected.to_bytes().to_vec(), trailers))
}

/// Sends one request over a fresh HTTP/2 cleartext (prior knowledge)
/// connection to `127.0.0.1:port` and reads the whole answer.
pub fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Parts,
) -> Result<Message, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(20),
            send_async(port, method, path, headers, body),
        )
        .await
        .map_err(|_| "timed out".to_string())?
    })
}

async fn send_async(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Parts,
) -> Result<Message, String> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http2::handshake::<_, _, Channel<Bytes>>(
        TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder.body(streamed(body)).map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let headers = header_list(response.headers());
    let (body, trailers) = collect(response.into_body()).await?;
    Ok(Message {
        status,
        path: path.to_string(),
        headers,
        body,
        trailers,
    })
}

/// What the upstream answers: status, headers and body parts.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// Body and trailers.
    pub body: Parts,
}

/// Picks the answer for a received request.
pub type Script = Arc<dyn Fn(&Message) -> Answer + Send + Sync>;

/// An HTTP/2 (cleartext) upstream on a free loopback port: records every
/// request it receives and answers from a script. Stops when dropped.
pub struct H2Upstream {
    /// Its port.
    pub port: u16,
    seen: Arc<Mutex<Vec<Message>>>,
    stop: watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl H2Upstream {
    /// Starts serving.
    pub fn start(script: Script) -> Result<Self, StackError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let port = listener.local_addr()?.port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, signal) = watch::channel(false);
        runtime.spawn(serve(listener, script, Arc::clone(&seen), signal));
        Ok(Self {
            port,
            seen,
            stop,
            runtime: Some(runtime),
        })
    }

    /// Every request received so far, in arrival order.
    pub fn seen(&self) -> Vec<Message> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for H2Upstream {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    script: Script,
    seen: Arc<Mutex<Vec<Message>>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let script = Arc::clone(&script);
        let seen = Arc::clone(&seen);
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let script = Arc::clone(&script);
            let seen = Arc::clone(&seen);
            async move { Ok::<_, std::convert::Infallible>(answer(request, &script, &seen).await) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Reads the whole request (body and trailers), records it, answers it.
async fn answer(
    request: Request<Incoming>,
    script: &Script,
    seen: &Mutex<Vec<Message>>,
) -> Response<Channel<Bytes>> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let headers = header_list(request.headers());
    let (body, trailers) = collect(request.into_body())
        .await
        .unwrap_or_else(|e| (format!("body error: {e}").into_bytes(), None));
    let message = Message {
        status: 0,
        path,
        headers,
        body,
        trailers,
    };
    let answer = script(&message);
    if let Ok(mut list) = seen.lock() {
        list.push(message);
    }
    let mut response = Response::builder().status(answer.status);
    for (k, v) in &answer.headers {
        response = response.header(k.as_str(), v.as_str());
    }
    response
        .body(streamed(answer.body))
        .unwrap_or_else(|_| Response::new(streamed(Parts::default())))
}
