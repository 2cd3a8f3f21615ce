//! Structured logs go through `tracing`; [`init`] installs
//! `tracing-subscriber`'s JSON formatter (one object per line on stderr:
//! `timestamp`, `level`, `message`, the event's fields, `target`). The
//! binary calls it; an embedder (the demo's in-process service) may, and
//! tests that want quiet output do not. Callers never log bearer tokens,
//! only token ids.

/// Installs the JSON subscriber with `filter` (`info`, `warn`,
/// `mcp_guard_control=debug`, ...; an unreadable filter falls back to
/// `info`). Does nothing if the process already has a subscriber.
pub fn init(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // An error only means a subscriber is installed already: keep it.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
