//! Sixteen-byte vector steps for the scanner's searches (keyword
//! candidates in `keywords`, trigger bytes in `window`), on wasm `simd128`
//! and x86-64 SSSE3: the same few primitives on both, so each search loop
//! is written once.
//!
//! Every function carries the target feature, so it inlines into the
//! search loops, which carry it too (`#[cfg_attr(..., target_feature)]`).
//! On x86-64 callers check [`available`] first; on wasm the feature is
//! part of the module (V8 and wasmtime support it).

/// Whether the vector searches can run on this machine.
#[inline]
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("ssse3")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        cfg!(target_arch = "wasm32")
    }
}

#[cfg(target_arch = "wasm32")]
mod arch {
    use core::arch::wasm32::{
        u8x16_bitmask, u8x16_le, u8x16_ne, u8x16_shr, u8x16_splat, u8x16_sub, u8x16_swizzle, v128,
        v128_and, v128_any_true, v128_load,
    };

    /// Sixteen bytes.
    pub(crate) type V = v128;

    /// The sixteen bytes at offset `K` of `w`.
    #[inline]
    #[target_feature(enable = "simd128")]
    pub(crate) fn load<const K: usize, const N: usize>(w: &[u8; N]) -> V {
        const { assert!(K + 16 <= N) };
        // SAFETY: `K + 16 <= N` bytes are readable (checked at compile
        // time); `v128.load` takes any alignment.
        unsafe { v128_load(w.as_ptr().add(K).cast()) }
    }

    /// Lane-wise AND.
    #[inline]
    #[target_feature(enable = "simd128")]
    pub(crate) fn and(a: V, b: V) -> V {
        v128_and(a, b)
    }

    /// `lo[v & 15] & hi[v >> 4]` per lane.
    #[inline]
    #[target_feature(enable = "simd128")]
    pub(crate) fn lookup(v: V, lo: V, hi: V) -> V {
        let l = u8x16_swizzle(lo, v128_and(v, u8x16_splat(15)));
        v128_and(l, u8x16_swizzle(hi, u8x16_shr(v, 4)))
    }

    /// Bit `j` set when lane `j` is not zero.
    #[inline]
    #[target_feature(enable = "simd128")]
    pub(crate) fn nonzero_lanes(v: V) -> u32 {
        if v128_any_true(v) {
            u32::from(u8x16_bitmask(u8x16_ne(v, u8x16_splat(0))))
        } else {
            0
        }
    }

    /// Bit `j` set when lane `j` lies in `low..=low + span`.
    #[inline]
    #[target_feature(enable = "simd128")]
    pub(crate) fn lanes_in(v: V, low: u8, span: u8) -> u32 {
        let near = u8x16_le(u8x16_sub(v, u8x16_splat(low)), u8x16_splat(span));
        if v128_any_true(near) {
            u32::from(u8x16_bitmask(near))
        } else {
            0
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8,
        _mm_set1_epi8, _mm_setzero_si128, _mm_shuffle_epi8, _mm_srli_epi16, _mm_sub_epi8,
    };

    /// Sixteen bytes.
    pub(crate) type V = __m128i;

    /// The sixteen bytes at offset `K` of `w`.
    #[inline]
    #[target_feature(enable = "ssse3")]
    pub(crate) fn load<const K: usize, const N: usize>(w: &[u8; N]) -> V {
        const { assert!(K + 16 <= N) };
        // SAFETY: `K + 16 <= N` bytes are readable (checked at compile
        // time); `loadu` takes any alignment.
        unsafe { _mm_loadu_si128(w.as_ptr().add(K).cast()) }
    }

    /// Lane-wise AND.
    #[inline]
    #[target_feature(enable = "ssse3")]
    pub(crate) fn and(a: V, b: V) -> V {
        _mm_and_si128(a, b)
    }

    /// `lo[v & 15] & hi[v >> 4]` per lane. There is no 8-bit shift: shift
    /// 16-bit lanes, then drop the bits the neighbouring byte shifted in.
    #[inline]
    #[target_feature(enable = "ssse3")]
    pub(crate) fn lookup(v: V, lo: V, hi: V) -> V {
        let nibble = _mm_set1_epi8(15);
        let l = _mm_shuffle_epi8(lo, _mm_and_si128(v, nibble));
        let h = _mm_shuffle_epi8(hi, _mm_and_si128(_mm_srli_epi16(v, 4), nibble));
        _mm_and_si128(l, h)
    }

    /// Bit `j` set when lane `j` is not zero.
    #[inline]
    #[target_feature(enable = "ssse3")]
    pub(crate) fn nonzero_lanes(v: V) -> u32 {
        !(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128())) as u32) & 0xFFFF
    }

    /// Bit `j` set when lane `j` lies in `low..=low + span`. SSE2 has no
    /// unsigned compare: "at most `span`" is "unchanged by an unsigned
    /// minimum with `span`".
    #[inline]
    #[target_feature(enable = "ssse3")]
    pub(crate) fn lanes_in(v: V, low: u8, span: u8) -> u32 {
        let d = _mm_sub_epi8(v, _mm_set1_epi8(low as i8));
        let span = _mm_set1_epi8(span as i8);
        _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d, span), d)) as u32
    }
}

#[cfg(any(target_arch = "wasm32", target_arch = "x86_64"))]
pub(crate) use arch::{and, lanes_in, load, lookup, nonzero_lanes};
