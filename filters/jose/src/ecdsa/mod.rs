//! ECDSA signature verification (FIPS 186-4 section 6.4, SEC 1 section 4.1.4) over P-256 with
//! SHA-256 and P-384 with SHA-384, as JWS uses them (RFC 7518 section 3.4): public key only.
//!
//! Only public values pass through here (keys, signatures, messages), so nothing tries to be
//! constant time. R = u1 G + u2 Q is computed in Jacobian coordinates by interleaved NAF over
//! affine tables of odd multiples: G's built once per process, Q's once per key. x(R) is compared
//! with r without leaving Jacobian coordinates (r Z^2 = X), which saves a field inversion.

mod field;
mod point;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

use std::sync::OnceLock;

use shared::HashAlg;

use crate::bignum::{add_in_place, less_than, limbs_from_be, sub_in_place};
use crate::rsassa::digest;
use field::{is_zero, Elem, Field, MAX_LIMBS};
use point::{mul_add, odd_multiples, Affine};

/// The group orders n of P-256 and P-384 (FIPS 186-4 D.1.2), big-endian.
pub(crate) const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa,
    0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
pub(crate) const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0,
    0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];

/// The field primes p, the b of y^2 = x^3 - 3x + b and the base points G (FIPS 186-4 D.1.2).
const P256_PRIME: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
];
const P256_B: [u8; 32] = [
    0x5a, 0xc6, 0x35, 0xd8, 0xaa, 0x3a, 0x93, 0xe7, 0xb3, 0xeb, 0xbd, 0x55, 0x76, 0x98, 0x86, 0xbc, 0x65, 0x1d, 0x06,
    0xb0, 0xcc, 0x53, 0xb0, 0xf6, 0x3b, 0xce, 0x3c, 0x3e, 0x27, 0xd2, 0x60, 0x4b,
];
const P256_GX: [u8; 32] = [
    0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4, 0x40, 0xf2, 0x77, 0x03, 0x7d,
    0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45, 0xd8, 0x98, 0xc2, 0x96,
];
const P256_GY: [u8; 32] = [
    0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f, 0x9e, 0x16, 0x2b, 0xce, 0x33,
    0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68, 0x37, 0xbf, 0x51, 0xf5,
];
const P384_PRIME: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff,
];
const P384_B: [u8; 48] = [
    0xb3, 0x31, 0x2f, 0xa7, 0xe2, 0x3e, 0xe7, 0xe4, 0x98, 0x8e, 0x05, 0x6b, 0xe3, 0xf8, 0x2d, 0x19, 0x18, 0x1d, 0x9c,
    0x6e, 0xfe, 0x81, 0x41, 0x12, 0x03, 0x14, 0x08, 0x8f, 0x50, 0x13, 0x87, 0x5a, 0xc6, 0x56, 0x39, 0x8d, 0x8a, 0x2e,
    0xd1, 0x9d, 0x2a, 0x85, 0xc8, 0xed, 0xd3, 0xec, 0x2a, 0xef,
];
const P384_GX: [u8; 48] = [
    0xaa, 0x87, 0xca, 0x22, 0xbe, 0x8b, 0x05, 0x37, 0x8e, 0xb1, 0xc7, 0x1e, 0xf3, 0x20, 0xad, 0x74, 0x6e, 0x1d, 0x3b,
    0x62, 0x8b, 0xa7, 0x9b, 0x98, 0x59, 0xf7, 0x41, 0xe0, 0x82, 0x54, 0x2a, 0x38, 0x55, 0x02, 0xf2, 0x5d, 0xbf, 0x55,
    0x29, 0x6c, 0x3a, 0x54, 0x5e, 0x38, 0x72, 0x76, 0x0a, 0xb7,
];
const P384_GY: [u8; 48] = [
    0x36, 0x17, 0xde, 0x4a, 0x96, 0x26, 0x2c, 0x6f, 0x5d, 0x9e, 0x98, 0xbf, 0x92, 0x92, 0xdc, 0x29, 0xf8, 0xf4, 0x1d,
    0xbd, 0x28, 0x9a, 0x14, 0x7c, 0xe9, 0xda, 0x31, 0x13, 0xb5, 0xf0, 0xb8, 0xc0, 0x0a, 0x60, 0xb1, 0xce, 0x1d, 0x7e,
    0x81, 0x9d, 0x7a, 0x43, 0x1d, 0x7c, 0x90, 0xea, 0x0e, 0x5f,
];

/// Table sizes, 2^(w - 2) points for a NAF of width w: 7 for G (a wider window, fewer additions;
/// the table is shared), 5 for Q (the table is per key, built when the key is parsed).
const G_TABLE: usize = 32;
const Q_TABLE: usize = 8;

struct Params {
    name: &'static str,
    hash: HashAlg,
    p: &'static [u8],
    n: &'static [u8],
    b: &'static [u8],
    gx: &'static [u8],
    gy: &'static [u8],
}

/// A curve ready for arithmetic.
pub(crate) struct Curve {
    name: &'static str,
    hash: HashAlg,
    p: Field,
    n: Field,
    /// b, in Montgomery form.
    b: Elem,
    /// [G, 3G, 5G, ...].
    g_table: [Affine; G_TABLE],
}

