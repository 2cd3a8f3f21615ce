//! Keyed, deterministic short tokens for the `hash` action.
//!
//! HMAC-SHA256 (RustCrypto `hmac` + `sha2`, both pure Rust and wasm32
//! friendly) over the type label and the value, truncated to 32 bits and
//! written as 8 hex digits. The key keeps the mapping from being reversed
//! by hashing guesses (phone numbers and card numbers have small spaces).

// `HEX` is indexed by a nibble (`[_; 16]`): in range by construction.
#![allow(clippy::indexing_slicing)]

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256 keyed by the configured hash key.
#[derive(Clone)]
pub(crate) struct Hasher {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher(<key>)")
    }
}

impl Hasher {
    /// `None` when the key is unusable (HMAC accepts any length, so this
    /// only fails if the crate ever refuses a key).
    pub(crate) fn new(key: &[u8]) -> Option<Self> {
        Hmac::<Sha256>::new_from_slice(key)
            .ok()
            .map(|mac| Self { mac })
    }

    /// Appends 8 lowercase hex digits identifying `value` of type `label`.
    pub(crate) fn token(&self, label: &str, value: &[u8], out: &mut Vec<u8>) {
        let mut mac = self.mac.clone();
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        for b in digest.iter().take(4) {
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_keyed_and_typed() {
        let a = Hasher::new(b"0123456789abcdef").unwrap();
        let b = Hasher::new(b"fedcba9876543210").unwrap();
        let tok = |h: &Hasher, l: &str, v: &[u8]| {
            let mut o = Vec::new();
            h.token(l, v, &mut o);
            String::from_utf8(o).unwrap()
        };
        let t = tok(&a, "EMAIL", b"jane@example.com");
        assert_eq!(t.len(), 8);
        assert_eq!(t, tok(&a, "EMAIL", b"jane@example.com"));
        assert_ne!(t, tok(&b, "EMAIL", b"jane@example.com"));
        assert_ne!(t, tok(&a, "PHONE", b"jane@example.com"));
    }
}
