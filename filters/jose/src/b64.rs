//! Strict base64url (RFC 7515 section 2): the URL-safe alphabet, no padding, no whitespace, and
//! canonical trailing bits, so every byte string has exactly one accepted encoding.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

use crate::error::JwtError;

const STRICT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(false),
);

/// Decodes strict base64url: rejects `=`, `+`, `/`, whitespace, impossible lengths and
/// non-canonical trailing bits.
pub fn b64url_decode(input: &[u8]) -> Result<Vec<u8>, JwtError> {
    STRICT
        .decode(input)
        .map_err(|_| JwtError::Malformed("invalid base64url"))
}

#[cfg(test)]
pub(crate) fn b64url_encode(input: &[u8]) -> String {
    STRICT.encode(input)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn decodes_canonical_base64url() {
        assert_eq!(b64url_decode(b"").unwrap(), b"");
        assert_eq!(b64url_decode(b"YQ").unwrap(), b"a");
        assert_eq!(b64url_decode(b"YWI").unwrap(), b"ab");
        assert_eq!(b64url_decode(b"YWJj").unwrap(), b"abc");
        assert_eq!(b64url_decode(b"-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(b64url_encode(&[0xfb, 0xff]), "-_8");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rejects_everything_else() {
        for bad in [
            &b"YQ=="[..],
            b"YQ=",
            b"YWI=",
            b"+_8",
            b"-/8",
            b"YW Jj",
            b"YWJj\n",
            b" YWJj",
            b"YWJj\t",
            b"Y",     // impossible length
            b"YR",    // "a" with non-zero trailing bits
            b"YWJ",   // "ab" with non-zero trailing bits
            b"YWJj.", // a segment separator is not base64
            b"\xc3\xa9",
        ] {
            assert_eq!(
                b64url_decode(bad),
                Err(JwtError::Malformed("invalid base64url")),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
