//! A small deterministic random source (SplitMix64): the same seed always
//! yields the same corpus, on every platform, with no dependency.

/// Seeded pseudo-random generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x6a09_e667_f3bc_c909)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// One of a non-empty list of strings.
    pub fn word(&mut self, items: &[&'static str]) -> &'static str {
        let i = self.below(items.len() as u64) as usize;
        items.get(i).copied().unwrap_or_default()
    }

    /// `n` decimal digits (leading zeros allowed).
    pub fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    /// `n` characters drawn from `alphabet`.
    pub fn from_alphabet(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(*self.pick(alphabet))).collect()
    }

    /// `n` ASCII letters and digits.
    pub fn alnum(&mut self, n: usize) -> String {
        self.from_alphabet(ALNUM, n)
    }

    /// `n` standard base64 characters (no padding).
    pub fn b64(&mut self, n: usize) -> String {
        self.from_alphabet(B64, n)
    }

    /// `n` base64url characters.
    pub fn b64url(&mut self, n: usize) -> String {
        self.from_alphabet(B64URL, n)
    }

    /// `n` lowercase hex digits.
    pub fn hex(&mut self, n: usize) -> String {
        self.from_alphabet(b"0123456789abcdef", n)
    }
}
