//! A generated, labelled corpus for the mcp-guard PII scanner, and the
//! evaluation that measures the scanner's recall and precision on it.
//!
//! - [`corpus::generate`] writes `N` documents from a seed, without
//!   network or downloaded data: chat answers, JSON API payloads, logs,
//!   code and configuration, and hard negatives. Each sensitive value is
//!   labelled with its type and byte span ([`doc::Label`]).
//! - [`eval::evaluate`] runs [`Scanner::find`](mcp_guard_engine::pii::Scanner::find)
//!   over the corpus and counts, per type, true positives, false
//!   positives and false negatives (see [`eval`] for the matching rule).
//! - [`report`] prints the table; [`cli`] is the command line.

pub mod cli;
pub mod corpus;
pub mod doc;
pub mod eval;
mod genres;
pub mod negatives;
pub mod report;
pub mod rng;
pub mod values;

pub use doc::{Document, Genre, Label};
pub use eval::{evaluate, Evaluation, TypeStats, TARGET_PRECISION, TARGET_RECALL};
