//! Standard base64 (RFC 4648 alphabet) for bodies that are not UTF-8 in
//! the replay format, through the `base64` crate: padded on output,
//! padded or unpadded on input, no whitespace.

use base64::alphabet::STANDARD;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;

/// Writes padding, accepts input with or without it.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes bytes as padded base64.
pub fn encode(data: &[u8]) -> String {
    ENGINE.encode(data)
}

/// Decodes padded or unpadded base64; whitespace is not allowed.
pub fn decode(text: &str) -> Result<Vec<u8>, String> {
    ENGINE
        .decode(text)
        .map_err(|e| format!("invalid base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), encoded);
            assert_eq!(decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(decode("Zm9vYg").unwrap(), b"foob");
        assert_eq!(decode("Zm8").unwrap(), b"fo");
        assert_eq!(encode(&[0xff, 0x00, 0xfe]), "/wD+");
        assert_eq!(decode("/wD+").unwrap(), [0xff, 0x00, 0xfe]);
        assert!(decode("Zm9v!").is_err());
        assert!(decode("Z").is_err());
        // URL-safe characters, whitespace and excess padding are refused.
        assert!(decode("_wD-").is_err());
        assert!(decode("Zm9v\n").is_err());
        assert!(decode("Zg===").is_err());
    }
}
