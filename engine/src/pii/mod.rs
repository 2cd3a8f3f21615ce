//! PII scanner: finds personal data and secrets in response bodies and
//! replaces them, in linear time, without regular expressions.
//!
//! - [`PiiConfig`] (serde) says what to look for and what to do with it;
//!   [`Scanner::new`] compiles it once.
//! - [`Scanner::scrub_text`] / [`Scanner::scrub_json`] scrub a whole body;
//!   [`StreamScrubber`] does the same chunk by chunk with a bounded
//!   hold-back, and also understands SSE streams of chat completions.
//! - [`PiiReport`] counts what was replaced (never the values) and says
//!   whether a type configured to `block` was seen.
//!
//! Detectors are hand-written byte scanners (see [`detectors`]); the
//! engine only wakes them at trigger bytes (digits, `:`, `@`, found eight
//! bytes at a time) and at keyword prefixes (found sixteen positions at a
//! time by a purpose-built finder, see `keywords`), so clean text is
//! skipped quickly; custom terms use `aho-corasick`. Hand-written on
//! purpose, not a regex crate: the scanner is the product's hot path in
//! every worker's wasm VM, it must resume a match across body chunks and
//! SSE events without re-reading the stream, validate what it finds
//! (Luhn, IBAN mod-97, phone and IP ranges) and stay small in the module.

mod action;
mod config;
mod core;
pub mod detectors;
mod hash;
mod json;
mod keywords;
mod label;
mod open;
mod raw_map;
mod report;
mod scanner;
mod sse;
mod stream;
mod vector;
mod window;

pub use config::{Action, PiiConfig, PiiConfigError, PiiType, MAX_TERM_LEN, MIN_HASH_KEY_LEN};
pub use report::PiiReport;
pub use scanner::{Finding, Scanner};
pub use sse::{SseError, SseLimits};
pub use stream::{ContentMode, StreamScrubber};
