//! `mcp-guard-ratelimit`: the global rate limit service. Prints
//! `listening on ADDR` (gRPC) and then `http on ADDR` (probes, metrics) on
//! stdout once both ports are bound, logs JSON lines on stderr, and
//! drains on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcp_guard_ratelimit::{Bounds, Config, Limit};
use tokio::net::TcpListener;

/// Envoy's rate limit service protocol over Redis, for mcp-guard's global
/// rate limits.
#[derive(Debug, Parser)]
#[command(name = "mcp-guard-ratelimit", version = env!("MCP_GUARD_VERSION"))]
struct Args {
    /// gRPC listen address (port 0: any free port, printed on stdout).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// HTTP address for /healthz, /readyz and /metrics; "off" for none.
    #[arg(long, default_value = "127.0.0.1:8082")]
    http_listen: String,
    /// Redis URL: redis://[user:password@]host:port[/db] (plaintext TCP).
    #[arg(
        long,
        env = "MCP_GUARD_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// Bound on each Redis call, connecting included (milliseconds);
    /// past it the call answers UNAVAILABLE.
    #[arg(long, default_value_t = 250)]
    redis_timeout_ms: u64,
    /// Limit of descriptors sent without an override, e.g. 100/minute;
    /// without it such descriptors are answered OK and not counted.
    #[arg(long)]
    default_limit: Option<Limit>,
    /// Descriptors per request at most.
    #[arg(long, default_value_t = Bounds::default().max_descriptors)]
    max_descriptors: usize,
    /// Entries per descriptor at most.
    #[arg(long, default_value_t = Bounds::default().max_entries)]
    max_entries: usize,
    /// Bytes of one counter key (domain and entries) at most.
    #[arg(long, default_value_t = Bounds::default().max_key_bytes)]
    max_key_bytes: usize,
    /// Bytes of one request message at most.
    #[arg(long, default_value_t = 64 * 1024)]
    max_request_bytes: usize,
    /// Bound on one call (milliseconds).
    #[arg(long, default_value_t = 2_000)]
    request_timeout_ms: u64,
    /// Open gRPC connections at most.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Concurrent calls per connection at most.
    #[arg(long, default_value_t = 256)]
    max_streams_per_connection: u32,
    /// Calls in flight at most, over all connections; more are refused at
    /// once (RESOURCE_EXHAUSTED). Bounds memory with --max-request-bytes.
    #[arg(long, default_value_t = 1024)]
    max_in_flight: usize,
    /// Close a connection on which nothing arrives this long (seconds).
    #[arg(long, default_value_t = 60)]
    idle_timeout_secs: u64,
    /// How long calls in flight may finish after SIGTERM (seconds).
    #[arg(long, default_value_t = 10)]
    drain_timeout_secs: u64,
    /// Log level filter (tracing syntax, e.g. info or debug).
    #[arg(long, env = "MCP_GUARD_LOG", default_value = "info")]
    log: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    if args.max_connections == 0 || args.max_descriptors == 0 || args.max_entries == 0 {
        return Err("--max-connections, --max-descriptors and --max-entries must be > 0".into());
    }
    let config = Config {
        redis_url: args.redis_url,
        redis_timeout: Duration::from_millis(args.redis_timeout_ms.max(1)),
        bounds: Bounds {
            max_descriptors: args.max_descriptors,
            max_entries: args.max_entries,
            max_key_bytes: args.max_key_bytes,
        },
        default_limit: args.default_limit,
        max_request_bytes: args.max_request_bytes,
        request_timeout: Duration::from_millis(args.request_timeout_ms.max(1)),
        max_connections: args.max_connections,
        max_streams_per_connection: args.max_streams_per_connection.max(1),
        max_in_flight: args.max_in_flight.max(1),
        idle_timeout: Duration::from_secs(args.idle_timeout_secs.max(3)),
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
    };
    // A malformed URL (or a scheme this build cannot speak) fails before
    // any port is bound or announced.
    mcp_guard_ratelimit::store::Store::new(&config.redis_url, config.redis_timeout)
        .map_err(|e| format!("--redis-url: {e}"))?;
    // Registered before the address is printed, so a signal sent as soon
    // as the line appears is handled.
    let shutdown =
        mcp_guard_serve::signals::shutdown().map_err(|e| format!("signal handlers: {e}"))?;
    let grpc = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", args.listen))?;
    let grpc_addr = grpc.local_addr().map_err(|e| e.to_string())?;
    let http = if args.http_listen == "off" {
        None
    } else {
        let listener = TcpListener::bind(&args.http_listen)
            .await
            .map_err(|e| format!("--http-listen {}: {e}", args.http_listen))?;
        Some(listener)
    };
    println!("listening on {grpc_addr}");
    if let Some(listener) = &http {
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        println!("http on {addr}");
    }
    tracing::info!(
        grpc = %grpc_addr,
        default_limit = ?config.default_limit,
        redis_timeout_ms = config.redis_timeout.as_millis() as u64,
        "rate limit service started"
    );
    mcp_guard_ratelimit::serve(config, grpc, http, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}
