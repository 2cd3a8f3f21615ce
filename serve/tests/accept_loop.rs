//! The shared accept loop on real loopback sockets: graceful drain, the
//! connection cap and its overflow lane, header timeouts.

mod support;

use std::time::{Duration, Instant};

use mcp_guard_serve::{Options, Overflow};
use mcp_guard_test_support::http::get;
use support::{eventually, start, Counts};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the server closes; the bytes, or what is left when the
/// connection was reset.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Vec<u8> {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(within, stream.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "the server did not close within {within:?}");
    raw
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish_then_stops_accepting() {
    let (server, counts) = start(Options::default()).await;
    let addr = server.addr;
    let in_flight = tokio::spawn(async move { get(addr, "/slow", &[]).await });
    eventually("the request is in flight", || {
        Counts::get(&counts.open) == 1
    })
    .await;
    server.stop().await.expect("clean shutdown");
    let reply = in_flight.await.expect("client task");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "Regular");
    assert_eq!(Counts::get(&counts.shutting_down), 1);
    assert_eq!(Counts::get(&counts.drain_gave_up), 0);
    assert_eq!(Counts::get(&counts.open), 0);
    // The listener is closed: nobody is accepted any more.
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn shutting_down_wakes_waiting_requests_before_the_drain() {
    let (server, counts) = start(Options::default()).await;
    let addr = server.addr;
    let waiting = tokio::spawn(async move { get(addr, "/wait", &[]).await });
    eventually("the request waits", || Counts::get(&counts.open) == 1).await;
    let started = Instant::now();
    server.stop().await.expect("clean shutdown");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no drain timeout"
    );
    assert_eq!(waiting.await.expect("client task").status, 304);
    assert_eq!(Counts::get(&counts.drain_gave_up), 0);
}

#[tokio::test]
async fn the_drain_gives_up_after_its_timeout() {
    let (server, counts) = start(Options {
        drain_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    let mut hung = TcpStream::connect(addr).await.expect("connect");
    hung.write_all(b"GET /hang HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    eventually("the request hangs", || Counts::get(&counts.open) == 1).await;
    let started = Instant::now();
    server.stop().await.expect("shutdown returns");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(Counts::get(&counts.drain_gave_up), 1);
}

#[tokio::test]
async fn past_the_cap_connections_get_one_request_in_the_overflow_lane() {
    let (server, counts) = start(Options {
        max_connections: Some(1),
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    // An idle connection holds the only slot (until its header timeout).
    let holder = TcpStream::connect(addr).await.expect("connect");
    eventually("the slot is taken", || Counts::get(&counts.open) == 1).await;

    for _ in 0..3 {
        let reply = get(addr, "/", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.text(), "Overflow");
    }
    // Keep-alive asked for, one request given: the lane closes after it.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let raw = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    assert_eq!(text.matches("http/1.1 200").count(), 1, "{text}");
    assert!(text.contains("connection: close"), "{text}");

    // One report per period however many overflow; none of them counted
    // as a regular connection.
    assert_eq!(Counts::get(&counts.limit_reached), 1);
    assert_eq!(Counts::get(&counts.opened), 1);
    assert_eq!(Counts::get(&counts.overflow_full), 0);

    // The slot is free again once its holder leaves.
    drop(holder);
    eventually("the slot is released", || Counts::get(&counts.open) == 0).await;
    let reply = get(addr, "/", &[]).await;
    assert_eq!(reply.text(), "Regular");
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_full_overflow_lane_closes_connections_unanswered() {
    let (server, counts) = start(Options {
        max_connections: Some(0),
        overflow: Overflow {
            in_flight: 1,
            // Long enough that only the client's leaving frees the place.
            header_read_timeout: Duration::from_secs(30),
            ..Overflow::default()
        },
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    // An idle client holds the lane's one place...
    let idle = TcpStream::connect(addr).await.expect("connect");
    eventually("the lane is taken", || {
        Counts::get(&counts.limit_reached) == 1
    })
    .await;
    // ... so the next connection is closed without an answer.
    let mut refused = TcpStream::connect(addr).await.expect("connect");
    let _ = refused
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let raw = read_until_closed(&mut refused, Duration::from_secs(5)).await;
    assert!(raw.is_empty(), "{}", String::from_utf8_lossy(&raw));
    assert_eq!(Counts::get(&counts.overflow_full), 1);
    // The place is free again when the idle client goes.
    drop(idle);
    let mut reply = None;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let raw = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        if !raw.is_empty() {
            reply = Some(String::from_utf8_lossy(&raw).into_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = reply.expect("served once the lane has room");
    assert!(reply.ends_with("Overflow"), "{reply}");
    assert_eq!(Counts::get(&counts.opened), 0);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn an_idle_client_in_the_overflow_lane_is_closed_at_its_header_timeout() {
    let (server, counts) = start(Options {
        max_connections: Some(0),
        overflow: Overflow {
            header_read_timeout: Duration::from_millis(300),
            ..Overflow::default()
        },
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    idle.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
    read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(Counts::get(&counts.opened), 0);
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn a_client_slow_to_send_its_headers_is_closed() {
    let (server, counts) = start(Options {
        header_read_timeout: Duration::from_millis(300),
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let mut slow = TcpStream::connect(server.addr).await.expect("connect");
    slow.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    let raw = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Closed before any handler ran (hyper may say 408 first).
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("Regular"), "{text}");
    eventually("the slot is released", || Counts::get(&counts.open) == 0).await;
    server.stop().await.expect("clean shutdown");
}

#[tokio::test]
async fn one_address_cannot_hold_the_whole_overflow_lane() {
    let (server, counts) = start(Options {
        max_connections: Some(0),
        overflow: Overflow {
            in_flight: 4,
            per_peer: 2,
            // Long enough that only the clients' leaving frees a place.
            header_read_timeout: Duration::from_secs(30),
            ..Overflow::default()
        },
        ..Options::default()
    })
    .await;
    let addr = server.addr;
    // A slow-loris from 127.0.0.1 opens as many silent connections as the
    // lane has places: it gets its share, the rest are closed unanswered.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(addr).await.expect("connect"));
    }
    eventually("the attacker's extra connections are refused", || {
        Counts::get(&counts.overflow_full) == 2
    })
    .await;
    // Another client address still gets its answer.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let mut other = socket.connect(addr).await.expect("connect");
    other
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let raw = read_until_closed(&mut other, Duration::from_secs(5)).await;
    let reply = String::from_utf8_lossy(&raw);
    assert!(reply.ends_with("Overflow"), "{reply}");
    // The attacker's places come back when it leaves.
    drop(silent);
    let mut reply = None;
    for _ in 0..50 {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let _ = stream.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
        let raw = read_until_closed(&mut stream, Duration::from_secs(5)).await;
        if !raw.is_empty() {
            reply = Some(String::from_utf8_lossy(&raw).into_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reply.expect("served again").ends_with("Overflow"));
    server.stop().await.expect("clean shutdown");
}
