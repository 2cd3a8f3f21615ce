//! What a hostile or broken peer can do to the service's connections:
//! silent connections (slowloris), more connections than allowed, a
//! request trickled and never finished, many streams held open. Raw
//! HTTP/2 (the `h2` crate) sends what no well-behaved gRPC client would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{codes, descriptor, request, unique, Service};
use mcp_guard_e2e::redis::Redis;
use mcp_guard_ratelimit::proto::{Code, RateLimitRequest, Unit, SHOULD_RATE_LIMIT_PATH};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gRPC request's headers.
fn grpc_request(addr: &str) -> http::Request<()> {
    http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}{SHOULD_RATE_LIMIT_PATH}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// `message` as one gRPC frame (uncompressed, length-prefixed).
fn frame(message: &RateLimitRequest) -> Bytes {
    let body = message.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    Bytes::from(out)
}

/// A raw HTTP/2 connection (its driver runs in the background and
/// answers the server's pings).
async fn h2_connect(addr: &str) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    send
}

/// Sends one complete call on `send`; the grpc-status and the body.
async fn h2_call(send: &mut h2::client::SendRequest<Bytes>, addr: &str) -> (String, Vec<u8>) {
    let mut ready = send.clone().ready().await.unwrap();
    let (response, mut stream) = ready.send_request(grpc_request(addr), false).unwrap();
    let message = request(
        vec![descriptor(
            &[("user", &unique("h2"))],
            Some((5, Unit::Hour)),
        )],
        1,
    );
    stream.send_data(frame(&message), true).unwrap();
    let response = response.await.unwrap();
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let status = match parts.headers.get("grpc-status") {
        Some(value) => value.to_str().unwrap().to_owned(),
        None => body
            .trailers()
            .await
            .unwrap()
            .and_then(|t| t.get("grpc-status").map(|v| v.to_str().unwrap().to_owned()))
            .unwrap_or_default(),
    };
    (status, data)
}

/// Whether the server closed `stream` within `within` (EOF or reset).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A SETTINGS frame or a GOAWAY: keep reading.
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_capped_and_closed_at_the_idle_timeout() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |c| {
        c.max_connections = 4;
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    // Four connections that never send a byte hold every slot...
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(&service.grpc).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // ... so a fifth is closed at once.
    let mut extra = TcpStream::connect(&service.grpc).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_millis(500)).await);
    // A half-sent preface is as silent as none.
    silent[0]
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM")
        .await
        .unwrap();
    // After the idle timeout every silent connection is gone.
    for stream in &mut silent {
        assert!(closed_within(stream, Duration::from_secs(3)).await);
    }
    let (_, metrics) = service.get("/metrics").await;
    assert!(
        metrics.contains("mcp_ratelimit_service_refused_connections_total 1"),
        "{metrics}"
    );
    // The slots are free again: a real client is served.
    let mut client = service.client().await;
    let answer = client
        .should_rate_limit(request(
            vec![descriptor(
                &[("user", &unique("after"))],
                Some((1, Unit::Hour)),
            )],
            1,
        ))
        .await
        .unwrap();
    assert_eq!(codes(&answer).0, Code::Ok);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_that_answers_pings_keeps_its_connection() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |c| {
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let mut send = h2_connect(&service.grpc).await;
    assert_eq!(h2_call(&mut send, &service.grpc).await.0, "0");
    // Three idle timeouts without a call: the server's keep-alive pings
    // (every third of the idle timeout) are answered, so the connection
    // lives on.
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert_eq!(h2_call(&mut send, &service.grpc).await.0, "0");
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_request_is_cut_off_by_the_request_timeout() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |c| {
        c.request_timeout = Duration::from_millis(500);
    })
    .await;
    let send = h2_connect(&service.grpc).await;
    let mut ready = send.ready().await.unwrap();
    let (response, mut stream) = ready
        .send_request(grpc_request(&service.grpc), false)
        .unwrap();
    // Three bytes of the five-byte frame header, then nothing.
    stream
        .send_data(Bytes::from_static(&[0, 0, 0]), false)
        .unwrap();
    let started = Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(5), response)
        .await
        .expect("answered")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let status = response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        status.as_deref().is_some_and(|s| s != "0"),
        "{:?}",
        response.headers()
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_connection_are_capped() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |c| {
        c.max_streams_per_connection = 4;
        c.request_timeout = Duration::from_secs(2);
    })
    .await;
    let mut send = h2_connect(&service.grpc).await;
    // Four streams opened and never finished hold the connection's
    // allowance...
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut ready = send.clone().ready().await.unwrap();
        let (response, stream) = ready
            .send_request(grpc_request(&service.grpc), false)
            .unwrap();
        held.push((response, stream));
    }
    // ... so a fifth waits for a free stream (h2 queues it client-side)
    // until the request timeout ends the held ones.
    let started = Instant::now();
    let (status, _) =
        tokio::time::timeout(Duration::from_secs(10), h2_call(&mut send, &service.grpc))
            .await
            .expect("served once the held streams timed out");
    assert_eq!(status, "0");
    assert!(
        started.elapsed() >= Duration::from_millis(1_500),
        "{:?}",
        started.elapsed()
    );
    drop(held);
    service.stop().await;
}
