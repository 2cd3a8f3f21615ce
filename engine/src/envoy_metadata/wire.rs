//! A minimal reader for the protobuf binary wire format: just the pieces
//! needed to walk `envoy.config.core.v3.Metadata` and
//! `google.protobuf.Struct`. Hand-written rather than a protobuf crate
//! because it runs in the wasm filter, where code size matters.

use super::MetadataError;

/// How a field's payload is laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// Base-128 varint (int32/64, uint, bool, enum).
    Varint,
    /// Eight little-endian bytes (fixed64, sfixed64, double).
    I64,
    /// A varint length, then that many bytes (string, bytes, message).
    Len,
    /// Four little-endian bytes (fixed32, sfixed32, float).
    I32,
}

/// Largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// A cursor over one message's bytes. Every read is bounds-checked and
/// reports truncation as an error; nothing panics.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over a whole message.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }

    /// Whether the message has been read to its end.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// Reads the next field's tag: its number and wire type. Groups
    /// (deprecated wire types 3 and 4) and the undefined types 6 and 7 are
    /// rejected, as is field number 0.
    pub fn tag(&mut self) -> Result<(u32, WireType), MetadataError> {
        let tag = self.varint()?;
        let number = tag >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(MetadataError::Malformed("field number"));
        }
        let wire = match tag & 7 {
            0 => WireType::Varint,
            1 => WireType::I64,
            2 => WireType::Len,
            5 => WireType::I32,
            _ => return Err(MetadataError::Malformed("wire type")),
        };
        u32::try_from(number)
            .map(|n| (n, wire))
            .map_err(|_| MetadataError::Malformed("field number"))
    }

    /// Reads a base-128 varint of at most ten bytes that fits in 64 bits.
    pub fn varint(&mut self) -> Result<u64, MetadataError> {
        let mut value: u64 = 0;
        for (i, byte) in self.rest.iter().enumerate().take(10) {
            let bits = u64::from(byte & 0x7f);
            // The tenth byte may only carry the 64th bit.
            if i == 9 && bits > 1 {
                return Err(MetadataError::Malformed("varint overflow"));
            }
            value |= bits << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = self.rest.get(i + 1..).unwrap_or_default();
                return Ok(value);
            }
        }
        Err(MetadataError::Malformed(if self.rest.len() >= 10 {
            "varint overflow"
        } else {
            "truncated varint"
        }))
    }

    /// Reads a length-delimited payload.
    pub fn len_delimited(&mut self) -> Result<&'a [u8], MetadataError> {
        let len = usize::try_from(self.varint()?)
            .map_err(|_| MetadataError::Malformed("length out of range"))?;
        self.take(len)
    }

    /// Reads eight raw little-endian bytes.
    pub fn fixed64(&mut self) -> Result<[u8; 8], MetadataError> {
        let bytes = self.take(8)?;
        <[u8; 8]>::try_from(bytes).map_err(|_| MetadataError::Malformed("truncated fixed64"))
    }

    /// Skips a field's payload of the given wire type (unknown fields).
    pub fn skip(&mut self, wire: WireType) -> Result<(), MetadataError> {
        match wire {
            WireType::Varint => self.varint().map(drop),
            WireType::I64 => self.take(8).map(drop),
            WireType::Len => self.len_delimited().map(drop),
            WireType::I32 => self.take(4).map(drop),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], MetadataError> {
        let (head, tail) = self
            .rest
            .split_at_checked(len)
            .ok_or(MetadataError::Malformed("length past end"))?;
        self.rest = tail;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        assert_eq!(Reader::new(&[0]).varint(), Ok(0));
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader::new(&over).varint().is_err());
        let eleven = [0x80; 11];
        assert!(Reader::new(&eleven).varint().is_err());
        assert!(Reader::new(&[0x80]).varint().is_err());
        assert!(Reader::new(&[]).varint().is_err());
        let mut r = Reader::new(&[0x01, 0x02]);
        assert_eq!(r.varint(), Ok(1));
        assert_eq!(r.varint(), Ok(2));
        assert!(r.is_empty());
    }

    #[test]
    fn tags() {
        assert_eq!(Reader::new(&[0x0a]).tag(), Ok((1, WireType::Len)));
        assert_eq!(Reader::new(&[0x11]).tag(), Ok((2, WireType::I64)));
        assert_eq!(Reader::new(&[0x20]).tag(), Ok((4, WireType::Varint)));
        assert_eq!(Reader::new(&[0x3d]).tag(), Ok((7, WireType::I32)));
        // Field 0, groups (3, 4) and wire types 6, 7 are refused.
        for bad in [0x02u8, 0x0b, 0x0c, 0x0e, 0x0f] {
            assert!(Reader::new(&[bad]).tag().is_err(), "{bad:#x}");
        }
        // Field number above 2^29 - 1.
        assert!(Reader::new(&[0x80, 0x80, 0x80, 0x80, 0x20]).tag().is_err());
    }

    #[test]
    fn lengths_and_skips_stay_in_bounds() {
        assert_eq!(
            Reader::new(&[2, b'h', b'i']).len_delimited(),
            Ok(&b"hi"[..])
        );
        assert!(Reader::new(&[3, b'h', b'i']).len_delimited().is_err());
        let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert!(Reader::new(&huge).len_delimited().is_err());
        assert!(Reader::new(&[0; 7]).fixed64().is_err());
        assert_eq!(Reader::new(&[1; 8]).fixed64(), Ok([1; 8]));
        assert!(Reader::new(&[0; 3]).skip(WireType::I32).is_err());
        let mut r = Reader::new(&[0; 4]);
        assert_eq!(r.skip(WireType::I32), Ok(()));
        assert!(r.is_empty());
    }
}
