//! The demo upstream running in this process; the raw-socket HTTP client
//! is the shared one ([`mcp_guard_test_support::http`]).

#![allow(dead_code, unused_imports)] // each test file uses a different part

use std::net::SocketAddr;

pub use mcp_guard_test_support::http::{exchange, post_json, request, Reply};
use mcp_guard_test_support::Running;

/// A running demo upstream and the means to stop it.
pub struct Server {
    pub addr: SocketAddr,
    running: Running,
}

impl Server {
    /// Starts the demo upstream on a free loopback port.
    pub async fn start() -> Server {
        let running = Running::spawn(mcp_guard_demo_upstream::serve).await;
        Server {
            addr: running.addr,
            running,
        }
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(self) -> std::io::Result<()> {
        self.running.stop().await
    }
}
