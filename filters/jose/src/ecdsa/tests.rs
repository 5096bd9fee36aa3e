//! Known answers (RFC 6979, OpenSSL, Wycheproof), differential tests against the `p256` and
//! `p384` crates, crafted edge cases of the point arithmetic, and public-key decoding.

use super::point::{mul_add, naf, Jacobian};
use super::vectors::*;
use super::*;
use crate::bignum::limbs_to_be;
use crate::testdata::{unb64, TestRng};
use crate::{Jwks, Jwt};
use rsa::rand_core::RngCore;
use rsa::BigUint;
use serde_json::json;
use shared::NoHostCrypto;
use wasm_bindgen_test::wasm_bindgen_test;

/// Random keys per curve in the differential test: the curve crates are slow in a debug build
/// under wasm.
const ROUNDS: usize = if cfg!(target_arch = "wasm32") { 4 } else { 24 };

/// (Q, message, r || s) to the verdict, `None` if the key is refused.
type Verify = fn(&[u8], &[u8], &[u8]) -> Option<bool>;
/// (u1, u2, Q) to u1 G + u2 Q, `None` at infinity.
type MulAdd = fn(&[u8], &[u8], &[u8]) -> Option<Vec<u8>>;

/// One curve: our side, the curve crate's side, and its numbers. Points are SEC1 uncompressed,
/// scalars and signatures big-endian as long as the order.
struct Suite {
    name: &'static str,
    size: usize,
    order: &'static [u8],
    prime: &'static [u8],
    hash: fn(&[u8]) -> Vec<u8>,
    ours: Verify,
    theirs: Verify,
    our_mul_add: MulAdd,
    their_mul_add: MulAdd,
    /// The private key to the public one, if in range.
    their_public: fn(&[u8]) -> Option<Vec<u8>>,
    /// (private key, message) to the RFC 6979 signature.
    their_sign: fn(&[u8], &[u8]) -> Vec<u8>,
    /// x to a point with that x, if there is one.
    their_decompress: fn(&[u8]) -> Option<Vec<u8>>,
}

macro_rules! suite {
    ($krate:ident, $name:literal, $size:literal, $order:expr, $prime:expr, $hash:ty, $ours:expr, $curve:expr) => {{
        use $krate::ecdsa::signature::{Signer, Verifier};
        use $krate::ecdsa::{Signature, SigningKey, VerifyingKey};
        use $krate::elliptic_curve::sec1::{FromEncodedPoint, ToEncodedPoint};
        use $krate::elliptic_curve::PrimeField;
        use $krate::{AffinePoint, EncodedPoint, FieldBytes, ProjectivePoint, Scalar};
        fn point(sec1: &[u8]) -> Option<AffinePoint> {
            Option::from(AffinePoint::from_encoded_point(&EncodedPoint::from_bytes(sec1).ok()?))
        }
        fn scalar(bytes: &[u8]) -> Option<Scalar> {
            Option::from(Scalar::from_repr(FieldBytes::clone_from_slice(bytes)))
        }
        Suite {
            name: $name,
            size: $size,
            order: $order,
            prime: $prime,
            hash: |m| <$hash as sha2::Digest>::digest(m).to_vec(),
            ours: $ours,
            theirs: |q, m, s| {
                let key = VerifyingKey::from_sec1_bytes(q).ok()?;
                Some(Signature::from_slice(s).is_ok_and(|s| key.verify(m, &s).is_ok()))
            },
            our_mul_add: |u1, u2, q| our_mul_add($curve().unwrap(), u1, u2, q),
            their_mul_add: |u1, u2, q| {
                let sum = ProjectivePoint::GENERATOR * scalar(u1)? + ProjectivePoint::from(point(q)?) * scalar(u2)?;
                let sum = sum.to_affine().to_encoded_point(false);
                (!sum.is_identity()).then(|| sum.as_bytes().to_vec())
            },
            their_public: |d| {
                let key = SigningKey::from_slice(d).ok()?;
                Some(key.verifying_key().to_encoded_point(false).as_bytes().to_vec())
            },
            their_sign: |d, m| {
                let signature: Signature = SigningKey::from_slice(d).unwrap().sign(m);
                signature.to_bytes().to_vec()
            },
            their_decompress: |x| {
                let point = point(&[&[0x02], x].concat())?;
                Some(point.to_encoded_point(false).as_bytes().to_vec())
            },
        }
    }};
}

