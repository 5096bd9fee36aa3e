//! Multi-limb unsigned integers and Montgomery multiplication (CIOS: the product and the
//! reduction interleaved, one pass per limb of the first factor), shared by `rsassa` and `ecdsa`.
//!
//! Only public values pass through here (signatures, keys, hashes), so nothing tries to be
//! constant time. Limbs are little-endian. On wasm32 they are 32 bits wide, so each limb product
//! is one native `i64.mul`; elsewhere 64 bits, with `u128` products (what the hardware has). A
//! wasm32 `u64 x u64 -> u128` is a call to `__multi3`: 64-bit limbs made a 2048-bit RS256 check
//! take 160 us under V8 instead of 80 us.

#[cfg(target_arch = "wasm32")]
pub(crate) type Limb = u32;
#[cfg(target_arch = "wasm32")]
type Wide = u64;
#[cfg(not(target_arch = "wasm32"))]
pub(crate) type Limb = u64;
#[cfg(not(target_arch = "wasm32"))]
type Wide = u128;

pub(crate) const LIMB_BITS: u32 = Limb::BITS;
pub(crate) const LIMB_BYTES: usize = (Limb::BITS / 8) as usize;

/// -x^-1 mod 2^LIMB_BITS for odd x, by Newton's iteration: y = x is x^-1 modulo 2^3, and each
/// step y * (2 - x * y) doubles the bits that are right.
pub(crate) fn neg_inverse(x: Limb) -> Limb {
    let mut y = x;
    for _ in 0..6 {
        y = y.wrapping_mul((2 as Limb).wrapping_sub(x.wrapping_mul(y)));
    }
    y.wrapping_neg()
}

/// Big-endian bytes into the little-endian limbs `out`, zero above them (the value must fit).
pub(crate) fn limbs_from_be(bytes: &[u8], out: &mut [Limb]) {
    out.fill(0);
    for (limb, chunk) in out.iter_mut().zip(bytes.rchunks(LIMB_BYTES)) {
        *limb = chunk.iter().fold(0, |acc, &b| (acc << 8) | Limb::from(b));
    }
}

/// Little-endian limbs to exactly `out.len()` big-endian bytes (the value must fit).
pub(crate) fn limbs_to_be(limbs: &[Limb], out: &mut [u8]) {
    for (chunk, limb) in out.rchunks_mut(LIMB_BYTES).zip(limbs) {
        let bytes = limb.to_be_bytes();
        let skip = bytes.len() - chunk.len();
        for (dst, src) in chunk.iter_mut().zip(bytes.iter().skip(skip)) {
            *dst = *src;
        }
    }
}

/// The number of significant bits.
pub(crate) fn bit_length(x: &[Limb]) -> usize {
    let Some(top) = x.iter().rposition(|&limb| limb != 0) else {
        return 0;
    };
    let high = x.get(top).map_or(0, |&limb| LIMB_BITS - limb.leading_zeros());
    top * LIMB_BITS as usize + high as usize
}

/// Bit `i` of `x` (zero above it).
pub(crate) fn bit(x: &[Limb], i: usize) -> bool {
    x.get(i / LIMB_BITS as usize)
        .is_some_and(|&limb| (limb >> (i % LIMB_BITS as usize)) & 1 == 1)
}

/// `a < b`, both as many limbs.
pub(crate) fn less_than(a: &[Limb], b: &[Limb]) -> bool {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .find(|(x, y)| x != y)
        .is_some_and(|(x, y)| x < y)
}

/// `a += b` modulo 2^(LIMB_BITS * limbs), both as many limbs; the carry out.
pub(crate) fn add_in_place(a: &mut [Limb], b: &[Limb]) -> bool {
    let mut carry = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (s, c1) = x.overflowing_add(y);
        let (s, c2) = s.overflowing_add(Limb::from(carry));
        *x = s;
        carry = c1 || c2;
    }
    carry
}

/// `a -= b` modulo 2^(LIMB_BITS * limbs), both as many limbs; the borrow out.
pub(crate) fn sub_in_place(a: &mut [Limb], b: &[Limb]) -> bool {
    let mut borrow = false;
    for (x, &y) in a.iter_mut().zip(b) {
        let (d, b1) = x.overflowing_sub(y);
        let (d, b2) = d.overflowing_sub(Limb::from(borrow));
        *x = d;
        borrow = b1 || b2;
    }
    borrow
}

