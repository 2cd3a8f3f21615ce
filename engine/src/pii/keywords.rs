//! Search for the built-in keywords that wake the token detectors
//! (`AKIA`, `ghp_`, `Bearer`, `-----BEGIN `...).
//!
//! Clean text has to be skipped fast everywhere the filter runs, and a
//! general automaton walks byte by byte inside wasm (no SIMD prefilter
//! there), which made it the slowest part of scrubbing clean prose. This
//! finder is built for a small, fixed keyword set instead: every keyword
//! belongs to one of eight buckets, and for each of the first three bytes
//! two 16-entry tables (low and high nibble) give the buckets that byte
//! can start. Sixteen positions are tested at once with byte shuffles
//! (wasm `simd128`, x86-64 SSSE3; a scalar loop elsewhere), and only the
//! rare positions whose three bytes agree on a bucket are compared
//! exactly with that bucket's keywords.
//!
//! No keyword is a prefix of another, so at most one matches at a
//! position and the leftmost match is the only answer.

// Lookup tables indexed by a byte (`[_; 256]`) or a nibble (`[_; 16]`) and by a position below the table count: in range by construction, and this is the scanner's hot loop.
#![allow(clippy::indexing_slicing)]

use super::scanner::Kw;
use super::vector;

/// Bytes of each keyword the nibble tables look at.
const PREFIX: usize = 3;
/// Positions tested per vector step.
const LANES: usize = 16;

/// One enabled keyword.
#[derive(Debug, Clone, Copy)]
struct Keyword {
    bytes: &'static [u8],
    kind: Kw,
}

/// Nibble tables: `lo[k][b & 15] & hi[k][b >> 4]` has bit `j` set when
/// byte `b` may be byte `k` of a keyword in bucket `j`; `byte[k][b]` is
/// the same value precomputed for the scalar path.
#[derive(Debug, Clone, Copy)]
struct Tables {
    lo: [[u8; LANES]; PREFIX],
    hi: [[u8; LANES]; PREFIX],
    byte: [[u8; 256]; PREFIX],
}

impl Default for Tables {
    fn default() -> Self {
        Self {
            lo: [[0; LANES]; PREFIX],
            hi: [[0; LANES]; PREFIX],
            byte: [[0; 256]; PREFIX],
        }
    }
}

impl Tables {
    /// Fills `byte` from the nibble tables.
    fn finish(&mut self) {
        for k in 0..PREFIX {
            for b in 0..=255u8 {
                self.byte[k][usize::from(b)] =
                    self.lo[k][usize::from(b & 15)] & self.hi[k][usize::from(b >> 4)];
            }
        }
    }

    /// Buckets whose first three bytes may start at `i` (bytes past the
    /// end read as 0, which only adds candidates the exact check drops).
    #[inline]
    fn buckets_at(&self, hay: &[u8], i: usize) -> u8 {
        let at = |k: usize| usize::from(hay.get(i + k).copied().unwrap_or(0));
        let first = self.byte[0][at(0)];
        if first == 0 {
            return 0;
        }
        first & self.byte[1][at(1)] & self.byte[2][at(2)]
    }
}

/// The compiled keyword set: build once per scanner, share read-only.
#[derive(Debug, Clone)]
pub(crate) struct Keywords {
    words: Vec<Keyword>,
    /// Indices into `words`, per bucket.
    buckets: [Vec<u8>; 8],
    tables: Tables,
    longest: usize,
}

/// A keyword found: absolute byte range in the searched text, and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub kind: Kw,
}

