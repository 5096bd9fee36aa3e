//! Ed25519 signature checks (RFC 8032), strict as ed25519-dalek's `verify_strict`.

/// The canonical encodings of the eight points of small order (the identity, the point of order 2,
/// two of order 4 and four of order 8): the R that `verify_strict` refuses after decompressing it.
const SMALL_ORDER_ENCODINGS: [[u8; 32]; 8] = {
    const ORDER_8_Y: [u8; 32] = [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf,
        0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
    ];
    const ORDER_8_MINUS_Y: [u8; 32] = [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20,
        0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
    ];
    const fn negative_x(mut y: [u8; 32]) -> [u8; 32] {
        y[31] |= 0x80;
        y
    }
    let mut one = [0; 32];
    one[0] = 1;
    let mut minus_one = [0xff; 32];
    minus_one[0] = 0xec;
    minus_one[31] = 0x7f;
    [
        one,
        minus_one,
        [0; 32],
        negative_x([0; 32]),
        ORDER_8_Y,
        negative_x(ORDER_8_Y),
        ORDER_8_MINUS_Y,
        negative_x(ORDER_8_MINUS_Y),
    ]
};

/// An Ed25519 public key that is a curve point and not of small order: the only kind a JWK gives.
#[derive(Clone, Debug)]
pub(crate) struct PublicKey(ed25519_dalek::VerifyingKey);

impl PublicKey {
    pub(crate) fn from_bytes(x: &[u8; 32]) -> Result<Self, &'static str> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(x).map_err(|_| "Ed25519 key is not a curve point")?;
        if key.is_weak() {
            return Err("Ed25519 key has small order");
        }
        Ok(Self(key))
    }

    /// ed25519-dalek's `verify_strict` (small-order keys and R refused, S below the group order,
    /// cofactorless) without its decompression of R, a field exponentiation: about 8% of a check
    /// in wasm. The cofactorless check compares the recomputed R's canonical encoding with the
    /// signature's bytes, so an R it accepts is canonical, and a canonical small-order R is one
    /// of eight encodings. The key's order was checked when it was made.
    pub(crate) fn verify_strict(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        if SMALL_ORDER_ENCODINGS
            .iter()
            .any(|encoding| encoding[..] == signature[..32])
        {
            return false;
        }
        let signature = ed25519_dalek::Signature::from_bytes(signature);
        ed25519_dalek::Verifier::verify(&self.0, message, &signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use curve25519_dalek::Scalar;
    use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
    use sha2::{Digest, Sha512};
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn the_small_order_encodings_are_the_eight_torsion_points() {
        let torsion: Vec<[u8; 32]> = EIGHT_TORSION.iter().map(|point| point.compress().to_bytes()).collect();
        for encoding in &torsion {
            assert!(SMALL_ORDER_ENCODINGS.contains(encoding), "{encoding:02x?}");
        }
        for (i, encoding) in SMALL_ORDER_ENCODINGS.iter().enumerate() {
            assert!(torsion.contains(encoding), "{encoding:02x?}");
            assert!(!SMALL_ORDER_ENCODINGS[..i].contains(encoding), "{encoding:02x?} twice");
        }
    }

    /// A key with a component of order 8 (not weak: its order is not small) lets a signer who
    /// knows its discrete log make signatures whose R is any small-order point and that the
    /// cofactorless check alone accepts.
    #[wasm_bindgen_test(unsupported = test)]
    fn a_small_order_r_is_refused_even_where_the_cofactorless_check_passes() {
        let secret = Scalar::from_bytes_mod_order([7; 32]);
        let order_8 = EIGHT_TORSION[1];
        let key_point = ED25519_BASEPOINT_POINT * secret + order_8;
        let key = VerifyingKey::from_bytes(&key_point.compress().to_bytes()).unwrap();
        let ours = PublicKey::from_bytes(key.as_bytes()).unwrap();
        for small in EIGHT_TORSION {
            let r = small.compress().to_bytes();
            // [S]B - [k]A = -[k]T when S = k * secret, so find a message whose k gives R.
            let (message, k) = (0u32..)
                .map(|n| {
                    let message = n.to_le_bytes();
                    let hash = Sha512::new()
                        .chain_update(r)
                        .chain_update(key.as_bytes())
                        .chain_update(message);
                    (message, Scalar::from_bytes_mod_order_wide(&hash.finalize().into()))
                })
                .find(|(_, k)| -(order_8 * k) == small)
                .unwrap();
            let mut signature = [0; 64];
            signature[..32].copy_from_slice(&r);
            signature[32..].copy_from_slice((k * secret).as_bytes());
            let parsed = Signature::from_bytes(&signature);
            assert!(
                ed25519_dalek::Verifier::verify(&key, &message, &parsed).is_ok(),
                "{r:02x?}"
            );
            assert!(key.verify_strict(&message, &parsed).is_err(), "{r:02x?}");
            assert!(!ours.verify_strict(&message, &signature), "{r:02x?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn agrees_with_verify_strict_on_good_and_altered_signatures() {
        for seed in 0..16u8 {
            let signer = SigningKey::from_bytes(&[seed; 32]);
            let key = signer.verifying_key();
            let ours = PublicKey::from_bytes(key.as_bytes()).unwrap();
            let message = [seed; 40];
            let good = signer.sign(&message).to_bytes();
            let mut cases = vec![good];
            for i in [0, 17, 31, 32, 48, 63] {
                let mut altered = good;
                altered[i] ^= 1 << (seed % 8);
                cases.push(altered);
            }
            let mut s_plus_order = good;
            s_plus_order[32..].copy_from_slice(&add_group_order(&good[32..]));
            cases.push(s_plus_order);
            for signature in cases {
                let strict = key.verify_strict(&message, &Signature::from_bytes(&signature)).is_ok();
                assert_eq!(
                    ours.verify_strict(&message, &signature),
                    strict,
                    "{seed} {signature:02x?}"
                );
            }
            assert!(ours.verify_strict(&message, &good));
        }
    }

    /// S + L, little-endian: the same point, but not the canonical S.
    fn add_group_order(s: &[u8]) -> [u8; 32] {
        const ORDER: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0, 0, 0, 0,
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut sum = [0; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let digit = u16::from(s[i]) + u16::from(ORDER[i]) + carry;
            sum[i] = digit as u8;
            carry = digit >> 8;
        }
        sum
    }
}