fn suites() -> [Suite; 2] {
    [
        suite!(
            p256,
            "P-256",
            32,
            &P256_ORDER,
            &P256_PRIME,
            sha2::Sha256,
            |q, m, s| PublicKey::p256(q).map(|key| key.verify(m, s)),
            p256
        ),
        suite!(
            p384,
            "P-384",
            48,
            &P384_ORDER,
            &P384_PRIME,
            sha2::Sha384,
            |q, m, s| PublicKey::p384(q).map(|key| key.verify(m, s)),
            p384
        ),
    ]
}

/// u1 G + u2 Q through our tables and [`mul_add`], as SEC1.
fn our_mul_add(curve: &'static Curve, u1: &[u8], u2: &[u8], q: &[u8]) -> Option<Vec<u8>> {
    let key = PublicKey::new(curve, q).unwrap();
    let (u1, u2) = (curve.n.parse(u1).unwrap(), curve.n.parse(u2).unwrap());
    encode(
        curve,
        &mul_add(&curve.p, &u1, &curve.g_table, &u2, key.q_table.as_ref()),
    )
}

fn encode(curve: &Curve, point: &Jacobian) -> Option<Vec<u8>> {
    if point.is_infinity() {
        return None;
    }
    let f = &curve.p;
    let z_inv = f.invert(&point.z);
    let z_inv2 = f.square(&z_inv);
    let mut one = [0; MAX_LIMBS];
    one[0] = 1;
    // Multiplying by a plain 1 leaves Montgomery form.
    let x = f.mul(&f.mul(&point.x, &z_inv2), &one);
    let y = f.mul(&f.mul(&point.y, &f.mul(&z_inv2, &z_inv)), &one);
    let size = f.size();
    let mut out = vec![0x04; 1 + 2 * size];
    limbs_to_be(&x, &mut out[1..=size]);
    limbs_to_be(&y, &mut out[1 + size..]);
    Some(out)
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn big(bytes: &[u8]) -> BigUint {
    BigUint::from_bytes_be(bytes)
}

/// `value` as exactly `size` big-endian bytes.
fn be(value: &BigUint, size: usize) -> Vec<u8> {
    let bytes = value.to_bytes_be();
    let mut out = vec![0u8; size - bytes.len()];
    out.extend_from_slice(&bytes);
    out
}

fn sec1(x: &[u8], y: &[u8]) -> Vec<u8> {
    [&[0x04], x, y].concat()
}

fn random(rng: &mut TestRng, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

/// A random private key and its public key.
fn random_key(suite: &Suite, rng: &mut TestRng) -> (Vec<u8>, Vec<u8>) {
    loop {
        let d = random(rng, suite.size);
        if let Some(q) = (suite.their_public)(&d) {
            return (d, q);
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn curve_constants_match_the_crates() {
    for suite in suites() {
        let one = be(&BigUint::from(1u8), suite.size);
        let g = (suite.their_public)(&one).unwrap();
        assert_eq!(
            (suite.our_mul_add)(&one, &[0; 48][..suite.size], &g),
            Some(g.clone()),
            "{}",
            suite.name
        );
        // n - 1 is in range, n is not: the private key n - 1 gives -G.
        let n = big(suite.order);
        let minus_g = (suite.their_public)(&be(&(&n - 1u8), suite.size)).unwrap();
        assert_eq!(minus_g[1..=suite.size], g[1..=suite.size]);
        assert!((suite.their_public)(suite.order).is_none());
        // p: every x below it with a point decodes, nothing from p up does (see key_decoding).
        assert!(big(suite.prime) > n);
    }
    assert_eq!(p256().unwrap().name, "P-256");
    assert_eq!(p384().unwrap().name, "P-384");
    assert_eq!(
        format!(
            "{:?}",
            PublicKey::p384(&(suites()[1].their_public)(&[7; 48]).unwrap()).unwrap()
        ),
        "EcPublicKey(P-384)"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn rfc_6979_known_answers() {
    for (suite, vector) in suites().iter().zip([&RFC6979_P256, &RFC6979_P384]) {
        let q = sec1(&hex(vector.ux), &hex(vector.uy));
        assert_eq!((suite.their_public)(&hex(vector.x)).unwrap(), q);
        for (message, signature) in vector.signatures {
            let signature = hex(signature);
            assert_eq!((suite.their_sign)(&hex(vector.x), message.as_bytes()), signature);
            assert_eq!((suite.ours)(&q, message.as_bytes(), &signature), Some(true));
            assert_eq!((suite.ours)(&q, b"other", &signature), Some(false));
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn openssl_known_answers() {
    for vector in OPENSSL {
        let jwks = Jwks::parse(
            json!({"keys": [{"kty": "EC", "crv": vector.crv, "x": vector.x, "y": vector.y}]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let key = &jwks.keys()[0];
        assert_eq!(key.spki_der().unwrap(), unb64(vector.spki));
        let jwt = Jwt::decode(vector.token.as_bytes(), 4096).unwrap();
        jwt.verify(key, &NoHostCrypto).unwrap();
        let (input, signature) = vector.token.rsplit_once('.').unwrap();
        let mut other = input.to_owned();
        other.push('x');
        let suite = &suites()[usize::from(vector.crv == "P-384")];
        let q = sec1(&unb64(vector.x), &unb64(vector.y));
        assert_eq!((suite.ours)(&q, other.as_bytes(), &unb64(signature)), Some(false));
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn wycheproof_vectors() {
    for (suite, groups) in suites().iter().zip([WYCHEPROOF_P256, WYCHEPROOF_P384]) {
        for group in groups {
            let q = sec1(&hex(group.x), &hex(group.y));
            for case in group.cases {
                let (message, signature) = (hex(case.msg), hex(case.sig));
                let ours = (suite.ours)(&q, &message, &signature).unwrap_or(false);
                assert_eq!(ours, case.valid, "{} #{} {}", suite.name, case.id, case.comment);
                let theirs = (suite.theirs)(&q, &message, &signature).unwrap_or(false);
                assert_eq!(theirs, case.valid, "{} #{} (crate)", suite.name, case.id);
            }
        }
    }
}

/// Random keys and messages: signatures of the crates are accepted, also with s replaced by
/// n - s; with a bit flipped anywhere, another key, or r and s at the edges of their range,
/// both sides give the same verdict.
#[wasm_bindgen_test(unsupported = test)]
fn agrees_with_the_curve_crates() {
    let rng = &mut TestRng(0xec_d5a0_0000_0001);
    for suite in suites() {
        let size = suite.size;
        let n = big(suite.order);
        let p = big(suite.prime);
        let edges: Vec<Vec<u8>> = [
            BigUint::from(0u8),
            BigUint::from(1u8),
            &n - 1u8,
            n.clone(),
            &n + 1u8,
            &p - 1u8,
            p.clone(),
            (BigUint::from(1u8) << (8 * size)) - 1u8,
        ]
        .iter()
        .map(|x| be(x, size))
        .collect();
        let (_, other_key) = random_key(&suite, rng);
        for round in 0..ROUNDS {
            let (d, q) = random_key(&suite, rng);
            let len = (rng.next_u32() % 200) as usize;
            let message = random(rng, len);
            let signature = (suite.their_sign)(&d, &message);
            assert_eq!(
                (suite.ours)(&q, &message, &signature),
                Some(true),
                "{} {round}",
                suite.name
            );

            let (r, s) = signature.split_at(size);
            let high_s = [r, &be(&(&n - big(s)), size)].concat();
            assert_eq!(
                (suite.ours)(&q, &message, &high_s),
                Some(true),
                "{} {round}",
                suite.name
            );
            assert_eq!((suite.theirs)(&q, &message, &high_s), Some(true));

            let mut cases = vec![(q.clone(), message.clone(), signature.clone())];
            for _ in 0..3 {
                let mut bad = signature.clone();
                let bit = rng.next_u32() as usize % (16 * size);
                bad[bit / 8] ^= 1 << (bit % 8);
                cases.push((q.clone(), message.clone(), bad));
            }
            let mut other_message = message.clone();
            if let Some(byte) = other_message.last_mut() {
                *byte ^= 0x80;
            } else {
                other_message.push(0);
            }
            cases.push((q.clone(), other_message, signature.clone()));
            let mut bad_key = q.clone();
            let bit = rng.next_u32() as usize % (16 * size);
            bad_key[1 + bit / 8] ^= 1 << (bit % 8);
            cases.push((bad_key, message.clone(), signature.clone()));
            cases.push((other_key.clone(), message.clone(), signature.clone()));
            if round < 2 {
                for edge in &edges {
                    cases.push((q.clone(), message.clone(), [edge, s].concat()));
                    cases.push((q.clone(), message.clone(), [r, edge].concat()));
                }
            }
            for (i, (q, message, signature)) in cases.iter().enumerate() {
                assert_eq!(
                    (suite.ours)(q, message, signature),
                    (suite.theirs)(q, message, signature),
                    "{} round {round} case {i}",
                    suite.name
                );
            }
        }
    }
}

/// u1 G + u2 Q with Q = G or Q = -G and u1 = u2, so that the very first addition meets an equal
/// point (doubling) or an opposite one (infinity); then whole signatures made to meet them.
#[wasm_bindgen_test(unsupported = test)]
fn additions_of_equal_and_opposite_points() {
    let rng = &mut TestRng(0xec_d5a0_0000_0002);
    for suite in suites() {
        let size = suite.size;
        let n = big(suite.order);
        let g = (suite.their_public)(&be(&BigUint::from(1u8), size)).unwrap();
        let minus_g = (suite.their_public)(&be(&(&n - 1u8), size)).unwrap();
        let zero = vec![0u8; size];
        for _ in 0..4 {
            let u = be(&(big(&random(rng, size)) % &n), size);
            let minus_u = be(&((&n - big(&u)) % &n), size);
            for (u1, u2, q) in [
                (&u, &u, &g),
                (&u, &u, &minus_g),
                (&u, &minus_u, &g),
                (&minus_u, &u, &minus_g),
                (&u, &zero, &g),
                (&zero, &u, &g),
                (&zero, &zero, &g),
            ] {
                let ours = (suite.our_mul_add)(u1, u2, q);
                assert_eq!(ours, (suite.their_mul_add)(u1, u2, q), "{}", suite.name);
            }
            assert_eq!((suite.our_mul_add)(&u, &u, &minus_g), None);

            // Key 1 (Q = G) and r = e mod n make u1 = u2 (doubling); key n - 1 (Q = -G) makes
            // u1 G + u2 Q infinity. Neither is a valid signature, both must be refused.
            let message = random(rng, 16);
            let r = be(&(big(&(suite.hash)(&message)) % &n), size);
            let s = be(&(big(&random(rng, size)) % (&n - 1u8) + 1u8), size);
            for q in [&g, &minus_g] {
                let signature = [&r[..], &s].concat();
                assert_eq!((suite.ours)(q, &message, &signature), Some(false));
                assert_eq!((suite.theirs)(q, &message, &signature), Some(false));
            }
        }
    }
}

/// A valid signature whose R has an x above n, so r = x - n: R is picked first (x = n + t), then
/// u1, u2 from a random s, then the key Q = (R - u1 G) / u2 (its private key is never known).
#[wasm_bindgen_test(unsupported = test)]
fn x_of_r_above_the_order() {
    let rng = &mut TestRng(0xec_d5a0_0000_0003);
    for suite in suites() {
        let size = suite.size;
        let n = big(suite.order);
        let inverse = |x: &BigUint| x.modpow(&(&n - 2u8), &n);
        let (t, point) = (1u32..)
            .find_map(|t| (suite.their_decompress)(&be(&(&n + t), size)).map(|point| (t, point)))
            .unwrap();
        let message = random(rng, 32);
        let e = big(&(suite.hash)(&message)) % &n;
        let s = big(&random(rng, size)) % &n;
        let r = BigUint::from(t);
        let (u1, u2) = (&e * inverse(&s) % &n, &r * inverse(&s) % &n);
        let u2_inv = inverse(&u2);
        let q = (suite.their_mul_add)(&be(&((&n - &u1) * &u2_inv % &n), size), &be(&u2_inv, size), &point).unwrap();
        let signature = [be(&r, size), be(&s, size)].concat();
        assert_eq!((suite.ours)(&q, &message, &signature), Some(true), "{}", suite.name);
        assert_eq!((suite.theirs)(&q, &message, &signature), Some(true));
        // r = t + 1 is wrong; r = x itself is out of range.
        for r in [&r + 1u8, &n + t] {
            let signature = [be(&r, size), be(&s, size)].concat();
            assert_eq!((suite.ours)(&q, &message, &signature), Some(false));
            assert_eq!((suite.theirs)(&q, &message, &signature), Some(false));
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn key_decoding() {
    let rng = &mut TestRng(0xec_d5a0_0000_0004);
    for suite in suites() {
        let size = suite.size;
        let p = big(suite.prime);
        let (_, q) = random_key(&suite, rng);
        let (x, y) = (&q[1..=size], &q[1 + size..]);
        let message = b"m";
        let signature = vec![1u8; 2 * size];
        let decodes = |encoding: &[u8]| (suite.ours)(encoding, message, &signature).is_some();
        assert!(decodes(&q));
        // Off the curve: y + 1, x + 1, and (0, 0), which would stand for the identity.
        let plus_one = |v: &[u8]| be(&((big(v) + 1u8) % &p), size);
        let zero = vec![0u8; size];
        let bad = [
            sec1(x, &plus_one(y)),
            sec1(&plus_one(x), y),
            sec1(&zero, &zero),
            // SEC1's identity, a hybrid prefix, wrong lengths.
            vec![0x00],
            [&[0x06], x, y].concat(),
            q[..q.len() - 1].to_vec(),
            [&q[..], &[0]].concat(),
            [&[0x04, 0x00], x, y].concat(),
            Vec::new(),
        ];
        for (i, encoding) in bad.iter().enumerate() {
            assert!(!decodes(encoding), "{} {i}", suite.name);
            assert_eq!(
                (suite.theirs)(encoding, message, &signature),
                None,
                "{} {i}",
                suite.name
            );
        }
        // Compressed points are valid SEC1, but no JWK holds one.
        for prefix in [0x02, 0x03] {
            let compressed = [&[prefix], x].concat();
            assert!(!decodes(&compressed));
            assert!((suite.theirs)(&compressed, message, &signature).is_some());
        }
        // Coordinates from p up: p itself, x + p for a point with a small x (the same point
        // modulo p), and all ones.
        let (x_small, point) = (1u32..)
            .find_map(|x| (suite.their_decompress)(&be(&BigUint::from(x), size)).map(|point| (x, point)))
            .unwrap();
        assert!(decodes(&point));
        let ones = vec![0xff; size];
        let prime = be(&p, size);
        for encoding in [
            sec1(&be(&(&p + x_small), size), &point[1 + size..]),
            sec1(&prime, y),
            sec1(x, &prime),
            sec1(&ones, y),
            sec1(x, &ones),
        ] {
            assert!(!decodes(&encoding), "{}", suite.name);
            assert_eq!((suite.theirs)(&encoding, message, &signature), None);
        }
    }
}

/// The NAF digits add up to k, are odd and small, and non-zero ones are w apart.
#[wasm_bindgen_test(unsupported = test)]
fn naf_recoding() {
    let rng = &mut TestRng(0xec_d5a0_0000_0005);
    for bytes in [1, 31, 32, 48] {
        for w in 2..=8 {
            let mut k = random(rng, bytes);
            if w == 8 {
                k.fill(0xff);
            }
            let mut limbs = [0; MAX_LIMBS];
            limbs_from_be(&k, &mut limbs);
            let mut digits = [0i8; 48 * 8 + 8];
            naf(&limbs, w, &mut digits);
            let (mut positive, mut negative) = (BigUint::from(0u8), BigUint::from(0u8));
            let mut last = None;
            for (i, &d) in digits.iter().enumerate() {
                if d == 0 {
                    continue;
                }
                assert!(d % 2 != 0 && i32::from(d).abs() < 1 << (w - 1), "{d} w = {w}");
                assert!(last.is_none_or(|last| i - last >= w), "w = {w}");
                last = Some(i);
                let term = BigUint::from(d.unsigned_abs()) << i;
                if d > 0 {
                    positive += term;
                } else {
                    negative += term;
                }
            }
            assert_eq!(positive - negative, big(&k), "{bytes} bytes, w = {w}");
        }
    }
}

/// Field operations against `BigUint` in the four fields (p and n of both curves), with random
/// elements and those next to 0 and m; and the moduli [`Field::new`] refuses.
#[wasm_bindgen_test(unsupported = test)]
fn field_arithmetic() {
    let rng = &mut TestRng(0xec_d5a0_0000_0006);
    for modulus in [&P256_PRIME[..], &P256_ORDER, &P384_PRIME, &P384_ORDER] {
        let field = Field::new(modulus).unwrap();
        let size = modulus.len();
        assert_eq!(field.size(), size);
        let m = big(modulus);
        let r_inv = (BigUint::from(1u8) << (8 * size)).modpow(&(&m - 2u8), &m);
        let elem = |x: &BigUint| field.parse(&be(x, size)).unwrap();
        let plain = |x: &Elem| {
            let mut bytes = vec![0u8; size];
            limbs_to_be(x, &mut bytes);
            big(&bytes)
        };
        let mut values: Vec<BigUint> = (0..4).map(|_| big(&random(rng, size)) % &m).collect();
        values.extend([BigUint::from(0u8), BigUint::from(1u8), &m - 2u8, &m - 1u8]);
        for a in &values {
            for b in &values {
                let (x, y) = (elem(a), elem(b));
                assert_eq!(plain(&field.add(&x, &y)), (a + b) % &m);
                assert_eq!(plain(&field.sub(&x, &y)), (a + &m - b) % &m);
                assert_eq!(plain(&field.mul(&x, &y)), a * b * &r_inv % &m);
            }
            let x = field.to_mont(&elem(a));
            let expected = if a == &BigUint::from(0u8) {
                [0; MAX_LIMBS]
            } else {
                field.one()
            };
            assert_eq!(field.mul(&field.invert(&x), &x), expected);
        }
        assert!(field.parse(modulus).is_none());
        assert!(field.parse(&modulus[1..]).is_none());
    }
    assert!(Field::new(&P384_ORDER[..47]).is_none());
    assert!(Field::new(&[0xff; 56]).is_none());
    let mut even = P256_ORDER;
    even[31] ^= 1;
    assert!(Field::new(&even).is_none());
    let mut one = [0u8; 32];
    one[31] = 1;
    assert!(Field::new(&one).is_none());
}
