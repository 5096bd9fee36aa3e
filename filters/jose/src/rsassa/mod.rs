//! RSA signature verification, public key only: RSASSA-PKCS1-v1_5 and RSASSA-PSS (RFC 8017
//! sections 8.1.2 and 8.2.2) over SHA-256/384/512, PSS as JWS uses it (RFC 7518 section 3.5:
//! MGF1 with the message hash, a salt as long as the hash output).
//!
//! Strict: the signature is exactly as long as the modulus and below it; a PKCS#1 v1.5 encoded
//! message is rebuilt in full and compared byte for byte (so the DigestInfo, with its NULL
//! parameters, is the only one accepted, and nothing may follow the hash); every PSS check of
//! RFC 8017 section 9.1.2 is made, including the zero bits above emBits and, when emLen is one
//! byte shorter than the modulus, the zero byte in front.

mod monty;
#[cfg(test)]
mod vectors;

use sha2::{Digest, Sha256, Sha384, Sha512};
use shared::HashAlg;

use crate::der::{der_tlv, der_unsigned_integer};
use monty::Modulus;

/// The smallest public exponent accepted (1 makes signing the identity, even ones are invalid).
pub(crate) const MIN_PUBLIC_EXPONENT: u64 = 3;
/// The largest public exponent accepted: 2^33 - 1, the bound of the `rsa` crate this replaces.
pub(crate) const MAX_PUBLIC_EXPONENT: u64 = (1 << 33) - 1;

/// An RSA public key (n, e).
#[derive(Clone, Debug)]
pub(crate) struct RsaPublicKey {
    n: Modulus,
    e: u64,
}

impl RsaPublicKey {
    /// From the big-endian modulus and exponent (leading zero bytes allowed). `None` unless n is
    /// odd and above e, and e is odd and within [`MIN_PUBLIC_EXPONENT`]..=[`MAX_PUBLIC_EXPONENT`].
    /// The caller checks the modulus size it wants.
    pub(crate) fn new(n: &[u8], e: &[u8]) -> Option<RsaPublicKey> {
        let n = Modulus::new(n)?;
        let start = e.iter().position(|&b| b != 0).unwrap_or(e.len());
        let e = e.get(start..)?;
        if e.len() > 8 {
            return None;
        }
        let e = e.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        let n_above_e = n.len() > 8 || n.to_be_bytes().iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b)) > e;
        if e & 1 == 0 || !(MIN_PUBLIC_EXPONENT..=MAX_PUBLIC_EXPONENT).contains(&e) || !n_above_e {
            return None;
        }
        Some(RsaPublicKey { n, e })
    }

    /// The modulus size in bytes: the length of every signature (k in RFC 8017).
    pub(crate) fn size(&self) -> usize {
        self.n.len()
    }

    /// The modulus size in bits.
    pub(crate) fn bits(&self) -> usize {
        self.n.bits()
    }

    /// The DER SubjectPublicKeyInfo (RFC 8017 appendix A.1.1, RFC 5280 section 4.1):
    /// SEQUENCE { SEQUENCE { rsaEncryption, NULL }, BIT STRING { RSAPublicKey } }, with
    /// RSAPublicKey = SEQUENCE { INTEGER n, INTEGER e }.
    pub(crate) fn to_spki_der(&self) -> Vec<u8> {
        /// SEQUENCE { OID 1.2.840.113549.1.1.1 (rsaEncryption), NULL }.
        const RSA_ENCRYPTION: [u8; 15] = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ];
        let mut integers = Vec::with_capacity(self.size() + 16);
        der_unsigned_integer(&mut integers, self.n.to_be_bytes());
        der_unsigned_integer(&mut integers, &self.e.to_be_bytes());
        // The BIT STRING's first byte: no unused bits.
        let mut bits = vec![0x00];
        der_tlv(&mut bits, 0x30, &integers);
        let mut body = RSA_ENCRYPTION.to_vec();
        der_tlv(&mut body, 0x03, &bits);
        let mut spki = Vec::with_capacity(body.len() + 4);
        der_tlv(&mut spki, 0x30, &body);
        spki
    }

    /// RSASSA-PKCS1-v1_5-VERIFY of `signature` over `message` hashed with `hash`.
    pub(crate) fn verify_pkcs1v15(&self, hash: HashAlg, message: &[u8], signature: &[u8]) -> bool {
        self.public_op(signature)
            .is_some_and(|em| pkcs1v15_matches(hash, &digest(hash, &[message]), &em))
    }

    /// RSASSA-PSS-VERIFY of `signature` over `message`, with MGF1 and the salt length both set
    /// by `hash`.
    pub(crate) fn verify_pss(&self, hash: HashAlg, message: &[u8], signature: &[u8]) -> bool {
        let em_bits = self.bits() - 1;
        self.public_op(signature)
            .is_some_and(|em| pss_matches(hash, &digest(hash, &[message]), &em, em_bits))
    }

    /// RSAVP1 (RFC 8017 section 5.2.2) after the length check of section 8.x.2 step 1: the
    /// representative `s^e mod n` as exactly [`RsaPublicKey::size`] big-endian bytes. `None` if
    /// the signature is not that long or not below n.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.size() {
            return None;
        }
        self.n.pow(signature, self.e)
    }
}

