//! The proxy-wasm "pairs" encoding of header maps and other key/value lists.
//!
//! Layout: a little-endian `u32` count, then for each pair a `u32` key length
//! and a `u32` value length, then every key and every value in order, each
//! followed by a NUL byte. The host produces it for `get_header_map_pairs`
//! and for Envoy-style map properties, and parses it for everything the
//! guest sends (`set_header_map_pairs`, local reply headers, HTTP call
//! headers). Parsing never trusts the guest: every length is checked.

use thiserror::Error;

/// Why a guest-supplied pairs buffer was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PairsError {
    /// The buffer ends before the count, a length, or a key/value it announces.
    #[error("pairs buffer truncated")]
    Truncated,
    /// The announced count cannot fit in the buffer at all.
    #[error("pairs count {0} does not fit in the buffer")]
    BadCount(u32),
}

/// Decoded pairs as raw `(key, value)` bytes, in wire order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Encodes `(key, value)` pairs in the proxy-wasm pairs layout.
pub fn encode<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let payload: usize = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 10)
        .sum();
    let mut out = Vec::with_capacity(4 + payload);
    out.extend_from_slice(&len_u32(pairs.len()).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&len_u32(k.as_ref().len()).to_le_bytes());
        out.extend_from_slice(&len_u32(v.as_ref().len()).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Lengths on the wire are `u32`; the host never builds anything larger
/// than guest memory (4 GiB), so saturating is only a guard.
fn len_u32(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// Decodes a pairs buffer coming from the guest.
///
/// An empty buffer (or one shorter than the count) is an empty list, as in
/// Envoy, because the SDK sends a null pointer with size 0 for "no pairs".
/// The NUL after each key and value is skipped without being required to be
/// zero, which is what Envoy's parser does too.
pub fn decode(buf: &[u8]) -> Result<Pairs, PairsError> {
    if buf.len() < 4 {
        return Ok(Vec::new());
    }
    let count = read_u32(buf, 0).ok_or(PairsError::Truncated)?;
    let header_len = (count as usize)
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .filter(|&n| n <= buf.len())
        .ok_or(PairsError::BadCount(count))?;
    let mut pos = header_len;
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let key_len = read_u32(buf, 4 + i * 8).ok_or(PairsError::Truncated)? as usize;
        let value_len = read_u32(buf, 8 + i * 8).ok_or(PairsError::Truncated)? as usize;
        let key = take(buf, &mut pos, key_len)?;
        let value = take(buf, &mut pos, value_len)?;
        out.push((key.to_vec(), value.to_vec()));
    }
    Ok(out)
}

/// Takes `len` bytes at `*pos` plus the terminator that follows them.
fn take<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Result<&'a [u8], PairsError> {
    let end = pos.checked_add(len).ok_or(PairsError::Truncated)?;
    let after_nul = end.checked_add(1).ok_or(PairsError::Truncated)?;
    if after_nul > buf.len() {
        return Err(PairsError::Truncated);
    }
    let slice = &buf[*pos..end];
    *pos = after_nul;
    Ok(slice)
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_documented_layout() {
        let bytes = encode(&[("a", "xy"), ("", "z")]);
        let mut expected = vec![2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        expected.extend_from_slice(b"a\0xy\0\0z\0");
        assert_eq!(bytes, expected);
    }

    #[test]
    fn round_trips() {
        let pairs = vec![
            (b":path".to_vec(), b"/mcp".to_vec()),
            (b"x-empty".to_vec(), Vec::new()),
        ];
        assert_eq!(decode(&encode(&pairs)).unwrap(), pairs);
    }

    #[test]
    fn empty_inputs_are_empty_lists() {
        assert!(decode(&[]).unwrap().is_empty());
        assert!(decode(&encode::<&str, &str>(&[])).unwrap().is_empty());
    }

    #[test]
    fn rejects_truncation_and_huge_counts() {
        let mut bytes = encode(&[("key", "value")]);
        bytes.truncate(bytes.len() - 1);
        assert_eq!(decode(&bytes), Err(PairsError::Truncated));
        assert_eq!(
            decode(&u32::MAX.to_le_bytes()),
            Err(PairsError::BadCount(u32::MAX))
        );
        let mut lying = encode(&[("k", "v")]);
        lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&lying), Err(PairsError::Truncated));
    }
}
