//! Modular exponentiation by a small public exponent, in Montgomery form over
//! [`crate::bignum`]'s limbs. Only public values pass through here (signatures, moduli,
//! exponents), so nothing tries to be constant time.

use crate::bignum::{bit_length, limbs_from_be, limbs_to_be, mont_mul, neg_inverse, r_squared, Limb, LIMB_BYTES};

/// An odd modulus n > 1 with the constants of Montgomery arithmetic modulo it, for
/// R = 2^(LIMB_BITS * limbs).
#[derive(Clone)]
pub(crate) struct Modulus {
    /// n, little-endian limbs, the top one non-zero.
    n: Vec<Limb>,
    /// -n^-1 mod 2^LIMB_BITS.
    n0_inv: Limb,
    /// R^2 mod n: multiplying by it enters Montgomery form.
    r2: Vec<Limb>,
    /// n as minimal big-endian bytes.
    be: Vec<u8>,
}

impl Modulus {
    /// `None` unless the big-endian `bytes` (leading zeros allowed) are odd and above 1.
    pub(crate) fn new(bytes: &[u8]) -> Option<Modulus> {
        let start = bytes.iter().position(|&b| b != 0)?;
        let be = bytes.get(start..)?.to_vec();
        if be.last().is_none_or(|&low| low & 1 == 0) || be == [1] {
            return None;
        }
        let mut n = vec![0; be.len().div_ceil(LIMB_BYTES)];
        limbs_from_be(&be, &mut n);
        let n0_inv = neg_inverse(*n.first()?);
        let r2 = r_squared(&n, n0_inv);
        Some(Modulus { n, n0_inv, r2, be })
    }

    /// The size in bytes (k in RFC 8017).
    pub(crate) fn len(&self) -> usize {
        self.be.len()
    }

    /// The size in bits.
    pub(crate) fn bits(&self) -> usize {
        bit_length(&self.n)
    }

    /// The modulus as minimal big-endian bytes.
    pub(crate) fn to_be_bytes(&self) -> &[u8] {
        &self.be
    }

    /// `base^e mod n` as big-endian bytes, exactly [`Modulus::len`] long. `None` unless `base`
    /// is exactly that long and below n, and `e` is odd.
    pub(crate) fn pow(&self, base: &[u8], e: u64) -> Option<Vec<u8>> {
        // Equal-length big-endian byte strings compare like the numbers they encode.
        if base.len() != self.len() || base >= self.be.as_slice() || e & 1 == 0 {
            return None;
        }
        let limbs = self.n.len();
        let mut a = vec![0; limbs];
        limbs_from_be(base, &mut a);
        let result = if e == 1 {
            a
        } else {
            let mut a_mont = vec![0; limbs];
            self.mont_mul(&a, &self.r2, &mut a_mont);
            let mut x = a_mont.clone();
            let mut t = vec![0; limbs];
            // Left to right over the bits below the top one, the last (set: e is odd) apart.
            let top = u64::BITS - 1 - e.leading_zeros();
            for bit in (1..top).rev() {
                self.mont_mul(&x, &x, &mut t);
                if (e >> bit) & 1 == 1 {
                    self.mont_mul(&t, &a_mont, &mut x);
                } else {
                    std::mem::swap(&mut x, &mut t);
                }
            }
            // The last bit: square, then multiply by `a` itself rather than `a * R`, which
            // leaves Montgomery form at no cost: (x^2 / R) * a / R = base^e when x = base^j * R.
            self.mont_mul(&x, &x, &mut t);
            self.mont_mul(&t, &a, &mut x);
            x
        };
        let mut out = vec![0u8; self.len()];
        limbs_to_be(&result, &mut out);
        Some(out)
    }

    /// `out = a * b / R mod n`, for `a, b < n`.
    fn mont_mul(&self, a: &[Limb], b: &[Limb], out: &mut [Limb]) {
        mont_mul(&self.n, self.n0_inv, a, b, out);
    }
}

