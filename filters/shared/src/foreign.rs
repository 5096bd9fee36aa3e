//! The wire format of Envoy's `verify_signature` foreign function: two small protobuf messages,
//! encoded by hand (a protobuf dependency would cost more wasm than the whole filter).
//!
//! `VerifySignatureArguments { string hash_function = 1; bytes public_key = 2 (DER);
//! bytes signature = 3; bytes text = 4; }` and `VerifySignatureResult { bool result = 1;
//! string error = 2; }`.

use crate::ports::HashAlg;

/// The foreign function's name in Envoy.
pub const VERIFY_SIGNATURE: &str = "verify_signature";

pub fn hash_name(hash: HashAlg) -> &'static str {
    match hash {
        HashAlg::Sha256 => "sha256",
        HashAlg::Sha384 => "sha384",
        HashAlg::Sha512 => "sha512",
    }
}

/// Encodes the arguments message.
pub fn encode_verify_arguments(hash: HashAlg, spki_der: &[u8], signature: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(spki_der.len() + signature.len() + message.len() + 32);
    put_bytes(&mut out, 1, hash_name(hash).as_bytes());
    put_bytes(&mut out, 2, spki_der);
    put_bytes(&mut out, 3, signature);
    put_bytes(&mut out, 4, message);
    out
}

/// Decodes the result message: `Some(valid)`, or `None` if it is not a result message.
pub fn decode_verify_result(mut bytes: &[u8]) -> Option<bool> {
    let mut result = false;
    while !bytes.is_empty() {
        let key = take_varint(&mut bytes)?;
        match (key >> 3, key & 7) {
            (1, 0) => result = take_varint(&mut bytes)? != 0,
            (_, 0) => {
                take_varint(&mut bytes)?;
            }
            (_, 2) => {
                let len = usize::try_from(take_varint(&mut bytes)?).ok()?;
                bytes = bytes.get(len..)?;
            }
            _ => return None,
        }
    }
    Some(result)
}

fn put_bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn take_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn arguments_encode_as_protobuf() {
        let encoded = encode_verify_arguments(HashAlg::Sha384, b"KEY", &[0xAA; 200], b"");
        let mut expected = vec![0x0a, 6];
        expected.extend_from_slice(b"sha384");
        expected.extend_from_slice(&[0x12, 3]);
        expected.extend_from_slice(b"KEY");
        expected.extend_from_slice(&[0x1a, 0xc8, 0x01]);
        expected.extend_from_slice(&[0xAA; 200]);
        expected.extend_from_slice(&[0x22, 0]);
        assert_eq!(encoded, expected);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn results_decode() {
        assert_eq!(decode_verify_result(&[0x08, 0x01]), Some(true));
        assert_eq!(decode_verify_result(&[0x08, 0x01, 0x12, 0x00]), Some(true));
        // proto3 omits false and empty fields.
        assert_eq!(decode_verify_result(&[]), Some(false));
        let mut failed = vec![0x12, 5];
        failed.extend_from_slice(b"nope!");
        assert_eq!(decode_verify_result(&failed), Some(false));
        assert_eq!(decode_verify_result(&[0x12, 9, b'x']), None);
        assert_eq!(decode_verify_result(&[0x0d, 1, 2, 3, 4]), None);
    }
}
