//! The counters, in Redis.
//!
//! One request is one Lua script call: for every counter it adds the hits
//! and, when the counter is new, sets it to expire just after its window
//! ends. Scripts run atomically, so concurrent callers (every replica of
//! the service, every Envoy) see one total order of increments and a
//! limit of N admits exactly N hits per window.
//!
//! Every call is bounded by one timeout (connecting included); a failure
//! drops the connection so the next call connects afresh. The service
//! turns any failure into gRPC `UNAVAILABLE`: the caller (the filter)
//! decides whether that fails open or closed.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::MultiplexedConnection;

use crate::window::Window;

/// Counters stop growing here (2^50, exact in Lua's doubles and far
/// above any `u32` limit): an attacker sending `hits_addend = u32::MAX`
/// in a loop cannot overflow Redis's 64-bit INCRBY (which would turn
/// every later call on the key into an error).
pub const COUNTER_CAP: u64 = 1 << 50;

/// Seconds a counter outlives its window: replicas whose clocks differ
/// by less than this still find the same counter until the window ends.
pub const EXPIRY_SLACK_SECS: i64 = 5;

/// KEYS: the counters. ARGV[1]: hits; ARGV[2]: the cap; ARGV[2 + i]: the
/// Unix second at which counter i expires. Returns the counters' values
/// after the addition.
const SCRIPT: &str = r"
local hits = tonumber(ARGV[1])
local cap = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  local current = tonumber(redis.call('GET', key)) or 0
  local add = math.min(hits, cap - current)
  if add > 0 then
    current = redis.call('INCRBY', key, add)
  end
  if redis.call('TTL', key) == -1 then
    redis.call('EXPIREAT', key, ARGV[2 + i])
  end
  out[i] = current
end
return out
";

/// Why the store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No answer within the timeout.
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Connecting or the command failed.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The script answered something else than one count per key.
    #[error("redis answered {got} counts for {want} keys")]
    BadReply {
        /// Counts received.
        got: usize,
        /// Keys sent.
        want: usize,
    },
}

/// The Redis-backed counters.
pub struct Store {
    client: redis::Client,
    timeout: Duration,
    script: redis::Script,
    connection: Mutex<Option<MultiplexedConnection>>,
    connecting: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store for `url` (`redis://[user:password@]host:port[/db]`);
    /// nothing is connected until the first call, so the service starts
    /// (and answers `UNAVAILABLE`) while Redis is down.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            timeout,
            script: redis::Script::new(SCRIPT),
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
        })
    }

    /// Adds `hits` to every counter (key, window) and returns their new
    /// values, in order.
    pub async fn add<'a>(
        &self,
        counters: impl IntoIterator<Item = (&'a [u8], &'a Window)>,
        hits: u32,
    ) -> Result<Vec<u64>, StoreError> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(hits).arg(COUNTER_CAP);
        let mut want = 0;
        for (key, window) in counters {
            invocation
                .key(key)
                .arg(window.end.saturating_add(EXPIRY_SLACK_SECS));
            want += 1;
        }
        if want == 0 {
            return Ok(Vec::new());
        }
        let counts: Vec<u64> = self
            .bounded(async |mut connection| invocation.invoke_async(&mut connection).await)
            .await?;
        if counts.len() != want {
            return Err(StoreError::BadReply {
                got: counts.len(),
                want,
            });
        }
        Ok(counts)
    }

    /// Whether Redis answers a PING within the timeout.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let _: String = self
            .bounded(async |mut connection| redis::cmd("PING").query_async(&mut connection).await)
            .await?;
        Ok(())
    }

    /// Runs `call` on the connection (made when there is none), all
    /// within the timeout; drops the connection on any failure.
    async fn bounded<T>(
        &self,
        call: impl AsyncFnOnce(MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let result = tokio::time::timeout(self.timeout, async {
            let connection = self.connection().await?;
            call(connection).await
        })
        .await;
        let error = match result {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => StoreError::Redis(e),
            Err(_) => StoreError::Timeout(self.timeout),
        };
        self.forget();
        Err(error)
    }

    /// The shared connection, connecting when there is none (one caller
    /// connects, the others wait for it).
    async fn connection(&self) -> redis::RedisResult<MultiplexedConnection> {
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.current() {
            return Ok(connection);
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        if let Ok(mut slot) = self.connection.lock() {
            *slot = Some(connection.clone());
        }
        Ok(connection)
    }

    fn current(&self) -> Option<MultiplexedConnection> {
        self.connection.lock().ok().and_then(|slot| slot.clone())
    }

    fn forget(&self) {
        if let Ok(mut slot) = self.connection.lock() {
            *slot = None;
        }
    }
}
