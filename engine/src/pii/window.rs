//! The view a detector gets of the text, and the fast trigger-byte search.
//!
//! Every byte a detector reads goes through [`Win::at`]. Reads below the
//! window's floor or past its span limit see "nothing" (a boundary); reads
//! past the data received so far return [`NeedMore`] unless the stream has
//! ended. A detector's answer therefore depends only on bytes it could see,
//! which is what makes streaming output identical to buffered output for
//! any split of the input, and it bounds what the stream must hold back.

use super::config::PiiType;
use super::open::Tail;
use super::vector;

/// The detector needs bytes that have not arrived yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NeedMore;

/// A detector step: `Err(NeedMore)` while undecided.
pub(crate) type Step<T> = Result<T, NeedMore>;

/// A value a detector found, in buffer indices (`start..end`), plus an
/// optional second value found with it (an AWS secret next to a key id).
///
/// With `open` set the value was confirmed by its prefix: `start..end`
/// is that prefix, and the value goes on as far as the [`Tail`] rule
/// says (see `open`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub start: usize,
    pub end: usize,
    pub ty: PiiType,
    pub extra: Option<(usize, usize, PiiType)>,
    pub open: Option<Tail>,
}

impl Found {
    pub(crate) fn new(start: usize, end: usize, ty: PiiType) -> Self {
        Self {
            start,
            end,
            ty,
            extra: None,
            open: None,
        }
    }

    /// A value confirmed by its prefix `start..end`, continued by `tail`.
    pub(crate) fn open(start: usize, end: usize, ty: PiiType, tail: Tail) -> Self {
        Self {
            open: Some(tail),
            ..Self::new(start, end, ty)
        }
    }
}

/// Read access to the text around one trigger position.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Win<'a> {
    buf: &'a [u8],
    lo: usize,
    hi: usize,
    eof: bool,
    /// Text mode: the bytes may be raw JSON, so a backslash escape right
    /// before a value (`\n`, `\u0041`) counts as a boundary.
    pub escapes: bool,
    /// Position 0 of `buf` is the start of a value whose label came
    /// before it, out of view (JSON mode: the key named an SSN).
    pub lead_label: bool,
}

impl<'a> Win<'a> {
    pub(crate) fn new(buf: &'a [u8], lo: usize, eof: bool, escapes: bool) -> Self {
        Self {
            buf,
            lo,
            hi: usize::MAX,
            eof,
            escapes,
            lead_label: false,
        }
    }

    /// The same view, unable to see at or past `hi`.
    pub(crate) fn limit(self, hi: usize) -> Self {
        Self {
            hi: hi.min(self.hi),
            ..self
        }
    }

    /// The byte at `i`, `None` outside the window or at the end of input.
    #[inline]
    pub(crate) fn at(&self, i: usize) -> Step<Option<u8>> {
        if i < self.lo || i >= self.hi {
            return Ok(None);
        }
        match self.buf.get(i) {
            Some(&b) => Ok(Some(b)),
            None if self.eof => Ok(None),
            None => Err(NeedMore),
        }
    }

    /// The byte just before `i` (never needs more data: it is behind us).
    #[inline]
    pub(crate) fn before(&self, i: usize) -> Option<u8> {
        let j = i.checked_sub(1)?;
        if j < self.lo || j >= self.hi {
            return None;
        }
        self.buf.get(j).copied()
    }

    /// True when the byte at `i` satisfies `f`.
    #[inline]
    pub(crate) fn is(&self, i: usize, f: impl Fn(u8) -> bool) -> Step<bool> {
        Ok(self.at(i)?.is_some_and(f))
    }

    /// Counts bytes satisfying `f` from `i`, stopping after `max`.
    pub(crate) fn run(&self, i: usize, max: usize, f: impl Fn(u8) -> bool) -> Step<usize> {
        let mut n = 0;
        while n < max && self.is(i + n, &f)? {
            n += 1;
        }
        Ok(n)
    }

    /// The bytes `start..end`, clipped to the data present.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a [u8] {
        let end = end.min(self.buf.len()).min(self.hi);
        self.buf.get(start.max(self.lo)..end).unwrap_or(&[])
    }

    /// True when a value may start at `i`: the byte before is not part of
    /// a word (or is the tail of a backslash escape in text mode).
    pub(crate) fn left_ok(&self, i: usize) -> bool {
        match self.before(i) {
            None => true,
            Some(b) if !is_word(b) => true,
            Some(_) => self.escapes && self.escape_ends_at(i),
        }
    }

    /// True when `i` directly follows a JSON escape (`\n`, `\t`, `\uXXXX`).
    pub(crate) fn escape_ends_at(&self, i: usize) -> bool {
        let odd_backslashes_before = |j: usize| {
            let mut n = 0;
            let mut k = j;
            while let Some(b'\\') = self.before(k) {
                n += 1;
                k -= 1;
            }
            n % 2 == 1
        };
        match self.before(i) {
            Some(b'n' | b't' | b'r' | b'b' | b'f' | b'/') => odd_backslashes_before(i - 1),
            Some(b) if b.is_ascii_hexdigit() && i >= 6 => {
                let hex4 =
                    (i - 4..i).all(|k| self.before(k + 1).is_some_and(|c| c.is_ascii_hexdigit()));
                hex4 && self.before(i - 4) == Some(b'u') && odd_backslashes_before(i - 5)
            }
            _ => false,
        }
    }
}

