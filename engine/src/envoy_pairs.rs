//! proxy-wasm's pairs encoding, in which hosts hand over header maps
//! (`proxy_get_header_map_pairs`) and hostcalls such as
//! `proxy_send_local_response` take header lists: a `u32` count, then
//! each pair's `u32` key and value lengths, then each key and value followed
//! by a NUL (all integers little-endian).
//!
//! Claims are not read in this encoding: the per-path property encoding
//! Envoy uses for metadata leaves values untyped, so the filter reads the
//! typed protobuf message instead (see [`crate::envoy_metadata`]).

/// Parses one pairs-encoded buffer into borrowed (key, value) slices.
/// Returns `None` unless the layout is exact: every length in bounds, every
/// NUL terminator in place and no trailing bytes.
pub fn parse_pairs(buf: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let count = read_u32(buf, 0)? as usize;
    let header_len = count.checked_mul(8)?.checked_add(4)?;
    if header_len > buf.len() {
        return None;
    }
    let mut pos = header_len;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let at = i.checked_mul(8)?;
        let key_len = read_u32(buf, at.checked_add(4)?)? as usize;
        let value_len = read_u32(buf, at.checked_add(8)?)? as usize;
        let key = take_terminated(buf, &mut pos, key_len)?;
        let value = take_terminated(buf, &mut pos, value_len)?;
        out.push((key, value));
    }
    (pos == buf.len()).then_some(out)
}

fn read_u32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

fn take_terminated<'a>(buf: &'a [u8], pos: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = pos.checked_add(len)?;
    let slice = buf.get(*pos..end)?;
    if *buf.get(end)? != 0 {
        return None;
    }
    *pos = end.checked_add(1)?;
    Some(slice)
}

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

    #[test]
    fn parse_is_the_inverse_and_refuses_anything_inexact() {
        let encoded = encode_pairs(&[(b":path", b"/mcp"), (b"x", b"")]);
        assert_eq!(
            parse_pairs(&encoded).unwrap(),
            vec![(&b":path"[..], &b"/mcp"[..]), (&b"x"[..], &b""[..])]
        );
        for cut in 0..encoded.len() {
            assert!(parse_pairs(&encoded[..cut]).is_none(), "cut {cut}");
        }
        let mut trailing = encoded.clone();
        trailing.push(0);
        assert!(parse_pairs(&trailing).is_none());
        assert!(parse_pairs(&[0xff, 0xff, 0xff, 0xff]).is_none());
    }
}
