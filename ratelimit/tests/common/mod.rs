//! Shared by the crate's integration tests: the service in this process
//! on free loopback ports, and request builders.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use mcp_guard_ratelimit::client::Client;
use mcp_guard_ratelimit::proto::{
    Code, Entry, RateLimitDescriptor, RateLimitOverride, RateLimitRequest, RateLimitResponse, Unit,
};
use mcp_guard_ratelimit::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The service in this process.
pub struct Service {
    pub grpc: String,
    pub http: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), mcp_guard_ratelimit::ServeError>>>,
}

impl Service {
    pub async fn start(redis_url: &str, tune: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config {
            redis_url: redis_url.into(),
            ..Config::default()
        };
        tune(&mut config);
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(mcp_guard_ratelimit::serve(
            config,
            grpc,
            Some(http),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            grpc: grpc_addr.to_string(),
            http: http_addr.to_string(),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.grpc).await.unwrap()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.http, path).await
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("service stops")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// GET `http://ADDR/path`: status and body.
pub async fn http_get(addr: &str, path: &str) -> (u16, String) {
    let url = format!("http://{addr}{path}");
    tokio::task::spawn_blocking(move || {
        let reply = mcp_guard_e2e::http::send("GET", &url, None, &[], None).unwrap();
        (reply.status, reply.body)
    })
    .await
    .unwrap()
}

/// A value no other test (or earlier run against the same Redis) uses.
pub fn unique(label: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{nanos}-{n}")
}

pub fn descriptor(pairs: &[(&str, &str)], limit: Option<(u32, Unit)>) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: pairs
            .iter()
            .map(|(k, v)| Entry {
                key: (*k).into(),
                value: (*v).into(),
            })
            .collect(),
        limit: limit.map(|(requests_per_unit, unit)| RateLimitOverride {
            requests_per_unit,
            unit: unit as i32,
        }),
    }
}

pub fn request(descriptors: Vec<RateLimitDescriptor>, hits: u32) -> RateLimitRequest {
    RateLimitRequest {
        domain: "mcp".into(),
        descriptors,
        hits_addend: hits,
    }
}

pub fn codes(response: &RateLimitResponse) -> (Code, Vec<Code>) {
    (
        Code::try_from(response.overall_code).unwrap(),
        response
            .statuses
            .iter()
            .map(|s| Code::try_from(s.code).unwrap())
            .collect(),
    )
}