/// `out = a * b / R mod n` with R = 2^(LIMB_BITS * limbs), for an odd `n`, `n0_inv` =
/// -n^-1 mod 2^LIMB_BITS and `a, b < n`, all as many limbs as `n`; `out < n`.
pub(crate) fn mont_mul(n: &[Limb], n0_inv: Limb, a: &[Limb], b: &[Limb], out: &mut [Limb]) {
    out.fill(0);
    let (Some((&b0, b_rest)), Some((&n0, n_rest))) = (b.split_first(), n.split_first()) else {
        return;
    };
    // `out` with `top` above it holds the running sum, always below 2n.
    let mut top: Limb = 0;
    for &ai in a {
        let Some((t0, t_rest)) = out.split_first_mut() else {
            return;
        };
        // Limb 0: add ai * b0, then pick m so that adding m * n clears the limb.
        let s = Wide::from(*t0) + Wide::from(ai) * Wide::from(b0);
        let m = (s as Limb).wrapping_mul(n0_inv);
        let mut carry_ab = s >> LIMB_BITS;
        let mut carry_mn = (Wide::from(s as Limb) + Wide::from(m) * Wide::from(n0)) >> LIMB_BITS;
        // The other limbs, each stored one place lower: the division by 2^LIMB_BITS.
        let mut below = t0;
        for ((tj, &bj), &nj) in t_rest.iter_mut().zip(b_rest).zip(n_rest) {
            let s = Wide::from(*tj) + Wide::from(ai) * Wide::from(bj) + carry_ab;
            carry_ab = s >> LIMB_BITS;
            let u = Wide::from(s as Limb) + Wide::from(m) * Wide::from(nj) + carry_mn;
            carry_mn = u >> LIMB_BITS;
            *below = u as Limb;
            below = tj;
        }
        let s = Wide::from(top) + carry_ab + carry_mn;
        *below = s as Limb;
        top = (s >> LIMB_BITS) as Limb;
    }
    if top != 0 || !less_than(out, n) {
        sub_in_place(out, n);
    }
}

/// R^2 mod n for an odd n > 1 (R as in [`mont_mul`]). From 2^(bits - 1), below n, doublings
/// modulo n reach R mod n, then 2^d * R mod n; each Montgomery squaring then doubles the power of
/// two: (2^j R)^2 / R = 2^2j R. With log2(R) = d * 2^s, s squarings end at 2^log2(R) * R = R^2.
pub(crate) fn r_squared(n: &[Limb], n0_inv: Limb) -> Vec<Limb> {
    let r_bits = n.len() * LIMB_BITS as usize;
    let bits = bit_length(n);
    let mut x = vec![0; n.len()];
    if let Some(limb) = x.get_mut((bits - 1) / LIMB_BITS as usize) {
        *limb = 1 << ((bits - 1) % LIMB_BITS as usize);
    }
    // A doubling costs about 2 * limbs, a squaring 2 * limbs^2, and log2(R) = 32 or 64 limbs:
    // 4 squarings (16 or 32 fewer doublings per limb) come close to the cheapest mix.
    let squarings = r_bits.trailing_zeros().min(4);
    let d = r_bits >> squarings;
    for _ in 0..(r_bits - bits + 1) + d {
        let carry = x.iter_mut().fold(0, |carry, limb| {
            let next = *limb >> (LIMB_BITS - 1);
            *limb = (*limb << 1) | carry;
            next
        });
        if carry != 0 || !less_than(&x, n) {
            sub_in_place(&mut x, n);
        }
    }
    let mut t = vec![0; n.len()];
    for _ in 0..squarings {
        mont_mul(n, n0_inv, &x, &x, &mut t);
        std::mem::swap(&mut x, &mut t);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn helpers() {
        for x in [1 as Limb, 3, 5, 0x8000_0001, Limb::MAX, 0x1234_5679] {
            assert_eq!(x.wrapping_mul(neg_inverse(x)), Limb::MAX, "{x}");
        }
        let mut x = [0 as Limb; 3];
        limbs_from_be(&[0x01, 0x02, 0x03], &mut x);
        assert_eq!(x, [0x01_02_03, 0, 0]);
        assert_eq!(bit_length(&x), 17);
        assert!(bit(&x, 0) && !bit(&x, 2) && bit(&x, 16) && !bit(&x, 17) && !bit(&x, 1000));
        assert_eq!(bit_length(&[0, 0]), 0);
        let mut be = [0u8; 4];
        limbs_to_be(&x, &mut be);
        assert_eq!(be, [0, 1, 2, 3]);

        let max = [Limb::MAX; 2];
        let mut a = max;
        assert!(add_in_place(&mut a, &[1, 0]));
        assert_eq!(a, [0, 0]);
        assert!(sub_in_place(&mut a, &[1, 0]));
        assert_eq!(a, max);
        assert!(!add_in_place(&mut a, &[0, 0]) && !sub_in_place(&mut a, &max));
        assert!(less_than(&[5, 1], &[4, 2]) && !less_than(&[4, 2], &[4, 2]) && !less_than(&[4, 3], &[9, 2]));
    }
}
