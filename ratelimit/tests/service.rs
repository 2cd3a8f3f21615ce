//! The service against a real Redis (`redis-server` on a free loopback
//! port), through a real gRPC client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{codes, descriptor, http_get, request, unique, Service};
use mcp_guard_e2e::ratelimit::RateLimitProcess;
use mcp_guard_e2e::redis::Redis;
use mcp_guard_ratelimit::client::Client;
use mcp_guard_ratelimit::proto::{Code, RateLimitRequest, RateLimitResponse, Unit};
use mcp_guard_ratelimit::Limit;
use tonic::Code as Grpc;

/// Waits until the start of a second with at least `margin` left in it,
/// so a burst of calls lands in one one-second window.
async fn early_in_a_second(margin: Duration) {
    loop {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_millis();
        if u128::from(1000 - ms) > margin.as_millis() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(u64::from(1001 - ms))).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_admits_n_per_window_then_answers_over_limit() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |_| {}).await;
    let mut client = service.client().await;
    let user = unique("alice");
    let mut remaining = Vec::new();
    let mut verdicts = Vec::new();
    for _ in 0..5 {
        let answer = client
            .should_rate_limit(request(
                vec![descriptor(&[("user", &user)], Some((3, Unit::Hour)))],
                1,
            ))
            .await
            .unwrap();
        verdicts.push(codes(&answer).0);
        let status = &answer.statuses[0];
        remaining.push(status.limit_remaining);
        let limit = status.current_limit.as_ref().unwrap();
        assert_eq!(
            (limit.requests_per_unit, limit.unit),
            (3, Unit::Hour as i32)
        );
        let reset = status.duration_until_reset.unwrap();
        assert!(
            (0..=3600).contains(&reset.seconds) && (0..1_000_000_000).contains(&reset.nanos),
            "{reset:?}"
        );
    }
    assert_eq!(
        verdicts,
        [
            Code::Ok,
            Code::Ok,
            Code::Ok,
            Code::OverLimit,
            Code::OverLimit
        ]
    );
    assert_eq!(remaining, [2, 1, 0, 0, 0]);
    // Another value of the same key has its own counter.
    let other = client
        .should_rate_limit(request(
            vec![descriptor(
                &[("user", &unique("bob"))],
                Some((3, Unit::Hour)),
            )],
            1,
        ))
        .await
        .unwrap();
    assert_eq!(codes(&other).0, Code::Ok);
    // The counter in Redis expires after the window (hour + slack).
    let ttl = redis.command(&["TTL", &key_of(&user, Unit::Hour)]).unwrap();
    let ttl: i64 = ttl.trim_start_matches(':').parse().unwrap();
    assert!((1..=3600 + 5).contains(&ttl), "ttl {ttl}");
    service.stop().await;
}

