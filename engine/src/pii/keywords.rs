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

use super::scanner::Kw;

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
    #[cfg(target_arch = "x86_64")]
    ssse3: bool,
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
            #[cfg(target_arch = "x86_64")]
            ssse3: std::is_x86_feature_detected!("ssse3"),
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
        if hay.len() - from < WINDOW {
            return self.find_scalar(hay, from, to);
        }
        #[cfg(target_arch = "wasm32")]
        {
            simd_wasm::find(self, hay, from, to)
        }
        #[cfg(target_arch = "x86_64")]
        {
            if self.ssse3 {
                // SAFETY: SSSE3 was detected on this CPU at construction.
                return unsafe { simd_x86::find(self, hay, from, to) };
            }
            self.find_scalar(hay, from, to)
        }
        #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
        {
            self.find_scalar(hay, from, to)
        }
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

/// Sixteen positions per step with wasm `simd128` (supported by V8 and
/// wasmtime, the runtimes Envoy and the host harness use). Written out
/// per prefix byte: the filter is built for size, and a loop over the
/// tables would keep them in linear memory instead of registers.
#[cfg(target_arch = "wasm32")]
mod simd_wasm {
    use super::{Hit, Keywords, Tables, LANES, WINDOW};
    use core::arch::wasm32::{
        u8x16_bitmask, u8x16_ne, u8x16_shr, u8x16_splat, u8x16_swizzle, v128, v128_and,
        v128_any_true, v128_load,
    };

    /// The sixteen bytes at offset `K` of a window.
    #[inline(always)]
    fn load<const K: usize>(w: &[u8; WINDOW]) -> v128 {
        const { assert!(K + LANES <= WINDOW) };
        // SAFETY: `K + 16 <= WINDOW` bytes are readable (checked at
        // compile time); `v128.load` takes any alignment.
        unsafe { v128_load(w.as_ptr().add(K).cast()) }
    }

    fn table(t: &[u8; LANES]) -> v128 {
        // SAFETY: `t` is 16 readable bytes.
        unsafe { v128_load(t.as_ptr().cast()) }
    }

    /// Bucket bits of one prefix byte for sixteen positions.
    #[inline(always)]
    fn lookup(v: v128, lo: v128, hi: v128) -> v128 {
        let l = u8x16_swizzle(lo, v128_and(v, u8x16_splat(15)));
        v128_and(l, u8x16_swizzle(hi, u8x16_shr(v, 4)))
    }

    #[target_feature(enable = "simd128")]
    pub(super) fn find(kw: &Keywords, hay: &[u8], from: usize, to: usize) -> Option<Hit> {
        let Tables { lo, hi, .. } = &kw.tables;
        let (lo0, lo1, lo2) = (table(&lo[0]), table(&lo[1]), table(&lo[2]));
        let (hi0, hi1, hi2) = (table(&hi[0]), table(&hi[1]), table(&hi[2]));
        let mut i = from;
        while i < to {
            let Some(w) = hay
                .get(i..i + WINDOW)
                .and_then(|s| <&[u8; WINDOW]>::try_from(s).ok())
            else {
                break;
            };
            let acc = v128_and(
                lookup(load::<0>(w), lo0, hi0),
                v128_and(
                    lookup(load::<1>(w), lo1, hi1),
                    lookup(load::<2>(w), lo2, hi2),
                ),
            );
            if v128_any_true(acc) {
                let mask = u32::from(u8x16_bitmask(u8x16_ne(acc, u8x16_splat(0))));
                if let Some(hit) = kw.confirm_lanes(hay, i, to, mask) {
                    return Some(hit);
                }
            }
            i += LANES;
        }
        kw.find_scalar(hay, i, to)
    }
}

/// Sixteen positions per step with SSSE3 `pshufb` (x86-64 hosts: the
/// CLI, tests and benchmarks); the same steps as the wasm version.
#[cfg(target_arch = "x86_64")]
mod simd_x86 {
    use super::{Hit, Keywords, Tables, LANES, WINDOW};
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        _mm_setzero_si128, _mm_shuffle_epi8, _mm_srli_epi16,
    };

    /// The sixteen bytes at offset `K` of a window.
    #[inline(always)]
    fn load<const K: usize>(w: &[u8; WINDOW]) -> __m128i {
        const { assert!(K + LANES <= WINDOW) };
        // SAFETY: `K + 16 <= WINDOW` bytes are readable (checked at
        // compile time); `loadu` takes any alignment. SSE2 is baseline.
        unsafe { _mm_loadu_si128(w.as_ptr().add(K).cast()) }
    }

    fn table(t: &[u8; LANES]) -> __m128i {
        // SAFETY: `t` is 16 readable bytes. SSE2 is baseline.
        unsafe { _mm_loadu_si128(t.as_ptr().cast()) }
    }

    /// Bucket bits of one prefix byte for sixteen positions. There is no
    /// 8-bit shift: shift 16-bit lanes, then drop the bits the
    /// neighbouring byte shifted in.
    #[inline]
    #[target_feature(enable = "ssse3")]
    fn lookup(v: __m128i, lo: __m128i, hi: __m128i) -> __m128i {
        let nibble = _mm_set1_epi8(15);
        let l = _mm_shuffle_epi8(lo, _mm_and_si128(v, nibble));
        let h = _mm_shuffle_epi8(hi, _mm_and_si128(_mm_srli_epi16(v, 4), nibble));
        _mm_and_si128(l, h)
    }

    /// # Safety
    /// The CPU must support SSSE3.
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn find(kw: &Keywords, hay: &[u8], from: usize, to: usize) -> Option<Hit> {
        let Tables { lo, hi, .. } = &kw.tables;
        let (lo0, lo1, lo2) = (table(&lo[0]), table(&lo[1]), table(&lo[2]));
        let (hi0, hi1, hi2) = (table(&hi[0]), table(&hi[1]), table(&hi[2]));
        let zero = _mm_setzero_si128();
        let mut i = from;
        while i < to {
            let Some(w) = hay
                .get(i..i + WINDOW)
                .and_then(|s| <&[u8; WINDOW]>::try_from(s).ok())
            else {
                break;
            };
            let acc = _mm_and_si128(
                lookup(load::<0>(w), lo0, hi0),
                _mm_and_si128(
                    lookup(load::<1>(w), lo1, hi1),
                    lookup(load::<2>(w), lo2, hi2),
                ),
            );
            let mask = !(_mm_movemask_epi8(_mm_cmpeq_epi8(acc, zero)) as u32) & 0xFFFF;
            if mask != 0 {
                if let Some(hit) = kw.confirm_lanes(hay, i, to, mask) {
                    return Some(hit);
                }
            }
            i += LANES;
        }
        kw.find_scalar(hay, i, to)
    }
}

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
