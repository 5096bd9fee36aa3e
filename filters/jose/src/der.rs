//! The few DER encoders this crate needs (X.690): lengths, non-negative INTEGERs and
//! constructed values. Encoding only: nothing here parses DER.

/// A DER length: short form below 0x80, else the minimal long form.
pub(crate) fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len() - 1);
        let significant = bytes.get(start..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
}

/// A DER INTEGER holding the non-negative big-endian `value`: minimal, with a leading zero byte
/// when the top bit is set.
pub(crate) fn der_unsigned_integer(out: &mut Vec<u8>, value: &[u8]) {
    let start = value.iter().position(|&b| b != 0).unwrap_or(value.len());
    let digits = value.get(start..).unwrap_or_default();
    let pad = digits.first().is_none_or(|&b| b & 0x80 != 0);
    out.push(0x02);
    der_length(out, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

/// `tag`, the length of `body`, then `body`.
pub(crate) fn der_tlv(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    der_length(out, body.len());
    out.extend_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn integers_and_lengths() {
        let mut out = Vec::new();
        der_unsigned_integer(&mut out, &[0, 0, 0x7f]);
        der_unsigned_integer(&mut out, &[0x80]);
        der_unsigned_integer(&mut out, &[]);
        der_unsigned_integer(&mut out, &[0, 0]);
        assert_eq!(
            out,
            [0x02, 0x01, 0x7f, 0x02, 0x02, 0x00, 0x80, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00]
        );

        let mut out = Vec::new();
        der_tlv(&mut out, 0x30, &[1; 0x100]);
        assert_eq!(out[..4], [0x30, 0x82, 0x01, 0x00]);
        assert_eq!(out.len(), 4 + 0x100);
    }
}
