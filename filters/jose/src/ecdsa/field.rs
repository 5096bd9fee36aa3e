//! Arithmetic modulo an odd prime m: the field of coordinates (m = p) and of scalars (m = n).
//!
//! Elements are arrays of [`MAX_LIMBS`] limbs, room for P-384; a P-256 element leaves its top
//! limbs zero, and the arithmetic runs over the modulus's limbs only (R = 2^(LIMB_BITS * limbs)).
//! One type for both curves keeps one copy of the code: generic over the limb count, `ecdsa` took
//! twice the room in jwt_auth.wasm (P-256 checks were 10% faster). Elements are kept fully
//! reduced, so equality and zero tests compare limbs. Most are in Montgomery form (x R mod m);
//! [`Field::parse`] gives and [`Field::to_mont`] takes a plain integer.

use crate::bignum::{
    bit, bit_length, less_than, limbs_from_be, mont_mul, neg_inverse, r_squared, sub_in_place, Limb, LIMB_BYTES,
};

/// Limbs in a P-384 element.
pub(crate) const MAX_LIMBS: usize = 48 / LIMB_BYTES;

pub(crate) type Elem = [Limb; MAX_LIMBS];

#[derive(Clone)]
pub(crate) struct Field {
    m: Elem,
    /// The limbs of m.
    len: usize,
    /// -m^-1 mod 2^LIMB_BITS.
    m0_inv: Limb,
    /// R^2 mod m: multiplying by it enters Montgomery form.
    r2: Elem,
    /// R mod m, the Montgomery form of 1.
    one: Elem,
    /// m - 2: the exponent of inversion (Fermat).
    m_minus_2: Elem,
}

impl Field {
    /// From the big-endian modulus, a whole number of limbs. `None` unless it is odd, above 2
    /// and at most [`MAX_LIMBS`] limbs long; [`Field::invert`] also needs it prime.
    pub(crate) fn new(modulus: &[u8]) -> Option<Field> {
        let len = modulus.len() / LIMB_BYTES;
        if !modulus.len().is_multiple_of(LIMB_BYTES) || len > MAX_LIMBS {
            return None;
        }
        let mut m = [0; MAX_LIMBS];
        limbs_from_be(modulus, &mut m);
        let low = *m.first()?;
        if low & 1 == 0 || bit_length(&m) < 2 {
            return None;
        }
        let m0_inv = neg_inverse(low);
        let mut r2 = [0; MAX_LIMBS];
        for (limb, value) in r2.iter_mut().zip(r_squared(m.get(..len)?, m0_inv)) {
            *limb = value;
        }
        let mut m_minus_2 = m;
        sub_in_place(&mut m_minus_2, &small(2));
        let mut field = Field {
            m,
            len,
            m0_inv,
            r2,
            one: [0; MAX_LIMBS],
            m_minus_2,
        };
        field.one = field.to_mont(&small(1));
        Some(field)
    }

    /// The modulus, a plain integer.
    pub(crate) fn modulus(&self) -> &Elem {
        &self.m
    }

    /// The size of the modulus in bytes (a whole number of limbs).
    pub(crate) fn size(&self) -> usize {
        self.len * LIMB_BYTES
    }