/// The DER DigestInfo in front of the hash in a PKCS#1 v1.5 encoding (RFC 8017 section 9.2 note 1):
/// SEQUENCE { SEQUENCE { hash OID, NULL }, OCTET STRING (the hash follows) }.
fn digest_info_prefix(hash: HashAlg) -> &'static [u8] {
    const SHA256: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
        0x20,
    ];
    const SHA384: [u8; 19] = [
        0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04,
        0x30,
    ];
    const SHA512: [u8; 19] = [
        0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04,
        0x40,
    ];
    match hash {
        HashAlg::Sha256 => &SHA256,
        HashAlg::Sha384 => &SHA384,
        HashAlg::Sha512 => &SHA512,
    }
}

/// EMSA-PKCS1-v1_5 (RFC 8017 section 9.2) of `m_hash` rebuilt at the length of `em` and compared
/// with it: `00 01 FF..FF 00 DigestInfo hash`, at least 8 bytes of FF.
fn pkcs1v15_matches(hash: HashAlg, m_hash: &[u8], em: &[u8]) -> bool {
    let prefix = digest_info_prefix(hash);
    let t_len = prefix.len() + m_hash.len();
    let Some(ps_len) = em.len().checked_sub(t_len + 3) else {
        return false;
    };
    if ps_len < 8 {
        return false;
    }
    let mut expected = Vec::with_capacity(em.len());
    expected.extend_from_slice(&[0x00, 0x01]);
    expected.resize(2 + ps_len, 0xff);
    expected.push(0x00);
    expected.extend_from_slice(prefix);
    expected.extend_from_slice(m_hash);
    expected == em
}

/// EMSA-PSS-VERIFY (RFC 8017 section 9.1.2) of the encoded message `em`, which is the integer
/// representative as k bytes: emLen = ceil(emBits / 8) is k or k - 1 (then the first byte must be
/// zero: I2OSP(m, emLen) of section 8.1.2 step 2c fails otherwise). sLen = hLen.
fn pss_matches(hash: HashAlg, m_hash: &[u8], em: &[u8], em_bits: usize) -> bool {
    let h_len = m_hash.len();
    let s_len = h_len;
    let em_len = em_bits.div_ceil(8);
    let Some((lead, em)) = em.len().checked_sub(em_len).and_then(|skip| em.split_at_checked(skip)) else {
        return false;
    };
    if lead.iter().any(|&b| b != 0) {
        return false;
    }
    // Step 3.
    if em_len < h_len + s_len + 2 {
        return false;
    }
    // Step 4: the trailer.
    let Some((&0xbc, rest)) = em.split_last() else {
        return false;
    };
    // Step 5: maskedDB, then H.
    let Some((masked_db, h)) = rest.split_at_checked(em_len - h_len - 1) else {
        return false;
    };
    // Step 6: the 8 * emLen - emBits leftmost bits of maskedDB are zero.
    let keep = 0xffu8 >> (8 * em_len - em_bits);
    if masked_db.first().is_none_or(|&first| first & !keep != 0) {
        return false;
    }
    // Steps 7 to 9.
    let mut db = masked_db.to_vec();
    mgf1_xor(hash, h, &mut db);
    if let Some(first) = db.first_mut() {
        *first &= keep;
    }
    // Step 10: zeros, then 01, then the salt.
    let Some((zeros, rest)) = db.split_at_checked(em_len - h_len - s_len - 2) else {
        return false;
    };
    let Some((&0x01, salt)) = rest.split_first() else {
        return false;
    };
    if zeros.iter().any(|&b| b != 0) {
        return false;
    }
    // Steps 11 to 14: H = Hash(00 00 00 00 00 00 00 00 || mHash || salt).
    digest(hash, &[&[0u8; 8], m_hash, salt]) == h
}

/// `out ^= MGF1(seed)` for as many bytes as `out` has (RFC 8017 appendix B.2.1).
fn mgf1_xor(hash: HashAlg, seed: &[u8], out: &mut [u8]) {
    let h_len = match hash {
        HashAlg::Sha256 => 32,
        HashAlg::Sha384 => 48,
        HashAlg::Sha512 => 64,
    };
    for (counter, chunk) in (0u32..).zip(out.chunks_mut(h_len)) {
        let mask = digest(hash, &[seed, &counter.to_be_bytes()]);
        for (byte, mask) in chunk.iter_mut().zip(mask) {
            *byte ^= mask;
        }
    }
}

/// The hash of the concatenated `parts`.
pub(crate) fn digest(hash: HashAlg, parts: &[&[u8]]) -> Vec<u8> {
    fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
        let mut hasher = D::new();
        for part in parts {
            hasher.update(part);
        }
        hasher.finalize().to_vec()
    }
    match hash {
        HashAlg::Sha256 => run::<Sha256>(parts),
        HashAlg::Sha384 => run::<Sha384>(parts),
        HashAlg::Sha512 => run::<Sha512>(parts),
    }
}

#[cfg(test)]
mod tests;
