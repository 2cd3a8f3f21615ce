//! The invariants the fuzz targets check, one module per target.
//!
//! Shared by the cargo-fuzz targets (`fuzz/fuzz_targets/*.rs`) and by the
//! regular test that replays the checked-in corpus and regressions
//! (`flow/tests/fuzz_corpus.rs`), both through `#[path]`: every function
//! here takes the raw fuzz input and panics when an invariant breaks.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

pub mod bundle;
pub mod exchange;
pub mod jsonrpc;
pub mod jwt;
pub mod normalise;
pub mod request_line;
pub mod scrub_stream;

/// A target's invariant check over one raw input.
pub type Check = fn(&[u8]);

/// The fuzz targets, by directory name under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Check)] = &[
    ("jwt", jwt::check),
    ("bundle", bundle::check),
    ("jsonrpc", jsonrpc::check),
    ("scrub_stream", scrub_stream::check),
    ("exchange", exchange::check),
    ("request_line", request_line::check),
];

/// Reads structure out of raw fuzz bytes; past the end every read gives
/// zeros / empty slices, so any input is a valid program.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length-prefixed (one byte) slice.
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.take(n)
    }

    /// Bytes up to the next `sep` (dropped) or the end.
    pub fn until(&mut self, sep: u8) -> &'a [u8] {
        match self.data.iter().position(|&b| b == sep) {
            Some(at) => {
                let head = &self.data[..at];
                self.data = &self.data[at + 1..];
                head
            }
            None => self.rest(),
        }
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// One of `options` (the first past the end of the input).
    pub fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[usize::from(self.u8()) % options.len()]
    }
}

/// Text from fuzz bytes (hosts hand the flow `&str`).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
