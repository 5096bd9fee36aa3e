//! Points of a short Weierstrass curve y^2 = x^3 - 3x + b over the field `f` (Montgomery form),
//! and u1 * G + u2 * Q by interleaved width-w NAF over tables of odd multiples.
//!
//! The additions handle every case an attacker's signature can bring about: either operand at
//! infinity, equal operands (doubled) and opposite ones (infinity).

use super::field::{is_zero, Elem, Field, MAX_LIMBS};
use crate::bignum::{Limb, LIMB_BITS};

/// (x, y), never the point at infinity.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Affine {
    pub(crate) x: Elem,
    pub(crate) y: Elem,
}

/// (X / Z^2, Y / Z^3); Z = 0 is the point at infinity.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Jacobian {
    pub(crate) x: Elem,
    pub(crate) y: Elem,
    pub(crate) z: Elem,
}

impl Jacobian {
    pub(crate) const INFINITY: Jacobian = Jacobian {
        x: [0; MAX_LIMBS],
        y: [0; MAX_LIMBS],
        z: [0; MAX_LIMBS],
    };

    pub(crate) fn is_infinity(&self) -> bool {
        is_zero(&self.z)
    }

    /// 2P, "dbl-2001-b" of the Explicit-Formulas Database (a = -3): 3M + 5S. Infinity stays
    /// infinity (Z3 = 2 Y Z); no point of a prime-order curve has Y = 0.
    pub(crate) fn double(&self, f: &Field) -> Jacobian {
        let delta = f.square(&self.z);
        let gamma = f.square(&self.y);
        let beta4 = f.double(&f.double(&f.mul(&self.x, &gamma)));
        let t = f.mul(&f.sub(&self.x, &delta), &f.add(&self.x, &delta));
        let alpha = f.add(&f.double(&t), &t);
        let x = f.sub(&f.square(&alpha), &f.double(&beta4));
        let gamma_sq8 = f.double(&f.double(&f.double(&f.square(&gamma))));
        let y = f.sub(&f.mul(&alpha, &f.sub(&beta4, &x)), &gamma_sq8);
        let z = f.double(&f.mul(&self.y, &self.z));
        Jacobian { x, y, z }
    }

    /// P + A, "madd-2004-hmv" (Z2 = 1): 8M + 3S.
    pub(crate) fn add_affine(&self, f: &Field, a: &Affine) -> Jacobian {
        if self.is_infinity() {
            return Jacobian {
                x: a.x,
                y: a.y,
                z: f.one(),
            };
        }
        let z1z1 = f.square(&self.z);
        let h = f.sub(&f.mul(&a.x, &z1z1), &self.x);
        let r = f.sub(&f.mul(&a.y, &f.mul(&self.z, &z1z1)), &self.y);
        if is_zero(&h) {
            // The same x: the same point, or its negation.
            return if is_zero(&r) {
                self.double(f)
            } else {
                Jacobian::INFINITY
            };
        }
        let hh = f.square(&h);
        let hhh = f.mul(&hh, &h);
        let v = f.mul(&self.x, &hh);
        let x = f.sub(&f.sub(&f.square(&r), &hhh), &f.double(&v));
        let y = f.sub(&f.mul(&r, &f.sub(&v, &x)), &f.mul(&self.y, &hhh));
        let z = f.mul(&self.z, &h);
        Jacobian { x, y, z }
    }

    /// P + d * T for a NAF digit d, with `table` = [T, 3T, 5T, ...].
    fn add_digit(&self, f: &Field, digit: i8, table: &[Affine]) -> Jacobian {
        let Some(multiple) = table.get(usize::from(digit.unsigned_abs() / 2)) else {
            return *self;
        };
        match digit {
            0 => *self,
            1.. => self.add_affine(f, multiple),
            _ => self.add_affine(
                f,
                &Affine {
                    x: multiple.x,
                    y: f.neg(&multiple.y),
                },
            ),
        }
    }
}

/// [A, 3A, 5A, ..., (2T - 1)A], for the digits of a width-w NAF with T = 2^(w - 2). A must not
/// have small order (no point of a prime-order curve has).
pub(crate) fn odd_multiples<const T: usize>(f: &Field, a: &Affine) -> [Affine; T] {
    let mut multiples = [Jacobian::INFINITY; T];
    let mut sum = Jacobian::INFINITY.add_affine(f, a);
    for (i, slot) in multiples.iter_mut().enumerate() {
        if i > 0 {
            sum = sum.add_affine(f, a).add_affine(f, a);
        }
        *slot = sum;
    }
    to_affine(f, &multiples)
}