impl Curve {
    fn new(params: &Params) -> Option<Curve> {
        let p = Field::new(params.p)?;
        let n = Field::new(params.n)?;
        let b = p.to_mont(&p.parse(params.b)?);
        let g = Affine {
            x: p.to_mont(&p.parse(params.gx)?),
            y: p.to_mont(&p.parse(params.gy)?),
        };
        let g_table = odd_multiples(&p, &g);
        Some(Curve {
            name: params.name,
            hash: params.hash,
            p,
            n,
            b,
            g_table,
        })
    }

    /// Whether the affine point is on the curve.
    fn contains(&self, point: &Affine) -> bool {
        let f = &self.p;
        let x3 = f.mul(&f.square(&point.x), &point.x);
        let three_x = f.add(&f.double(&point.x), &point.x);
        f.square(&point.y) == f.add(&f.sub(&x3, &three_x), &self.b)
    }
}

fn p256() -> Option<&'static Curve> {
    static CURVE: OnceLock<Option<Curve>> = OnceLock::new();
    CURVE
        .get_or_init(|| {
            Curve::new(&Params {
                name: "P-256",
                hash: HashAlg::Sha256,
                p: &P256_PRIME,
                n: &P256_ORDER,
                b: &P256_B,
                gx: &P256_GX,
                gy: &P256_GY,
            })
        })
        .as_ref()
}

fn p384() -> Option<&'static Curve> {
    static CURVE: OnceLock<Option<Curve>> = OnceLock::new();
    CURVE
        .get_or_init(|| {
            Curve::new(&Params {
                name: "P-384",
                hash: HashAlg::Sha384,
                p: &P384_PRIME,
                n: &P384_ORDER,
                b: &P384_B,
                gx: &P384_GX,
                gy: &P384_GY,
            })
        })
        .as_ref()
}

/// An ECDSA public key Q, with its table of odd multiples.
#[derive(Clone)]
pub(crate) struct PublicKey {
    curve: &'static Curve,
    /// [Q, 3Q, 5Q, ...].
    q_table: Box<[Affine; Q_TABLE]>,
}

impl PublicKey {
    /// A P-256 key from its uncompressed SEC1 encoding (see [`PublicKey::new`]).
    pub(crate) fn p256(sec1: &[u8]) -> Option<PublicKey> {
        PublicKey::new(p256()?, sec1)
    }

    /// A P-384 key from its uncompressed SEC1 encoding (see [`PublicKey::new`]).
    pub(crate) fn p384(sec1: &[u8]) -> Option<PublicKey> {
        PublicKey::new(p384()?, sec1)
    }

    /// From `04 || x || y` (SEC 1 section 2.3.4), coordinates as long as p. `None` unless both
    /// are below p and the point is on the curve (the point at infinity has no such encoding;
    /// nor a compressed point, which no JWK holds).
    fn new(curve: &'static Curve, sec1: &[u8]) -> Option<PublicKey> {
        let (&0x04, coordinates) = sec1.split_first()? else {
            return None;
        };
        let size = curve.p.size();
        if coordinates.len() != 2 * size {
            return None;
        }
        let (x, y) = coordinates.split_at(size);
        let f = &curve.p;
        let q = Affine {
            x: f.to_mont(&f.parse(x)?),
            y: f.to_mont(&f.parse(y)?),
        };
        if !curve.contains(&q) {
            return None;
        }
        Some(PublicKey {
            curve,
            q_table: Box::new(odd_multiples(f, &q)),
        })
    }

    /// Whether `signature`, the JWS `r || s` (each as long as n), is valid for `message`.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let curve = self.curve;
        let (n, p) = (&curve.n, &curve.p);
        let size = n.size();
        if signature.len() != 2 * size {
            return false;
        }
        let (r, s) = signature.split_at(size);
        let (Some(r), Some(s)) = (n.parse(r), n.parse(s)) else {
            return false;
        };
        if is_zero(&r) || is_zero(&s) {
            return false;
        }
        // The hash is as long as n here: e is all of it, below 2^bits(n) < 2n.
        let mut e = [0; MAX_LIMBS];
        limbs_from_be(&digest(curve.hash, &[message]), &mut e);
        if !less_than(&e, n.modulus()) {
            sub_in_place(&mut e, n.modulus());
        }
        // w = s^-1 (times R); multiplying a plain integer by it gives a plain product.
        let w = n.invert(&n.to_mont(&s));
        let u1 = n.mul(&e, &w);
        let u2 = n.mul(&r, &w);
        let sum = mul_add(p, &u1, &curve.g_table, &u2, self.q_table.as_ref());
        if sum.is_infinity() {
            return false;
        }
        // x(R) = X / Z^2 is below p < 2n, so x(R) mod n = r means x(R) = r or x(R) = r + n.
        let z2 = p.square(&sum.z);
        let is_x = |candidate: &Elem| p.mul(&p.to_mont(candidate), &z2) == sum.x;
        let mut r_plus_n = r;
        let overflow = add_in_place(&mut r_plus_n, n.modulus());
        is_x(&r) || (!overflow && less_than(&r_plus_n, p.modulus()) && is_x(&r_plus_n))
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EcPublicKey({})", self.curve.name)
    }
}
