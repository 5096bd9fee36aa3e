//! Known answers from OpenSSL, differential tests against the `rsa` crate, and crafted encodings.

use super::vectors::{PRIVATE_KEYS, VECTORS};
use super::*;
use crate::testdata::{rsa_private, unb64, TestRng};
use crate::{Alg, Jwks, Jwt};
use rsa::rand_core::RngCore;
use rsa::traits::PublicKeyParts;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey};
use serde_json::json;
use shared::NoHostCrypto;
use wasm_bindgen_test::wasm_bindgen_test;

const RSA_ALGS: [Alg; 6] = [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512];

fn is_pss(alg: Alg) -> bool {
    matches!(alg, Alg::PS256 | Alg::PS384 | Alg::PS512)
}

fn hash_of(alg: Alg) -> HashAlg {
    alg.hash().unwrap()
}

fn ours(key: &RsaPublicKey, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
    if is_pss(alg) {
        key.verify_pss(hash_of(alg), message, signature)
    } else {
        key.verify_pkcs1v15(hash_of(alg), message, signature)
    }
}

fn theirs(key: &rsa::RsaPublicKey, alg: Alg, message: &[u8], signature: &[u8]) -> bool {
    let hashed = digest(hash_of(alg), &[message]);
    let result = match alg {
        Alg::RS256 => key.verify(Pkcs1v15Sign::new::<Sha256>(), &hashed, signature),
        Alg::RS384 => key.verify(Pkcs1v15Sign::new::<Sha384>(), &hashed, signature),
        Alg::RS512 => key.verify(Pkcs1v15Sign::new::<Sha512>(), &hashed, signature),
        Alg::PS256 => key.verify(Pss::new::<Sha256>(), &hashed, signature),
        Alg::PS384 => key.verify(Pss::new::<Sha384>(), &hashed, signature),
        Alg::PS512 => key.verify(Pss::new::<Sha512>(), &hashed, signature),
        _ => unreachable!(),
    };
    result.is_ok()
}

fn their_signature(key: &RsaPrivateKey, alg: Alg, message: &[u8], rng: &mut TestRng) -> Vec<u8> {
    let hashed = digest(hash_of(alg), &[message]);
    let result = match alg {
        Alg::RS256 => key.sign(Pkcs1v15Sign::new::<Sha256>(), &hashed),
        Alg::RS384 => key.sign(Pkcs1v15Sign::new::<Sha384>(), &hashed),
        Alg::RS512 => key.sign(Pkcs1v15Sign::new::<Sha512>(), &hashed),
        Alg::PS256 => key.sign_with_rng(rng, Pss::new::<Sha256>(), &hashed),
        Alg::PS384 => key.sign_with_rng(rng, Pss::new::<Sha384>(), &hashed),
        Alg::PS512 => key.sign_with_rng(rng, Pss::new::<Sha512>(), &hashed),
        _ => unreachable!(),
    };
    result.unwrap()
}

/// The raw private-key operation: a "signature" whose encoded message is `em`.
fn raw_signature(key: &RsaPrivateKey, em: &[u8]) -> Vec<u8> {
    let s = rsa::hazmat::rsa_decrypt(None::<&mut TestRng>, key, &BigUint::from_bytes_be(em)).unwrap();
    to_len(&s, key.size())
}

fn to_len(value: &BigUint, len: usize) -> Vec<u8> {
    let bytes = value.to_bytes_be();
    let mut out = vec![0u8; len - bytes.len()];
    out.extend_from_slice(&bytes);
    out
}

fn public_of(private: &RsaPrivateKey) -> RsaPublicKey {
    RsaPublicKey::new(&private.n().to_bytes_be(), &private.e().to_bytes_be()).unwrap()
}

fn private_keys() -> Vec<RsaPrivateKey> {
    let big = |text: &str| BigUint::from_bytes_be(&unb64(text));
    let mut keys = vec![rsa_private()];
    for [n, e, d, p, q] in PRIVATE_KEYS {
        keys.push(RsaPrivateKey::from_components(big(n), big(e), big(d), vec![big(p), big(q)]).unwrap());
    }
    keys
}

fn random_bytes(rng: &mut TestRng, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    rng.fill_bytes(&mut out);
    out
}

/// EMSA-PKCS1-v1_5: `00 01 FF.. 00 prefix hash`, `len` bytes.
fn pkcs1_em(prefix: &[u8], hash: &[u8], len: usize) -> Vec<u8> {
    let mut em = vec![0x00, 0x01];
    em.resize(len - prefix.len() - hash.len() - 1, 0xff);
    em.push(0x00);
    em.extend_from_slice(prefix);
    em.extend_from_slice(hash);
    em
}