/// The Redis key of `[("user", user)]` in domain `mcp` now.
fn key_of(user: &str, unit: Unit) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let window = mcp_guard_ratelimit::window::window(unit, now).unwrap();
    String::from_utf8(mcp_guard_ratelimit::key::counter_key(
        "mcp",
        [("user", user)],
        unit,
        window.start,
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_window_starts_a_new_count() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |_| {}).await;
    let mut client = service.client().await;
    let user = unique("windows");
    let call = || {
        request(
            vec![descriptor(&[("user", &user)], Some((2, Unit::Second)))],
            1,
        )
    };
    early_in_a_second(Duration::from_millis(400)).await;
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(codes(&client.should_rate_limit(call()).await.unwrap()).0);
    }
    assert_eq!(first, [Code::Ok, Code::Ok, Code::OverLimit]);
    let answer = client.should_rate_limit(call()).await.unwrap();
    let reset = answer.statuses[0].duration_until_reset.unwrap();
    assert_eq!(reset.seconds, 0, "a one-second window resets within 1 s");
    tokio::time::sleep(Duration::from_millis(
        u64::try_from(reset.nanos / 1_000_000).unwrap() + 20,
    ))
    .await;
    let next = client.should_rate_limit(call()).await.unwrap();
    assert_eq!(codes(&next).0, Code::Ok, "the next second is a new window");
    assert_eq!(next.statuses[0].limit_remaining, 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hits_addend_is_added_and_zero_counts_as_one() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |_| {}).await;
    let mut client = service.client().await;
    let user = unique("tokens");
    let mut send = async |hits: u32| {
        client
            .should_rate_limit(request(
                vec![descriptor(&[("user", &user)], Some((10, Unit::Day)))],
                hits,
            ))
            .await
            .unwrap()
    };
    let a = send(4).await;
    assert_eq!((codes(&a).0, a.statuses[0].limit_remaining), (Code::Ok, 6));
    let b = send(0).await;
    assert_eq!((codes(&b).0, b.statuses[0].limit_remaining), (Code::Ok, 5));
    let c = send(5).await;
    assert_eq!((codes(&c).0, c.statuses[0].limit_remaining), (Code::Ok, 0));
    let d = send(1).await;
    assert_eq!(
        (codes(&d).0, d.statuses[0].limit_remaining),
        (Code::OverLimit, 0)
    );
    // u32::MAX hits at once, many times: the counter saturates instead of
    // overflowing Redis's INCRBY (which would turn the key into errors).
    for _ in 0..50 {
        let e = send(u32::MAX).await;
        assert_eq!(codes(&e).0, Code::OverLimit);
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_near_i64_max_saturates_instead_of_failing() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |_| {}).await;
    let mut client = service.client().await;
    let user = unique("overflow");
    for value in ["9223372036854775000", "1125899906842623"] {
        assert_eq!(
            redis
                .command(&["SET", &key_of(&user, Unit::Day), value])
                .unwrap(),
            "+OK"
        );
        let answer = client
            .should_rate_limit(request(
                vec![descriptor(&[("user", &user)], Some((u32::MAX, Unit::Day)))],
                u32::MAX,
            ))
            .await
            .unwrap();
        assert_eq!(codes(&answer).0, Code::OverLimit, "{value}");
        assert_eq!(answer.statuses[0].limit_remaining, 0);
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_descriptor_over_limit_makes_the_call_over_limit() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |_| {}).await;
    let mut client = service.client().await;
    let (model, user) = (unique("model"), unique("user"));
    let call = || {
        request(
            vec![
                descriptor(&[("model", &model)], Some((100, Unit::Minute))),
                descriptor(
                    &[("model", &model), ("user", &user)],
                    Some((1, Unit::Minute)),
                ),
                // No override and no default: answered OK, not counted.
                descriptor(&[("free", "x")], None),
            ],
            1,
        )
    };
    let first = client.should_rate_limit(call()).await.unwrap();
    assert_eq!(codes(&first), (Code::Ok, vec![Code::Ok; 3]));
    assert_eq!(first.statuses[2].current_limit, None);
    let second = client.should_rate_limit(call()).await.unwrap();
    assert_eq!(
        codes(&second),
        (Code::OverLimit, vec![Code::Ok, Code::OverLimit, Code::Ok])
    );
    assert_eq!(second.statuses[0].limit_remaining, 98);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_limit_applies_to_descriptors_without_an_override() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |c| {
        c.default_limit = Some(Limit {
            requests_per_unit: 2,
            unit: Unit::Hour,
        });
    })
    .await;
    let mut client = service.client().await;
    let user = unique("default");
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let answer = client
            .should_rate_limit(request(vec![descriptor(&[("user", &user)], None)], 1))
            .await
            .unwrap();
        verdicts.push(codes(&answer).0);
    }
    assert_eq!(verdicts, [Code::Ok, Code::Ok, Code::OverLimit]);
    // An override still wins over the default.
    let answer = client
        .should_rate_limit(request(
            vec![descriptor(&[("user", &user)], Some((10, Unit::Hour)))],
            1,
        ))
        .await
        .unwrap();
    assert_eq!(codes(&answer).0, Code::Ok);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_admit_exactly_the_limit() {
    let redis = Redis::start().unwrap();
    let service = Arc::new(Service::start(&redis.url(), |_| {}).await);
    let user = Arc::new(unique("burst"));
    let admitted = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    // 8 connections x 50 calls, 16 at a time each: 400 calls for 64 slots.
    for _ in 0..8 {
        let client = service.client().await;
        for _ in 0..16 {
            let (mut client, user, admitted) = (client.clone(), user.clone(), admitted.clone());
            tasks.spawn(async move {
                for _ in 0..3 {
                    let answer = client
                        .should_rate_limit(request(
                            vec![descriptor(&[("user", &user)], Some((64, Unit::Hour)))],
                            1,
                        ))
                        .await
                        .unwrap();
                    if codes(&answer).0 == Code::Ok {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap();
    }
    assert_eq!(admitted.load(std::sync::atomic::Ordering::Relaxed), 64);
    let count = redis.command(&["GET", &key_of(&user, Unit::Hour)]).unwrap();
    assert_eq!(count, "$3", "384 hits counted (a 3-digit bulk string)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_answers_unavailable_quickly_then_recovers() {
    let mut redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |c| {
        c.redis_timeout = Duration::from_millis(200);
    })
    .await;
    let mut client = service.client().await;
    let user = unique("outage");
    let call = || {
        request(
            vec![descriptor(&[("user", &user)], Some((100, Unit::Hour)))],
            1,
        )
    };
    assert_eq!(
        codes(&client.should_rate_limit(call()).await.unwrap()).0,
        Code::Ok
    );
    assert_eq!(service.get("/readyz").await.0, 200);

    redis.stop();
    for _ in 0..5 {
        let started = Instant::now();
        let error = client.should_rate_limit(call()).await.unwrap_err();
        assert_eq!(error.code(), Grpc::Unavailable, "{error:?}");
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }
    let (status, body) = service.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("redis"), "{body}");
    let (_, metrics) = service.get("/metrics").await;
    assert!(
        metrics.contains("mcp_ratelimit_service_redis_errors_total 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("mcp_ratelimit_service_requests_total{outcome=\"unavailable\"} 5"),
        "{metrics}"
    );

    redis.start_again().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match client.should_rate_limit(call()).await {
            Ok(answer) => {
                // Redis came back empty (no persistence): a fresh count.
                assert_eq!(codes(&answer).0, Code::Ok);
                assert_eq!(answer.statuses[0].limit_remaining, 99);
                break;
            }
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.code(), Grpc::Unavailable);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no recovery: {e:?}"),
        }
    }
    assert_eq!(service.get("/readyz").await.0, 200);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_up_still_starts_and_answers_unavailable() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let service = Service::start(&format!("redis://127.0.0.1:{port}"), |_| {}).await;
    let mut client = service.client().await;
    let error = client
        .should_rate_limit(request(
            vec![descriptor(&[("user", "u")], Some((1, Unit::Hour)))],
            1,
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Grpc::Unavailable);
    assert_eq!(service.get("/healthz").await.0, 200);
    assert_eq!(service.get("/readyz").await.0, 503);
    service.stop().await;
}

/// A message with RateLimitRequest's field numbers but wrong wire types.
#[derive(Clone, PartialEq, prost::Message)]
struct Garbled {
    #[prost(uint64, tag = "1")]
    domain: u64,
    #[prost(fixed32, tag = "2")]
    descriptors: u32,
}

/// Raw bytes as one field-1 string of any size.
#[derive(Clone, PartialEq, prost::Message)]
struct Padded {
    #[prost(string, tag = "1")]
    domain: String,
    #[prost(bytes = "vec", tag = "9")]
    padding: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_are_refused() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |c| {
        c.bounds.max_descriptors = 4;
        c.bounds.max_entries = 4;
        c.bounds.max_key_bytes = 256;
        c.max_request_bytes = 16 * 1024;
    })
    .await;
    let mut client = service.client().await;

    let error = client
        .call(Garbled {
            domain: 7,
            descriptors: 9,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(error.code(), Grpc::Internal | Grpc::InvalidArgument),
        "{error:?}"
    );

    let error = client
        .call(Padded {
            domain: "mcp".into(),
            padding: vec![b'x'; 17 * 1024],
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Grpc::OutOfRange, "{error:?}");

    let d = || descriptor(&[("user", "u")], Some((1, Unit::Hour)));
    let mut cases: Vec<(RateLimitRequest, &str)> = vec![
        (request(vec![d(); 5], 1), "5 descriptors"),
        (request(vec![], 1), "no descriptors"),
        (
            request(vec![descriptor(&[("a", "b"); 5], Some((1, Unit::Hour)))], 1),
            "5 entries",
        ),
        (
            request(vec![descriptor(&[], Some((1, Unit::Hour)))], 1),
            "no entries",
        ),
        (
            request(vec![descriptor(&[("user", "")], Some((1, Unit::Hour)))], 1),
            "empty key or value",
        ),
        (
            request(
                vec![descriptor(
                    &[("user", &"x".repeat(300))],
                    Some((1, Unit::Hour)),
                )],
                1,
            ),
            "bytes; at most 256",
        ),
    ];
    let mut unknown_unit = request(vec![d()], 1);
    unknown_unit.descriptors[0].limit.as_mut().unwrap().unit = 42;
    cases.push((unknown_unit, "not a known unit"));
    let mut no_domain = request(vec![d()], 1);
    no_domain.domain.clear();
    cases.push((no_domain, "domain is empty"));
    for (bad, why) in cases {
        let error = client.should_rate_limit(bad).await.unwrap_err();
        assert_eq!(error.code(), Grpc::InvalidArgument, "{why}: {error:?}");
        assert!(error.message().contains(why), "{why}: {error:?}");
    }
    // 10 000 descriptors: refused by size or by count, never counted.
    let many = request(vec![d(); 10_000], 1);
    let error = client.should_rate_limit(many).await.unwrap_err();
    assert!(
        matches!(error.code(), Grpc::OutOfRange | Grpc::InvalidArgument),
        "{error:?}"
    );
    assert_eq!(redis.command(&["DBSIZE"]).unwrap(), ":0", "nothing counted");
    let (_, metrics) = service.get("/metrics").await;
    assert!(
        metrics.contains("mcp_ratelimit_service_requests_total{outcome=\"invalid\"} 8"),
        "{metrics}"
    );
    // The connection still serves good calls.
    let answer = client
        .should_rate_limit(request(vec![d()], 1))
        .await
        .unwrap();
    assert_eq!(codes(&answer).0, Code::Ok);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separators_in_values_never_reach_another_counter() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |_| {}).await;
    let mut client = service.client().await;
    let id = unique("sep");
    // Each pair would share a key under naive joining with ':' or '|'.
    let pairs: [&[(&str, &str)]; 4] = [
        &[("a", "b:c")],
        &[("a:b", "c")],
        &[("a", "b"), ("c", "d")],
        &[("a", "b|c=d")],
    ];
    for pairs in pairs {
        let mut entries: Vec<(&str, &str)> = vec![("id", &id)];
        entries.extend_from_slice(pairs);
        let answer = client
            .should_rate_limit(request(
                vec![descriptor(&entries, Some((1, Unit::Hour)))],
                1,
            ))
            .await
            .unwrap();
        assert_eq!(codes(&answer).0, Code::Ok, "{pairs:?} shares a counter");
    }
    // A domain holding a forged key prefix stays in its own namespace.
    let mut forged = request(vec![descriptor(&[("id", &id)], Some((1, Unit::Hour)))], 1);
    forged.domain = format!("mcp:2:id:{}:{id}", id.len());
    let answer = client.should_rate_limit(forged).await.unwrap();
    assert_eq!(codes(&answer).0, Code::Ok);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_methods_are_unimplemented() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |_| {}).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", service.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let error = grpc
        .unary(
            tonic::Request::new(request(vec![], 1)),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/envoy.service.ratelimit.v3.RateLimitService/Other",
            ),
            tonic_prost::ProstCodec::<RateLimitRequest, RateLimitResponse>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), Grpc::Unimplemented);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_prints_its_ports_serves_and_drains_on_sigterm() {
    let redis = Redis::start().unwrap();
    let dir = std::env::temp_dir().join(unique("rl-bin"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut process = RateLimitProcess::start_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_mcp-guard-ratelimit")),
        &redis.url(),
        &["--default-limit", "1/hour"],
        dir.join("ratelimit.log"),
    )
    .unwrap();
    let mut client = Client::connect(process.grpc_addr()).await.unwrap();
    let user = unique("bin");
    let mut verdicts = Vec::new();
    for _ in 0..2 {
        let answer = client
            .should_rate_limit(request(vec![descriptor(&[("user", &user)], None)], 1))
            .await
            .unwrap();
        verdicts.push(codes(&answer).0);
    }
    assert_eq!(verdicts, [Code::Ok, Code::OverLimit]);
    let url = process.http_url("/metrics");
    let metrics = tokio::task::spawn_blocking(move || mcp_guard_e2e::http::get_text(&url).unwrap())
        .await
        .unwrap();
    assert!(
        metrics.contains("mcp_ratelimit_service_requests_total{outcome=\"over_limit\"} 1"),
        "{metrics}"
    );
    let status = process.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        process.log_text()
    );
    let log = process.log_text();
    assert!(log.contains("shutting down"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_redis_answers_unavailable_at_the_timeout() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |c| {
        c.redis_timeout = Duration::from_millis(200);
    })
    .await;
    let mut client = service.client().await;
    let user = unique("slow");
    let call = || {
        request(
            vec![descriptor(&[("user", &user)], Some((100, Unit::Hour)))],
            1,
        )
    };
    assert_eq!(
        codes(&client.should_rate_limit(call()).await.unwrap()).0,
        Code::Ok
    );
    // Redis holds every write for 1.5 s: alive, but too slow.
    assert_eq!(
        redis
            .command(&["CLIENT", "PAUSE", "1500", "WRITE"])
            .unwrap(),
        "+OK"
    );
    let started = Instant::now();
    let error = client.should_rate_limit(call()).await.unwrap_err();
    let took = started.elapsed();
    assert_eq!(error.code(), Grpc::Unavailable);
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_millis(1_000),
        "{took:?}"
    );
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let answer = client.should_rate_limit(call()).await.unwrap();
    assert_eq!(codes(&answer).0, Code::Ok);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_calls_in_flight_finish_while_readyz_says_503() {
    let redis = Redis::start().unwrap();
    let service = Service::start(&redis.url(), |c| {
        c.redis_timeout = Duration::from_secs(3);
    })
    .await;
    let mut client = service.client().await;
    let user = unique("drain");
    let call = move || {
        request(
            vec![descriptor(&[("user", &user)], Some((100, Unit::Hour)))],
            1,
        )
    };
    assert_eq!(
        codes(&client.should_rate_limit(call()).await.unwrap()).0,
        Code::Ok
    );
    assert_eq!(
        redis
            .command(&["CLIENT", "PAUSE", "1000", "WRITE"])
            .unwrap(),
        "+OK"
    );
    let in_flight = tokio::spawn({
        let mut client = client.clone();
        let request = call();
        async move { client.should_rate_limit(request).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = service.http.clone();
    let stopping = tokio::spawn(service.stop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, body) = http_get(&http, "/readyz").await;
    assert_eq!((status, body.as_str()), (503, "shutting down\n"));
    let answer = in_flight.await.unwrap().unwrap();
    assert_eq!(
        codes(&answer).0,
        Code::Ok,
        "the call in flight was answered"
    );
    assert_eq!(answer.statuses[0].limit_remaining, 98);
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .unwrap()
        .unwrap();
}