/// Jacobian points (none at infinity) to affine with a single inversion (Montgomery's trick:
/// invert the product of every Z, then peel the factors off from the last).
fn to_affine<const T: usize>(f: &Field, points: &[Jacobian; T]) -> [Affine; T] {
    // Before each point, the product of the Z of the points before it.
    let mut before = [f.one(); T];
    let mut product = f.one();
    for (point, slot) in points.iter().zip(before.iter_mut()) {
        *slot = product;
        product = f.mul(&product, &point.z);
    }
    let mut inverse = f.invert(&product);
    let mut out = [Affine {
        x: [0; MAX_LIMBS],
        y: [0; MAX_LIMBS],
    }; T];
    for ((point, before), slot) in points.iter().zip(&before).zip(out.iter_mut()).rev() {
        // `inverse` is now 1 / (Z_0 ... Z_i).
        let z_inv = f.mul(&inverse, before);
        inverse = f.mul(&inverse, &point.z);
        let z_inv2 = f.square(&z_inv);
        *slot = Affine {
            x: f.mul(&point.x, &z_inv2),
            y: f.mul(&point.y, &f.mul(&z_inv2, &z_inv)),
        };
    }
    out
}

/// Room for the NAF of a 384-bit scalar with windows up to 8 bits wide.
const MAX_DIGITS: usize = 384 + 8;

/// u1 * G + u2 * Q, for plain scalars, from `g_table` = [G, 3G, ..] and `q_table` = [Q, 3Q, ..]
/// (lengths 2^(w - 2) for NAF widths w of at most 8).
pub(crate) fn mul_add(f: &Field, u1: &Elem, g_table: &[Affine], u2: &Elem, q_table: &[Affine]) -> Jacobian {
    let mut g_digits = [0; MAX_DIGITS];
    let mut q_digits = [0; MAX_DIGITS];
    let width = |table: &[Affine]| (table.len().trailing_zeros() as usize + 2).min(8);
    naf(u1, width(g_table), &mut g_digits);
    naf(u2, width(q_table), &mut q_digits);
    let digits = g_digits.iter().zip(&q_digits);
    let top = digits.clone().rposition(|(&g, &q)| g != 0 || q != 0).unwrap_or(0);
    let mut sum = Jacobian::INFINITY;
    for (&g, &q) in digits.take(top + 1).rev() {
        sum = sum.double(f).add_digit(f, g, g_table).add_digit(f, q, q_table);
    }
    sum
}

/// The width-`w` NAF of `k` into `out`, least significant first: k = sum out[i] 2^i, every digit
/// zero or odd and below 2^(w - 1) in magnitude, at most one non-zero in any w consecutive.
/// `out` starts zeroed and has room for bit_length(k) + w digits.
pub(crate) fn naf(k: &[Limb], w: usize, out: &mut [i8]) {
    let width = 1i16 << w;
    let mut carry = 0;
    let mut pos = 0;
    while pos < out.len() {
        let window = carry + window_at(k, pos, w);
        if window & 1 == 0 {
            // The carry moves up a bit (the bit of k here was 1) or was zero.
            pos += 1;
            continue;
        }
        let digit = if window < width / 2 {
            carry = 0;
            window
        } else {
            carry = 1;
            window - width
        };
        if let Some(slot) = out.get_mut(pos) {
            *slot = digit as i8;
        }
        pos += w;
    }
}

/// Bits pos .. pos + w of `k` (zero above it), for w < LIMB_BITS.
fn window_at(k: &[Limb], pos: usize, w: usize) -> i16 {
    let (index, shift) = (pos / LIMB_BITS as usize, pos % LIMB_BITS as usize);
    let low = k.get(index).map_or(0, |&limb| limb >> shift);
    let high = match k.get(index + 1) {
        Some(&next) if shift > 0 => next << (LIMB_BITS as usize - shift),
        _ => 0,
    };
    ((low | high) & ((1 << w) - 1)) as i16
}