    /// The limbs of `x` a number below m can use (the ones above are zero).
    fn low<'a>(&self, x: &'a Elem) -> &'a [Limb] {
        x.get(..self.len).unwrap_or(x)
    }

    /// The plain integer in `bytes` (big-endian, exactly [`Field::size`] long), if below m.
    pub(crate) fn parse(&self, bytes: &[u8]) -> Option<Elem> {
        if bytes.len() != self.size() {
            return None;
        }
        let mut x = [0; MAX_LIMBS];
        limbs_from_be(bytes, &mut x);
        less_than(&x, &self.m).then_some(x)
    }

    /// The Montgomery form of the plain `a < m`.
    pub(crate) fn to_mont(&self, a: &Elem) -> Elem {
        self.mul(a, &self.r2)
    }

    /// 1, in Montgomery form.
    pub(crate) fn one(&self) -> Elem {
        self.one
    }

    /// `a * b / R`: the product of Montgomery forms, or the plain product when one of them is
    /// plain.
    pub(crate) fn mul(&self, a: &Elem, b: &Elem) -> Elem {
        let mut out = [0; MAX_LIMBS];
        if let Some(low) = out.get_mut(..self.len) {
            mont_mul(self.low(&self.m), self.m0_inv, self.low(a), self.low(b), low);
        }
        out
    }

    pub(crate) fn square(&self, a: &Elem) -> Elem {
        self.mul(a, a)
    }

    pub(crate) fn add(&self, a: &Elem, b: &Elem) -> Elem {
        // a + b and a + b - m in one pass: the first if it is below m.
        let (mut sum, mut reduced) = ([0; MAX_LIMBS], [0; MAX_LIMBS]);
        let (mut carry, mut borrow) = (false, false);
        let limbs = self.low(a).iter().zip(self.low(b)).zip(self.low(&self.m));
        for ((s, r), ((&x, &y), &m)) in sum.iter_mut().zip(reduced.iter_mut()).zip(limbs) {
            let (t, c1) = x.overflowing_add(y);
            let (t, c2) = t.overflowing_add(Limb::from(carry));
            let (d, b1) = t.overflowing_sub(m);
            let (d, b2) = d.overflowing_sub(Limb::from(borrow));
            (*s, *r, carry, borrow) = (t, d, c1 || c2, b1 || b2);
        }
        if borrow && !carry {
            sum
        } else {
            reduced
        }
    }

    pub(crate) fn double(&self, a: &Elem) -> Elem {
        self.add(a, a)
    }

    pub(crate) fn sub(&self, a: &Elem, b: &Elem) -> Elem {
        // a - b and a - b + m in one pass: the second if the first went below zero.
        let (mut difference, mut raised) = ([0; MAX_LIMBS], [0; MAX_LIMBS]);
        let (mut borrow, mut carry) = (false, false);
        let limbs = self.low(a).iter().zip(self.low(b)).zip(self.low(&self.m));
        for ((d, r), ((&x, &y), &m)) in difference.iter_mut().zip(raised.iter_mut()).zip(limbs) {
            let (t, b1) = x.overflowing_sub(y);
            let (t, b2) = t.overflowing_sub(Limb::from(borrow));
            let (u, c1) = t.overflowing_add(m);
            let (u, c2) = u.overflowing_add(Limb::from(carry));
            (*d, *r, borrow, carry) = (t, u, b1 || b2, c1 || c2);
        }
        if borrow {
            raised
        } else {
            difference
        }
    }

    pub(crate) fn neg(&self, a: &Elem) -> Elem {
        self.sub(&[0; MAX_LIMBS], a)
    }

    /// a^-1 = a^(m - 2) (Fermat; m prime), Montgomery form in and out; 0 gives 0. Four bits
    /// at a time, from a table of a^0 .. a^15: about 100 products fewer than bit by bit.
    pub(crate) fn invert(&self, a: &Elem) -> Elem {
        let mut powers = [self.one; 16];
        let mut power = self.one;
        for slot in powers.iter_mut().skip(1) {
            power = self.mul(&power, a);
            *slot = power;
        }
        let mut x = self.one;
        for window in (0..bit_length(&self.m_minus_2).div_ceil(4)).rev() {
            let mut digit = 0;
            for i in (4 * window..4 * window + 4).rev() {
                x = self.square(&x);
                digit = (digit << 1) | usize::from(bit(&self.m_minus_2, i));
            }
            if let Some(power) = powers.get(digit).filter(|_| digit != 0) {
                x = self.mul(&x, power);
            }
        }
        x
    }
}

pub(crate) fn is_zero(a: &Elem) -> bool {
    a.iter().all(|&limb| limb == 0)
}

/// The plain integer `value`.
fn small(value: Limb) -> Elem {
    let mut x = [0; MAX_LIMBS];
    if let Some(low) = x.first_mut() {
        *low = value;
    }
    x
}
