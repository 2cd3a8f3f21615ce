//! Where each decoded byte of a JSON string value came from in the raw
//! body, as runs rather than one position per byte.
//!
//! A plain run of string bytes decodes one to one, so a single run covers
//! it however long it is; an escape (`\n`, `\u00e9`, a surrogate pair)
//! decodes to bytes that all point at the escape's first raw byte. One
//! `u64` per decoded byte made a 4 KB answer carry a 32 KB side table
//! through the scan.

use std::collections::VecDeque;

/// One run of decoded bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    /// Absolute decoded position of its first byte.
    decoded: u64,
    /// Raw position of its first byte (of every byte when not `linear`).
    raw: u64,
    len: u64,
    /// Byte `k` of the run came from raw `raw + k` (a plain run); else
    /// every byte came from `raw` (an escape).
    linear: bool,
}

/// Decoded position → raw position, for the value being scanned.
#[derive(Debug, Clone, Default)]
pub(crate) struct RawMap {
    runs: VecDeque<Run>,
}

impl RawMap {
    /// Forgets everything (a new value starts).
    pub(crate) fn clear(&mut self) {
        self.runs.clear();
    }

    /// `len` decoded bytes at `decoded` copied from raw `raw..raw + len`.
    pub(crate) fn push_plain(&mut self, decoded: u64, raw: u64, len: u64) {
        if len == 0 {
            return;
        }
        if let Some(last) = self.runs.back_mut() {
            if last.linear && last.decoded + last.len == decoded && last.raw + last.len == raw {
                last.len += len;
                return;
            }
        }
        self.runs.push_back(Run {
            decoded,
            raw,
            len,
            linear: true,
        });
    }

    /// `len` decoded bytes at `decoded`, all from the escape at raw `raw`.
    pub(crate) fn push_escape(&mut self, decoded: u64, raw: u64, len: u64) {
        if len == 0 {
            return;
        }
        self.runs.push_back(Run {
            decoded,
            raw,
            len,
            linear: false,
        });
    }

    /// The raw position decoded byte `decoded` came from, if mapped.
    pub(crate) fn raw_of(&self, decoded: u64) -> Option<u64> {
        let i = self.runs.partition_point(|r| r.decoded + r.len <= decoded);
        let run = self.runs.get(i)?;
        if decoded < run.decoded {
            return None;
        }
        Some(if run.linear {
            run.raw + (decoded - run.decoded)
        } else {
            run.raw
        })
    }

    /// Drops runs that end at or before decoded position `upto`.
    pub(crate) fn drop_before(&mut self, upto: u64) {
        while self.runs.front().is_some_and(|r| r.decoded + r.len <= upto) {
            self.runs.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs answer exactly as a table with one entry per decoded byte.
    #[test]
    fn runs_answer_as_a_per_byte_table() {
        let mut map = RawMap::default();
        let mut table: Vec<u64> = Vec::new();
        let mut raw = 100u64;
        // plain 5, escape of 6 raw bytes decoding to 2, plain 3 (merges
        // with nothing), plain 4 right after (merges), escape to 1.
        for (plain, len, raw_len) in [
            (true, 5, 5),
            (false, 2, 6),
            (true, 3, 3),
            (true, 4, 4),
            (false, 1, 2),
        ] {
            let decoded = table.len() as u64;
            if plain {
                map.push_plain(decoded, raw, len);
                table.extend(raw..raw + len);
            } else {
                map.push_escape(decoded, raw, len);
                table.extend(std::iter::repeat_n(raw, len as usize));
            }
            raw += raw_len;
        }
        for (d, want) in table.iter().enumerate() {
            assert_eq!(map.raw_of(d as u64), Some(*want), "decoded {d}");
        }
        assert_eq!(map.raw_of(table.len() as u64), None);
        map.drop_before(6);
        assert_eq!(map.raw_of(3), None);
        for (d, want) in table.iter().enumerate().skip(7) {
            assert_eq!(map.raw_of(d as u64), Some(*want), "decoded {d} after drop");
        }
    }
}