impl Keywords {
    /// Compiles `(keyword, kind, bucket)` triples; `None` if empty.
    /// Keywords shorter than three bytes or buckets past 7 are skipped
    /// (the built-in table has none; a unit test keeps it that way).
    pub(crate) fn new(list: &[(&'static str, Kw, u8)]) -> Option<Self> {
        let mut words = Vec::new();
        let mut buckets: [Vec<u8>; 8] = Default::default();
        let mut tables = Tables::default();
        for &(word, kind, bucket) in list {
            let bytes = word.as_bytes();
            let (Some(slot), Some(prefix)) =
                (buckets.get_mut(usize::from(bucket)), bytes.get(..PREFIX))
            else {
                continue;
            };
            let Ok(index) = u8::try_from(words.len()) else {
                break;
            };
            slot.push(index);
            words.push(Keyword { bytes, kind });
            for (k, &b) in prefix.iter().enumerate() {
                tables.lo[k][usize::from(b & 15)] |= 1 << bucket;
                tables.hi[k][usize::from(b >> 4)] |= 1 << bucket;
            }
        }
        if words.is_empty() {
            return None;
        }
        tables.finish();
        let longest = words.iter().map(|w| w.bytes.len()).max().unwrap_or(PREFIX);
        Some(Self {
            words,
            buckets,
            tables,
            longest,
        })
    }

    /// Length of the longest keyword.
    pub(crate) fn longest(&self) -> usize {
        self.longest
    }

    /// The leftmost keyword in `hay` starting in `from..to` (it may end
    /// past `to`, never past the end of `hay`).
    pub(crate) fn find(&self, hay: &[u8], from: usize, to: usize) -> Option<Hit> {
        let to = to.min(hay.len());
        if from >= to {
            return None;
        }
        // Too short for one vector step (chat deltas often are): skip
        // loading the tables.
        if hay.len() - from < WINDOW || !vector::available() {
            return self.find_scalar(hay, from, to);
        }
        #[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
        {
            // SAFETY: checked just above.
            unsafe { self.find_vector(hay, from, to) }
        }
        #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
        {
            self.find_scalar(hay, from, to)
        }
    }

    /// Sixteen positions per step: the three prefix bytes of each
    /// position looked up in the nibble tables at once, then the lanes
    /// with a bucket left confirmed in order.
    ///
    /// # Safety
    /// [`vector::available`] must hold.
    #[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
    #[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
    #[cfg_attr(target_arch = "x86_64", target_feature(enable = "ssse3"))]
    unsafe fn find_vector(&self, hay: &[u8], from: usize, to: usize) -> Option<Hit> {
        use vector::{and, load, lookup, nonzero_lanes};
        // Written out per prefix byte: the filter is built for size, and
        // a loop over the tables would keep them in memory, not registers.
        let Tables { lo, hi, .. } = &self.tables;
        let (lo0, lo1, lo2) = (
            load::<0, LANES>(&lo[0]),
            load::<0, LANES>(&lo[1]),
            load::<0, LANES>(&lo[2]),
        );
        let (hi0, hi1, hi2) = (
            load::<0, LANES>(&hi[0]),
            load::<0, LANES>(&hi[1]),
            load::<0, LANES>(&hi[2]),
        );
        let mut i = from;
        while i < to {
            let Some(w) = hay
                .get(i..i + WINDOW)
                .and_then(|s| <&[u8; WINDOW]>::try_from(s).ok())
            else {
                break;
            };
            let acc = and(
                lookup(load::<0, WINDOW>(w), lo0, hi0),
                and(
                    lookup(load::<1, WINDOW>(w), lo1, hi1),
                    lookup(load::<2, WINDOW>(w), lo2, hi2),
                ),
            );
            let mask = nonzero_lanes(acc);
            if mask != 0 {
                if let Some(hit) = self.confirm_lanes(hay, i, to, mask) {
                    return Some(hit);
                }
            }
            i += LANES;
        }
        self.find_scalar(hay, i, to)
    }

    /// The same search one position at a time: the fallback, and the
    /// reference the vector versions are tested against.
    pub(crate) fn find_scalar(&self, hay: &[u8], from: usize, to: usize) -> Option<Hit> {
        (from..to.min(hay.len())).find_map(|i| self.confirm(hay, i, self.tables.buckets_at(hay, i)))
    }

    /// The keyword of one of `buckets` that starts exactly at `i`.
    #[inline]
    fn confirm(&self, hay: &[u8], i: usize, mut buckets: u8) -> Option<Hit> {
        let rest = hay.get(i..)?;
        while buckets != 0 {
            let bucket = buckets.trailing_zeros() as usize;
            buckets &= buckets - 1;
            for &w in self.buckets.get(bucket).map(Vec::as_slice).unwrap_or(&[]) {
                if let Some(word) = self.words.get(usize::from(w)) {
                    if rest.starts_with(word.bytes) {
                        return Some(Hit {
                            start: i,
                            end: i + word.bytes.len(),
                            kind: word.kind,
                        });
                    }
                }
            }
        }
        None
    }

    /// Confirms the candidates of one vector step (`mask` bit `j` is
    /// position `at + j`), in order, ignoring positions at or past `to`.
    #[inline]
    fn confirm_lanes(&self, hay: &[u8], at: usize, to: usize, mut mask: u32) -> Option<Hit> {
        while mask != 0 {
            let i = at + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if i >= to {
                return None;
            }
            let found = self.confirm(hay, i, self.tables.buckets_at(hay, i));
            if found.is_some() {
                return found;
            }
        }
        None
    }
}

/// Bytes one vector step reads: sixteen positions plus the two bytes
/// after the last one.
const WINDOW: usize = LANES + PREFIX - 1;

#[cfg(test)]
mod tests {
    use super::super::scanner::KEYWORDS;
    use super::*;

    fn all() -> Keywords {
        Keywords::new(KEYWORDS).expect("built-in keywords")
    }

    /// Every position, the naive way.
    fn naive(hay: &[u8], from: usize, to: usize) -> Option<Hit> {
        (from..to.min(hay.len())).find_map(|i| {
            KEYWORDS.iter().find_map(|&(w, kind, _)| {
                hay.get(i..)?.starts_with(w.as_bytes()).then_some(Hit {
                    start: i,
                    end: i + w.len(),
                    kind,
                })
            })
        })
    }

    #[test]
    fn table_is_well_formed() {
        for (i, &(a, _, bucket)) in KEYWORDS.iter().enumerate() {
            assert!(a.len() >= PREFIX, "{a} is shorter than the prefix");
            assert!(bucket < 8, "{a} has no valid bucket");
            for (j, &(b, _, _)) in KEYWORDS.iter().enumerate() {
                assert!(i == j || !b.starts_with(a), "{a} is a prefix of {b}");
            }
        }
        assert_eq!(all().words.len(), KEYWORDS.len());
    }

    #[test]
    fn finds_each_keyword_at_every_offset_and_edge() {
        let kw = all();
        for &(w, kind, _) in KEYWORDS {
            for pad in 0..40 {
                let mut hay = vec![b'.'; pad];
                hay.extend_from_slice(w.as_bytes());
                hay.extend(std::iter::repeat_n(b' ', pad % 7));
                let want = Some(Hit {
                    start: pad,
                    end: pad + w.len(),
                    kind,
                });
                assert_eq!(kw.find(&hay, 0, hay.len()), want, "{w} at {pad}");
                assert_eq!(kw.find_scalar(&hay, 0, hay.len()), want, "{w} at {pad}");
                // Starting after it, or stopping right at it, finds nothing.
                assert_eq!(kw.find(&hay, pad + 1, hay.len()), None);
                assert_eq!(kw.find(&hay, 0, pad), None);
                // Cut short: an incomplete keyword is not a match.
                let cut = &hay[..pad + w.len() - 1];
                assert_eq!(kw.find(cut, 0, cut.len()), None, "{w} cut at {pad}");
            }
        }
    }

    #[test]
    fn vector_scalar_and_naive_agree_on_random_text() {
        let kw = all();
        let alphabet: Vec<u8> = b"AKISGPDRONVzsSeEcCrRtThpoug_ibxk-lvyJBaA -\n.0123".to_vec();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let len = (next() % 90) as usize;
            let mut hay: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            // Plant a keyword now and then so hits are common.
            if round % 3 == 0 && len > 12 {
                let (w, _, _) = KEYWORDS[(next() % KEYWORDS.len() as u64) as usize];
                let at = (next() as usize) % (len - w.len().min(len));
                let end = (at + w.len()).min(len);
                hay[at..end].copy_from_slice(&w.as_bytes()[..end - at]);
            }
            let from = (next() % (len as u64 + 1)) as usize;
            let to = from + (next() % (len as u64 + 2)) as usize;
            let want = naive(&hay, from, to);
            assert_eq!(
                kw.find(&hay, from, to),
                want,
                "{:?}",
                String::from_utf8_lossy(&hay)
            );
            assert_eq!(kw.find_scalar(&hay, from, to), want);
        }
    }

    #[test]
    fn a_subset_finds_only_its_keywords() {
        let only_pem: Vec<_> = KEYWORDS
            .iter()
            .copied()
            .filter(|&(_, k, _)| k == Kw::Pem)
            .collect();
        let kw = Keywords::new(&only_pem).unwrap();
        let hay = b"AKIA1234 ghp_x Bearer -----BEGIN RSA";
        let hit = kw.find(hay, 0, hay.len()).unwrap();
        assert_eq!((hit.start, hit.kind), (22, Kw::Pem));
        assert!(Keywords::new(&[]).is_none());
    }
}
