//! proxy-wasm's pairs encoding, which hostcalls such as
//! `proxy_send_local_response` take for header lists: a `u32` count, then
//! each pair's `u32` key and value lengths, then each key and value followed
//! by a NUL (all integers little-endian).
//!
//! Claims are not read in this encoding: the per-path property encoding
//! Envoy uses for metadata leaves values untyped, so the filter reads the
//! typed protobuf message instead (see [`crate::envoy_metadata`]).

/// Encodes pairs the way proxy-wasm hosts expect them.
pub fn encode_pairs(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_count_lengths_then_terminated_bytes() {
        assert_eq!(encode_pairs(&[]), [0, 0, 0, 0]);
        assert_eq!(
            encode_pairs(&[(b"ab", b"c"), (b"", b"")]),
            b"\x02\0\0\0\x02\0\0\0\x01\0\0\0\0\0\0\0\0\0\0\0ab\0c\0\0\0"
        );
    }
}
