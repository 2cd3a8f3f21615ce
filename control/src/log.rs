//! Structured logs go through `tracing`; the binary installs
//! `tracing-subscriber`'s JSON formatter (one object per line on stderr:
//! `timestamp`, `level`, `message`, the event's fields, `target`). A
//! library user (a test bed embedding the service) installs its own
//! subscriber or none. Callers never log bearer tokens, only token ids.
//!
//! What remains here is a bridge for call sites that still pass their
//! fields as one JSON object (the accept loop, moving to a shared crate).

use serde_json::Value;

/// Kept for embedders that switched the old hand-made logger off: events
/// now go to whichever `tracing` subscriber the process installed, so this
/// does nothing.
pub fn set_enabled(_enabled: bool) {}

/// A warning with its fields as JSON text (`fields`), for callers not yet
/// written against `tracing` directly.
pub fn warn(msg: &str, fields: Value) {
    if fields.is_null() {
        tracing::warn!("{msg}");
    } else {
        tracing::warn!(fields = %fields, "{msg}");
    }
}

/// An error, as [`warn`].
pub fn error(msg: &str, fields: Value) {
    if fields.is_null() {
        tracing::error!("{msg}");
    } else {
        tracing::error!(fields = %fields, "{msg}");
    }
}