/// ASCII letters, digits and `_`: bytes that make a word continue.
#[inline]
pub(crate) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// True when some byte of `x` lies strictly between `m` and `n`
/// (both at most 128): eight bytes tested in a handful of operations.
#[inline]
fn has_between(x: u64, m: u64, n: u64) -> bool {
    let low7 = x & (ONES * 127);
    ((ONES * (127 + n)).wrapping_sub(low7) & !x & (low7 + ONES * (127 - m)) & HIGHS) != 0
}

/// Is `b` a trigger byte: a digit, `:` (IPv6) or `@` (e-mail)? The range
/// `0x30..=0x40` also holds `;<=>?`, which the caller skips.
#[inline]
pub(crate) fn is_trigger(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b':' | b'@')
}

/// Position of the first trigger byte in `hay[from..to]`: sixteen bytes
/// per step where vectors are available (wasm `simd128`, x86-64 SSSE3),
/// eight with plain integer arithmetic elsewhere.
pub(crate) fn find_trigger(hay: &[u8], from: usize, to: usize) -> Option<usize> {
    let to = to.min(hay.len());
    if to.saturating_sub(from) < 16 || !vector::available() {
        return find_trigger_swar(hay, from, to);
    }
    #[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
    {
        // SAFETY: checked just above.
        unsafe { find_trigger_vector(hay, from, to) }
    }
    #[cfg(not(any(target_arch = "wasm32", target_arch = "x86_64")))]
    {
        find_trigger_swar(hay, from, to)
    }
}

/// Sixteen bytes per step: a byte is a candidate when it lies in
/// `0x30..=0x40`; candidates are then checked with [`is_trigger`].
///
/// # Safety
/// [`vector::available`] must hold.
#[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
#[cfg_attr(target_arch = "wasm32", target_feature(enable = "simd128"))]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "ssse3"))]
unsafe fn find_trigger_vector(hay: &[u8], from: usize, to: usize) -> Option<usize> {
    let mut i = from;
    while let Some(block) = hay.get(i..i + 16).filter(|_| i + 16 <= to) {
        let Ok(block) = <&[u8; 16]>::try_from(block) else {
            break;
        };
        let mut mask = vector::lanes_in(vector::load::<0, 16>(block), 0x30, 0x10);
        while mask != 0 {
            let k = i + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if hay.get(k).is_some_and(|&b| is_trigger(b)) {
                return Some(k);
            }
        }
        i += 16;
    }
    find_trigger_swar(hay, i, to)
}

/// The same search eight bytes at a time in a `u64`: the fallback, and
/// the tail after the last whole vector.
pub(crate) fn find_trigger_swar(hay: &[u8], from: usize, to: usize) -> Option<usize> {
    let to = to.min(hay.len());
    let mut i = from;
    while i + 8 <= to {
        let word = hay
            .get(i..i + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_le_bytes)
            .unwrap_or(u64::MAX);
        if has_between(word, 0x2f, 0x41) {
            for k in i..i + 8 {
                if hay.get(k).is_some_and(|&b| is_trigger(b)) {
                    return Some(k);
                }
            }
        }
        i += 8;
    }
    (i..to).find(|&k| hay.get(k).is_some_and(|&b| is_trigger(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swar_matches_naive() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut hay = [0u8; 70];
            for b in hay.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = (seed >> 24) as u8;
                if *b & 3 != 0 {
                    *b = b'a' + (*b % 26);
                }
            }
            for from in 0..hay.len() {
                for to in [hay.len(), hay.len() - 1, from + 17, from + 3] {
                    let naive = (from..to.min(hay.len())).find(|&k| is_trigger(hay[k]));
                    assert_eq!(find_trigger(&hay, from, to), naive);
                    assert_eq!(find_trigger_swar(&hay, from, to), naive);
                }
            }
        }
        for b in 0..=255u8 {
            let w = u64::from_le_bytes([b'a', b'a', b, b'a', b'a', b'a', b'a', b'a']);
            assert_eq!(
                has_between(w, 0x2f, 0x41),
                (0x30..=0x40).contains(&b),
                "{b}"
            );
        }
    }

    #[test]
    fn window_reads() {
        let w = Win::new(b"abc", 1, false, false);
        assert_eq!(w.at(0), Ok(None));
        assert_eq!(w.at(1), Ok(Some(b'b')));
        assert_eq!(w.at(3), Err(NeedMore));
        assert_eq!(w.limit(3).at(3), Ok(None));
        assert_eq!(w.before(1), None);
        assert_eq!(w.before(2), Some(b'b'));
        let e = Win::new(b"x\\u0041y", 0, true, true);
        assert!(e.escape_ends_at(7));
        assert!(e.left_ok(7));
        assert!(!Win::new(b"xu0041y", 0, true, true).left_ok(6));
        assert!(Win::new(b"\\nz", 0, true, true).left_ok(2));
        assert!(!Win::new(b"\\\\nz", 0, true, true).left_ok(3));
    }
}
