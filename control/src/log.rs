//! Structured logs: one JSON object per line on stderr, with `ts`, `level`,
//! `msg` and the event's fields, so log pipelines parse them without
//! patterns. Callers never pass bearer tokens; only token ids are logged.

use std::io::Write as _;

use serde_json::{Map, Value};

use crate::timefmt;

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Normal operation worth a line (startup, stored versions).
    Info,
    /// Something was skipped or degraded (a corrupt file, a failed refresh).
    Warn,
    /// The service cannot do what it was asked.
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// The line logged for an event: `fields` (an object; anything else is
/// logged under `fields`) merged after `ts`, `level` and `msg`.
pub fn line(level: Level, msg: &str, fields: Value) -> String {
    let mut object = Map::new();
    object.insert(
        "ts".into(),
        Value::String(timefmt::rfc3339_millis(timefmt::now_millis())),
    );
    object.insert("level".into(), Value::String(level.as_str().into()));
    object.insert("msg".into(), Value::String(msg.into()));
    match fields {
        Value::Object(fields) => {
            for (key, value) in fields {
                object.entry(key).or_insert(value);
            }
        }
        Value::Null => {}
        other => {
            object.insert("fields".into(), other);
        }
    }
    Value::Object(object).to_string()
}

/// Whether events are written (on unless a host process embedding the
/// service turns them off, e.g. a test bed that would otherwise flood its
/// own output).
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Turns logging on or off for the whole process.
pub fn set_enabled(enabled: bool) {
    ENABLED.store(enabled, std::sync::atomic::Ordering::Relaxed);
}

/// Writes one event to stderr.
pub fn log(level: Level, msg: &str, fields: Value) {
    if !ENABLED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut text = line(level, msg, fields);
    text.push('\n');
    // Nowhere to report a failed write to stderr.
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// [`log`] at [`Level::Info`].
pub fn info(msg: &str, fields: Value) {
    log(Level::Info, msg, fields);
}

/// [`log`] at [`Level::Warn`].
pub fn warn(msg: &str, fields: Value) {
    log(Level::Warn, msg, fields);
}

/// [`log`] at [`Level::Error`].
pub fn error(msg: &str, fields: Value) {
    log(Level::Error, msg, fields);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_json_object_with_fixed_keys_first() {
        let text = line(Level::Warn, "skipped", json!({"file": "x", "msg": "nope"}));
        assert!(!text.contains('\n'));
        let v: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "skipped", "fields cannot override msg");
        assert_eq!(v["file"], "x");
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