/// EMSA-PSS-ENCODE (RFC 8017 section 9.1.1) with any salt, as `k` bytes (zeros in front of the
/// emLen = ceil(em_bits / 8) bytes of EM).
fn pss_em(hash: HashAlg, m_hash: &[u8], salt: &[u8], em_bits: usize, k: usize) -> Vec<u8> {
    let em_len = em_bits.div_ceil(8);
    let h = digest(hash, &[&[0u8; 8], m_hash, salt]);
    let mut db = vec![0u8; em_len - salt.len() - h.len() - 2];
    db.push(0x01);
    db.extend_from_slice(salt);
    mgf1_xor(hash, &h, &mut db);
    db[0] &= 0xff >> (8 * em_len - em_bits);
    let mut em = vec![0u8; k - em_len];
    em.extend_from_slice(&db);
    em.extend_from_slice(&h);
    em.push(0xbc);
    em
}

#[wasm_bindgen_test(unsupported = test)]
fn openssl_known_answers() {
    for (i, v) in VECTORS.iter().enumerate() {
        let alg = Alg::parse(v.alg).unwrap();
        let (n, e) = (unb64(v.n), unb64(v.e));
        let key = RsaPublicKey::new(&n, &e).unwrap();
        assert_eq!((key.bits(), key.size()), (v.bits, n.len()), "{i}");
        assert_eq!(key.to_spki_der(), unb64(v.spki), "{i}");
        let (message, signature) = (v.message.as_bytes(), unb64(v.signature));
        assert!(ours(&key, alg, message, &signature), "{i} {alg}");
        // Any other scheme or hash refuses it.
        for other in RSA_ALGS.into_iter().filter(|&other| other != alg) {
            assert!(!ours(&key, other, message, &signature), "{i} {alg} as {other}");
        }
        let mut longer = message.to_vec();
        longer.push(b'.');
        assert!(!ours(&key, alg, &longer, &signature), "{i}");
        for byte in [0, signature.len() / 2, signature.len() - 1] {
            for bit in [0, 7] {
                let mut bad = signature.clone();
                bad[byte] ^= 1 << bit;
                assert!(!ours(&key, alg, message, &bad), "{i} byte {byte} bit {bit}");
            }
        }

        // The same through a JWK and a compact JWS.
        let jwks = Jwks::parse(
            json!({"keys": [{"kty": "RSA", "n": v.n, "e": v.e}]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        let jwk = &jwks.keys()[0];
        assert_eq!(jwk.rsa_bits(), Some(v.bits));
        assert_eq!(jwk.spki_der().unwrap(), unb64(v.spki));
        let jwt = Jwt::decode(format!("{}.{}", v.message, v.signature).as_bytes(), 64 * 1024).unwrap();
        assert_eq!(jwt.alg(), alg);
        jwt.verify(jwk, &NoHostCrypto).unwrap();
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn spki_matches_the_rsa_crate() {
    for private in private_keys() {
        use rsa::pkcs8::EncodePublicKey;
        let expected = private.to_public_key().to_public_key_der().unwrap();
        assert_eq!(public_of(&private).to_spki_der(), expected.as_bytes());
    }
}

/// Random messages signed by the `rsa` crate with keys of 2048, 2049 (e = 65537) and 3073 bits
/// (e = 3): both verifiers accept; with a bit flipped in the signature or the message, and for
/// random signatures, both refuse.
#[wasm_bindgen_test(unsupported = test)]
fn agrees_with_the_rsa_crate() {
    let rng = &mut TestRng(0x5eed_0fba_5eba_1100);
    for (i, private) in private_keys().iter().enumerate() {
        let key = public_of(private);
        let public = private.to_public_key();
        let k = key.size();
        // One message per key and alg, two algs for the 3073-bit key and four flipped bits per
        // signature: the `rsa` crate is slow in a debug build (each check ~50 ms under wasm).
        let algs = RSA_ALGS
            .into_iter()
            .filter(|&alg| i < 2 || matches!(alg, Alg::RS384 | Alg::PS256));
        for alg in algs {
            let len = (rng.next_u32() % 300) as usize;
            let message = random_bytes(rng, len);
            let signature = their_signature(private, alg, &message, rng);
            assert!(ours(&key, alg, &message, &signature), "{alg} {k}");
            assert!(theirs(&public, alg, &message, &signature), "{alg} {k}");
            for _ in 0..4 {
                let bit = rng.next_u32() as usize % (8 * k);
                let mut bad = signature.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let verdict = ours(&key, alg, &message, &bad);
                assert!(!verdict, "{alg} {k} bit {bit}");
                assert_eq!(verdict, theirs(&public, alg, &message, &bad), "{alg} {k} bit {bit}");
            }
            let mut other = message.clone();
            other.push(0);
            assert!(!ours(&key, alg, &other, &signature) && !theirs(&public, alg, &other, &signature));
            let mut random = random_bytes(rng, k);
            random[0] = 0;
            assert!(!ours(&key, alg, &message, &random) && !theirs(&public, alg, &message, &random));
        }
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn signature_out_of_range_or_of_the_wrong_length() {
    let private = rsa_private();
    let key = public_of(&private);
    let n = private.n().clone();
    let k = key.size();
    let message = b"message";
    let rng = &mut TestRng(99);
    for alg in RSA_ALGS {
        let good = their_signature(&private, alg, message, rng);
        assert!(ours(&key, alg, message, &good));
        let one = BigUint::from(1u8);
        for bad in [
            vec![0u8; k],                     // s = 0
            to_len(&one, k),                  // s = 1
            to_len(&(&n - &one), k),          // s = n - 1
            to_len(&n, k),                    // s = n
            to_len(&(&n + &one), k),          // s = n + 1
            vec![0xffu8; k],                  // above n
            [&[0u8][..], &good].concat(),     // a zero byte in front: k + 1 bytes
            good[1..].to_vec(),               // k - 1 bytes
            good[..k - 1].to_vec(),           // truncated
            [&good[..], &[0u8][..]].concat(), // a byte behind
            Vec::new(),
        ] {
            assert!(!ours(&key, alg, message, &bad), "{alg} {} bytes", bad.len());
        }
        // s + n encodes the same residue: refused whenever it still fits in k bytes (the `rsa`
        // crate's PSS check reduces it and would accept it).
        let shifted = BigUint::from_bytes_be(&good) + &n;
        if shifted.bits() <= 8 * k {
            assert!(!ours(&key, alg, message, &to_len(&shifted, k)), "{alg}");
        }
    }
    // A signature whose s + n fits in k bytes, for PSS.
    let limit = BigUint::from(1u8) << (8 * k);
    let mut found = false;
    for i in 0..32u8 {
        let signature = their_signature(&private, Alg::PS256, &[i], rng);
        let shifted = BigUint::from_bytes_be(&signature) + &n;
        if shifted < limit {
            assert!(ours(&key, Alg::PS256, &[i], &signature));
            assert!(!ours(&key, Alg::PS256, &[i], &to_len(&shifted, k)));
            found = true;
            break;
        }
    }
    assert!(found);
}

#[wasm_bindgen_test(unsupported = test)]
fn public_key_parameters() {
    let n = unb64(crate::testdata::RSA_N);
    let with = |e: &[u8]| RsaPublicKey::new(&n, e);
    assert!(with(&[1, 0, 1]).is_some());
    assert!(with(&[0, 0, 1, 0, 1]).is_some());
    assert!(with(&[3]).is_some());
    assert!(with(&[1, 0xff, 0xff, 0xff, 0xff]).is_some()); // 2^33 - 1
    for bad in [
        &[][..],
        &[0],
        &[1],
        &[2],
        &[1, 0, 0],
        &[2, 0, 0, 0, 1], // 2^33 + 1
        &[1, 0, 0, 0, 0, 0, 0, 0, 1],
        &[0xff; 9],
    ] {
        assert!(with(bad).is_none(), "{bad:?}");
    }
    // The modulus: odd, above e.
    let mut even = n.clone();
    *even.last_mut().unwrap() &= 0xfe;
    assert!(RsaPublicKey::new(&even, &[1, 0, 1]).is_none());
    assert!(RsaPublicKey::new(&[], &[3]).is_none());
    assert!(RsaPublicKey::new(&[0, 0], &[3]).is_none());
    assert!(RsaPublicKey::new(&[1, 0, 1], &[1, 0, 1]).is_none());
    assert!(RsaPublicKey::new(&[1, 0, 3], &[1, 0, 1]).is_some());
    let padded = RsaPublicKey::new(&[&[0u8, 0][..], &n].concat(), &[0, 1, 0, 1]).unwrap();
    assert_eq!((padded.size(), padded.bits()), (256, 2048));
    assert_eq!(padded.to_spki_der(), with(&[1, 0, 1]).unwrap().to_spki_der());
    assert_eq!(
        format!("{padded:?}"),
        "RsaPublicKey { n: Modulus(2048 bits), e: 65537 }"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn pkcs1v15_encoding_is_compared_in_full() {
    for hash in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
        let h = digest(hash, &[b"abc"]);
        let prefix = digest_info_prefix(hash);
        let k = 256;
        let good = pkcs1_em(prefix, &h, k);
        assert!(pkcs1v15_matches(hash, &h, &good));
        // The shortest padding allowed is 8 bytes of FF.
        let t_len = prefix.len() + h.len();
        assert!(pkcs1v15_matches(hash, &h, &pkcs1_em(prefix, &h, t_len + 11)));
        assert!(!pkcs1v15_matches(hash, &h, &pkcs1_em(prefix, &h, t_len + 10)));
        assert!(!pkcs1v15_matches(hash, &h, &good[..t_len + 2]));
        assert!(!pkcs1v15_matches(hash, &h, &[]));

        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut set = |name, at: usize, value: u8| {
            let mut em = good.clone();
            em[at] = value;
            cases.push((name, em));
        };
        set("first byte", 0, 0x01);
        set("block type 2", 1, 0x02);
        set("block type 0", 1, 0x00);
        set("padding start", 2, 0xfe);
        set("padding end", k - t_len - 2, 0x00);
        set("separator", k - t_len - 1, 0x01);
        set("DigestInfo", k - t_len, 0x31);
        set("hash OID", k - t_len + 14, 0x04);
        set("hash", k - 1, h[h.len() - 1] ^ 1);
        // Other hashes' DigestInfo in front of this hash, padded to the same length.
        for other in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            if other != hash {
                cases.push(("other DigestInfo", pkcs1_em(digest_info_prefix(other), &h, k)));
            }
        }
        // The DigestInfo without the NULL parameters (accepted by some, not by RFC 8017).
        let mut no_null = prefix.to_vec();
        no_null.drain(14..16);
        no_null[1] -= 2;
        no_null[3] -= 2;
        cases.push(("no NULL", pkcs1_em(&no_null, &h, k)));
        // Bytes behind the hash, or the hash alone without a DigestInfo.
        cases.push(("garbage behind", pkcs1_em(prefix, &[&h[..], &[0u8; 4][..]].concat(), k)));
        cases.push(("no DigestInfo", pkcs1_em(&[], &h, k)));
        // The separator early (truncated padding), the rest shifted.
        let mut early = good.clone();
        early[10] = 0x00;
        cases.push(("early separator", early));
        for (name, em) in cases {
            assert_eq!(em.len(), k, "{name}");
            assert!(!pkcs1v15_matches(hash, &h, &em), "{hash:?} {name}");
        }
        // Another message's hash.
        assert!(!pkcs1v15_matches(hash, &digest(hash, &[b"abd"]), &good));
    }
}

/// Crafted PKCS#1 v1.5 encodings, signed with the raw private-key operation.
#[wasm_bindgen_test(unsupported = test)]
fn crafted_pkcs1v15_signatures() {
    let private = rsa_private();
    let key = public_of(&private);
    let public = private.to_public_key();
    let k = key.size();
    let message = b"crafted";
    let h = digest(HashAlg::Sha256, &[message]);
    let prefix = digest_info_prefix(HashAlg::Sha256);
    let good = raw_signature(&private, &pkcs1_em(prefix, &h, k));
    assert!(ours(&key, Alg::RS256, message, &good) && theirs(&public, Alg::RS256, message, &good));
    let mut no_null = prefix.to_vec();
    no_null.drain(14..16);
    no_null[1] -= 2;
    no_null[3] -= 2;
    for em in [
        pkcs1_em(&no_null, &h, k),
        pkcs1_em(digest_info_prefix(HashAlg::Sha384), &h, k),
        pkcs1_em(prefix, &[&h[..], &[0xff; 8][..]].concat(), k),
        pkcs1_em(&[], &h, k),
    ] {
        let signature = raw_signature(&private, &em);
        assert!(!ours(&key, Alg::RS256, message, &signature));
        assert!(!theirs(&public, Alg::RS256, message, &signature));
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn pss_encoding_checks() {
    let rng = &mut TestRng(2049);
    // emBits = modBits - 1: 8 * emLen - emBits of 0 (emLen = k - 1) to 7.
    for em_bits in [2048usize, 2047, 2046, 2042, 2041, 3072, 8191] {
        let k = (em_bits + 1).div_ceil(8);
        for hash in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let m_hash = digest(hash, &[b"pss"]);
            let h_len = m_hash.len();
            let salt = random_bytes(rng, h_len);
            let good = pss_em(hash, &m_hash, &salt, em_bits, k);
            assert!(pss_matches(hash, &m_hash, &good, em_bits), "{em_bits} {hash:?}");
            let em_len = em_bits.div_ceil(8);
            let lead = k - em_len;
            let unused = 8 * em_len - em_bits;

            let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
            for salt_len in [0, h_len - 1, h_len + 1] {
                let salt = random_bytes(rng, salt_len);
                cases.push(("salt length", pss_em(hash, &m_hash, &salt, em_bits, k)));
            }
            let flip = |at: usize, mask: u8| {
                let mut em = good.clone();
                em[at] ^= mask;
                em
            };
            cases.push(("trailer", flip(k - 1, 0x01)));
            cases.push(("H", flip(k - 2, 0x80)));
            cases.push(("masked DB", flip(lead + 5, 0x10)));
            if unused > 0 {
                cases.push(("bits above emBits", flip(lead, 0x80)));
                cases.push(("lowest bit above emBits", flip(lead, 0x80 >> (unused - 1))));
            }
            if lead > 0 {
                cases.push(("byte in front of EM", flip(0, 0x01)));
            }
            // The 01 separator, and a non-zero byte in the zero padding, through the mask.
            let separator = lead + em_len - h_len - h_len - 2;
            cases.push(("separator", flip(separator, 0x03)));
            cases.push(("padding", flip(separator - 1, 0x01)));
            // Another hash for the same encoding.
            for other in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
                if other != hash {
                    let em = pss_em(other, &digest(other, &[b"pss"]), &salt[..], em_bits, k);
                    assert!(!pss_matches(hash, &m_hash, &em, em_bits), "{hash:?} read as {other:?}");
                }
            }
            for (name, em) in cases {
                assert!(!pss_matches(hash, &m_hash, &em, em_bits), "{em_bits} {hash:?} {name}");
            }
            assert!(!pss_matches(hash, &digest(hash, &[b"pss!"]), &good, em_bits));
            assert!(!pss_matches(hash, &m_hash, &good[..k - 1], em_bits));
        }
    }
    // emLen < hLen + sLen + 2: SHA-512 needs 130 bytes.
    let m_hash = digest(HashAlg::Sha512, &[b"x"]);
    let mut em = vec![0u8; 129];
    em[128] = 0xbc;
    assert!(!pss_matches(HashAlg::Sha512, &m_hash, &em, 129 * 8 - 1));
    assert!(!pss_matches(HashAlg::Sha512, &m_hash, &[], 0));
}

/// A 2049-bit modulus: EM is one byte shorter than the signature.
#[wasm_bindgen_test(unsupported = test)]
fn crafted_pss_signatures_with_em_shorter_than_the_modulus() {
    let keys = private_keys();
    let private = &keys[1];
    let key = public_of(private);
    assert_eq!((key.bits(), key.size()), (2049, 257));
    let message = b"shorter";
    let rng = &mut TestRng(1);
    for (alg, hash) in [(Alg::PS256, HashAlg::Sha256), (Alg::PS512, HashAlg::Sha512)] {
        let m_hash = digest(hash, &[message]);
        let salt = random_bytes(rng, m_hash.len());
        let em = pss_em(hash, &m_hash, &salt, 2048, 257);
        assert_eq!(em[0], 0);
        assert!(ours(&key, alg, message, &raw_signature(private, &em)));
        let short_salt = pss_em(hash, &m_hash, &salt[1..], 2048, 257);
        assert!(!ours(&key, alg, message, &raw_signature(private, &short_salt)));
        // A valid EM with a non-zero byte in front (kept below n): I2OSP(m, emLen) fails.
        let n = private.n().to_bytes_be();
        let mut found = false;
        for _ in 0..64 {
            let salt = random_bytes(rng, m_hash.len());
            let mut em = pss_em(hash, &m_hash, &salt, 2048, 257);
            if em[1..] < n[1..] {
                em[0] = 1;
                assert!(!ours(&key, alg, message, &raw_signature(private, &em)));
                em[0] = 0;
                assert!(ours(&key, alg, message, &raw_signature(private, &em)));
                found = true;
                break;
            }
        }
        assert!(found);
    }
}
