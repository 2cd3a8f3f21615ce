//! The overflow lane: connections past the cap get one request each,
//! with short timeouts, a bounded number at a time and a bounded share
//! per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::{Handler, Lane, Overflow};

/// Serves connections past the cap, [`Overflow::in_flight`] at once and
/// [`Overflow::per_peer`] of them per client address.
pub(crate) struct OverflowLane {
    permits: Arc<Semaphore>,
    peers: Arc<Mutex<HashMap<PeerKey, usize>>>,
    per_peer: usize,
    builder: http1::Builder,
    deadline: Duration,
}

/// Whose share a connection counts against: the IPv4 address, or the /64
/// of an IPv6 address (one host commonly holds a whole /64, so counting
/// single v6 addresses would give it billions of shares).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PeerKey {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
    /// The address could not be read (the socket is already gone).
    Unknown,
}

impl PeerKey {
    fn of(stream: &TcpStream) -> Self {
        match stream.peer_addr().map(|a| a.ip().to_canonical()) {
            Ok(IpAddr::V4(v4)) => Self::V4(v4.octets()),
            Ok(IpAddr::V6(v6)) => {
                let [a, b, c, d, e, f, g, h, ..] = v6.octets();
                Self::V6Prefix([a, b, c, d, e, f, g, h])
            }
            Err(_) => Self::Unknown,
        }
    }
}

/// One connection's place in its peer's share; given back on drop.
struct Share {
    peers: Arc<Mutex<HashMap<PeerKey, usize>>>,
    key: PeerKey,
}

impl Share {
    /// A place for `key`, unless it already holds `limit`.
    fn take(
        peers: &Arc<Mutex<HashMap<PeerKey, usize>>>,
        key: PeerKey,
        limit: usize,
    ) -> Option<Self> {
        let mut held = peers.lock().unwrap_or_else(PoisonError::into_inner);
        let count = held.entry(key).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Self {
            peers: Arc::clone(peers),
            key,
        })
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        // Entries live only while a connection does: the map never holds
        // more than `in_flight` keys.
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl OverflowLane {
    pub(crate) fn new(options: &Overflow) -> Self {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_read_timeout)
            .keep_alive(false);
        Self {
            permits: Arc::new(Semaphore::new(options.in_flight)),
            peers: Arc::new(Mutex::new(HashMap::new())),
            per_peer: options.per_peer.max(1),
            builder,
            deadline: options.deadline,
        }
    }

    /// Serves one request of `stream` with [`Lane::Overflow`], then closes
    /// it; `false` (the stream closed unanswered) when the lane is full or
    /// the client's address already holds its share of it.
    ///
    /// These connections are not drained at shutdown: each lasts
    /// [`Overflow::deadline`] at most anyway.
    pub(crate) fn serve(&self, stream: TcpStream, handler: &Arc<impl Handler>) -> bool {
        // The share first: a client over its share must not take (even
        // for a moment) a place another client could have.
        let Some(share) = Share::take(&self.peers, PeerKey::of(&stream), self.per_peer) else {
            return false;
        };
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return false;
        };
        let handler = Arc::clone(handler);
        let service = service_fn(move |request| handler.call(request, Lane::Overflow));
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        let deadline = self.deadline;
        tokio::spawn(async move {
            let _ = tokio::time::timeout(deadline, connection).await;
            drop((permit, share));
        });
        true
    }
}