impl std::fmt::Debug for Modulus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Modulus({} bits)", self.bits())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::BigUint;
    use wasm_bindgen_test::wasm_bindgen_test;

    /// xorshift64*: reproducible "random" numbers.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| (self.next() >> 32) as u8).collect()
        }
    }

    fn reference(base: &[u8], e: u64, n: &[u8]) -> Vec<u8> {
        let value = BigUint::from_bytes_be(base).modpow(&BigUint::from(e), &BigUint::from_bytes_be(n));
        let bytes = value.to_bytes_be();
        let mut out = vec![0u8; n.len() - bytes.len()];
        out.extend_from_slice(&bytes);
        out
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn constants() {
        let n = Modulus::new(&[0, 0, 0x01, 0x00, 0x01]).unwrap();
        assert_eq!((n.len(), n.bits(), n.to_be_bytes()), (3, 17, &[1u8, 0, 1][..]));
        assert!(Modulus::new(&[]).is_none());
        assert!(Modulus::new(&[0, 0]).is_none());
        assert!(Modulus::new(&[0, 1]).is_none());
        assert!(Modulus::new(&[1, 0]).is_none());
        assert!(Modulus::new(&[3]).is_some());
        assert_eq!(format!("{n:?}"), "Modulus(17 bits)");
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn small_known_answers() {
        // 2^65537 mod 3233 (the RFC 3447-era textbook key n = 61 * 53).
        let n = Modulus::new(&3233u16.to_be_bytes()).unwrap();
        for (base, e) in [(65u16, 17u64), (2, 65537), (3232, 3), (0, 5), (1, 7), (123, 1)] {
            let expected = reference(&base.to_be_bytes(), e, &3233u16.to_be_bytes());
            assert_eq!(n.pow(&base.to_be_bytes(), e).unwrap(), expected, "{base}^{e}");
        }
        assert_eq!(n.pow(&65u16.to_be_bytes(), 17).unwrap(), 2790u16.to_be_bytes());
        // Out of range, wrong length, even exponent.
        assert!(n.pow(&3233u16.to_be_bytes(), 3).is_none());
        assert!(n.pow(&[0xff, 0xff], 3).is_none());
        assert!(n.pow(&[5], 3).is_none());
        assert!(n.pow(&[0, 0, 5], 3).is_none());
        assert!(n.pow(&[0, 5], 4).is_none());
        assert!(n.pow(&[0, 5], 0).is_none());
    }

    /// Random odd moduli of many sizes (limb boundaries, RSA sizes, the 8192-bit maximum), random
    /// bases below them and random exponents, against `num-bigint-dig`'s `modpow`.
    #[wasm_bindgen_test(unsupported = test)]
    fn agrees_with_num_bigint() {
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let mut sizes: Vec<usize> = (1..=40).collect();
        sizes.extend([63, 64, 65, 127, 128, 129, 255, 256, 257, 384, 511, 512, 513, 1024]);
        for bytes in sizes {
            for round in 0..4 {
                let mut n = rng.bytes(bytes);
                let Some(first) = n.first_mut() else { continue };
                if round % 2 == 0 {
                    *first |= 0x80;
                } else if *first == 0 {
                    *first = 1;
                }
                if let Some(last) = n.last_mut() {
                    *last |= 1;
                }
                if n == [1] {
                    continue;
                }
                let modulus = Modulus::new(&n).unwrap();
                let mut base = rng.bytes(bytes);
                if let Some(b) = base.first_mut() {
                    *b %= n[0];
                }
                // Long exponents only for the smaller moduli: `modpow` is slow in a debug build.
                let e = match round {
                    0 => 65537,
                    1 => 3,
                    2 if bytes <= 64 => rng.next() | 1,
                    _ => (rng.next() >> 31) | 1,
                };
                assert_eq!(
                    modulus.pow(&base, e).unwrap(),
                    reference(&base, e, &n),
                    "{bytes} bytes, e = {e}"
                );
            }
        }
        // Bases at the edges: 0, 1, n - 1 (and (n - 1)^odd = n - 1), n - 2.
        for bytes in [256, 257, 512, 1024] {
            let mut n = rng.bytes(bytes);
            n[0] |= 0x80;
            n[bytes - 1] |= 1;
            let modulus = Modulus::new(&n).unwrap();
            let mut one = vec![0u8; bytes];
            one[bytes - 1] = 1;
            let mut n_minus_1 = n.clone();
            n_minus_1[bytes - 1] -= 1;
            let mut n_minus_2 = n_minus_1.clone();
            n_minus_2[bytes - 1] -= 1;
            assert_eq!(modulus.pow(&vec![0; bytes], 65537).unwrap(), vec![0; bytes]);
            assert_eq!(modulus.pow(&one, 65537).unwrap(), one);
            assert_eq!(modulus.pow(&n_minus_1, 65537).unwrap(), n_minus_1);
            assert_eq!(
                modulus.pow(&n_minus_2, 65537).unwrap(),
                reference(&n_minus_2, 65537, &n)
            );
            assert!(modulus.pow(&n, 65537).is_none());
        }
    }
}
