//! Signature checks: the host's native check where it has one (RS*, ES*), pure Rust otherwise.

use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384, Sha512};
use shared::{HashAlg, HostCrypto};

use crate::alg::Alg;
use crate::der::{der_length, der_unsigned_integer};
use crate::ecdsa::{P256_ORDER, P384_ORDER};
use crate::error::JwtError;
use crate::jwk::{Jwk, Material};
use crate::rsassa::RsaPublicKey;

/// Checks `signature` over `message` for `alg` with `key`.
pub(crate) fn verify_signature(
    alg: Alg,
    key: &Jwk,
    message: &[u8],
    signature: &[u8],
    crypto: &dyn HostCrypto,
) -> Result<(), JwtError> {
    if !key.usable_for(alg) {
        return Err(JwtError::KeyMismatch);
    }
    let outcome = match (alg, &key.material) {
        (Alg::RS256 | Alg::RS384 | Alg::RS512, Material::Rsa { key, spki }) => {
            check_rsa_length(key, signature)?;
            let hash = host_hash(alg)?;
            match crypto.verify(hash, spki, signature, message) {
                Some(valid) => valid,
                None => key.verify_pkcs1v15(hash, message, signature),
            }
        }
        (Alg::PS256 | Alg::PS384 | Alg::PS512, Material::Rsa { key, .. }) => {
            check_rsa_length(key, signature)?;
            key.verify_pss(host_hash(alg)?, message, signature)
        }
        (Alg::ES256, Material::P256 { key, spki }) => {
            let der = ecdsa_der(signature, &P256_ORDER)?;
            match crypto.verify(HashAlg::Sha256, spki, &der, message) {
                Some(valid) => valid,
                None => key.verify(message, signature),
            }
        }
        (Alg::ES384, Material::P384 { key, spki }) => {
            let der = ecdsa_der(signature, &P384_ORDER)?;
            match crypto.verify(HashAlg::Sha384, spki, &der, message) {
                Some(valid) => valid,
                None => key.verify(message, signature),
            }
        }
        (Alg::EdDSA, Material::Ed25519(key)) => {
            let bytes: &[u8; 64] = signature
                .try_into()
                .map_err(|_| JwtError::BadSignatureEncoding("Ed25519 signature is not 64 bytes"))?;
            key.verify_strict(message, bytes)
        }
        (Alg::HS256, Material::Hmac(secret)) => hmac::<Hmac<Sha256>>(secret.expose(), message, signature),
        (Alg::HS384, Material::Hmac(secret)) => hmac::<Hmac<Sha384>>(secret.expose(), message, signature),
        (Alg::HS512, Material::Hmac(secret)) => hmac::<Hmac<Sha512>>(secret.expose(), message, signature),
        _ => return Err(JwtError::KeyMismatch),
    };
    if outcome {
        Ok(())
    } else {
        Err(JwtError::BadSignature)
    }
}

fn host_hash(alg: Alg) -> Result<HashAlg, JwtError> {
    alg.hash().ok_or(JwtError::KeyMismatch)
}

/// An RSA signature is exactly as long as the modulus (RFC 8017 section 8.2.2 step 1).
fn check_rsa_length(key: &RsaPublicKey, signature: &[u8]) -> Result<(), JwtError> {
    if signature.len() == key.size() {
        Ok(())
    } else {
        Err(JwtError::BadSignatureEncoding(
            "RSA signature length differs from the modulus",
        ))
    }
}

fn hmac<M: Mac + hmac::digest::KeyInit>(secret: &[u8], message: &[u8], signature: &[u8]) -> bool {
    match <M as Mac>::new_from_slice(secret) {
        Ok(mut mac) => {
            mac.update(message);
            // Constant-time comparison; a tag of another length fails.
            mac.verify_slice(signature).is_ok()
        }
        Err(_) => false,
    }
}

/// Converts a JWS ECDSA signature (`r || s`, each exactly as long as the order, RFC 7518 section
/// 3.4) to the DER `ECDSA-Sig-Value` the host wants, after checking `0 < r, s < n`: a zero `r` or
/// `s` verifies against any message in a broken verifier (CVE-2022-21449), so such a signature
/// never reaches one.
fn ecdsa_der(signature: &[u8], order: &[u8]) -> Result<Vec<u8>, JwtError> {
    if signature.len() != 2 * order.len() {
        return Err(JwtError::BadSignatureEncoding("ECDSA signature of the wrong length"));
    }
    let (r, s) = signature.split_at(order.len());
    for scalar in [r, s] {
        // Equal-length big-endian byte strings compare like the numbers they encode.
        if scalar.iter().all(|&b| b == 0) || scalar >= order {
            return Err(JwtError::BadSignatureEncoding("ECDSA r or s out of range"));
        }
    }
    let mut body = Vec::with_capacity(signature.len() + 6);
    der_unsigned_integer(&mut body, r);
    der_unsigned_integer(&mut body, s);
    let mut der = Vec::with_capacity(body.len() + 3);
    der.push(0x30);
    der_length(&mut der, body.len());
    der.extend_from_slice(&body);
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::*;
    use crate::{Jwks, Jwt};
    use serde_json::json;
    use shared::NoHostCrypto;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn claims() -> serde_json::Value {
        json!({"iss": "https://issuer.example", "sub": "alice", "exp": NOW + 600})
    }

    fn decode(token: &str) -> Jwt {
        Jwt::decode(token.as_bytes(), 16 * 1024).unwrap()
    }

    fn with_signature(token: &str, signature: &[u8]) -> Jwt {
        let input = token.rsplit_once('.').unwrap().0;
        decode(&format!("{input}.{}", b64(signature)))
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn every_alg_verifies_and_detects_tampering() {
        for alg in Alg::ALL {
            let key = key_for(alg);
            let token = token(alg, &claims());
            decode(&token)
                .verify(&key, &NoHostCrypto)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(
                decode(&token).verify_jwks(&all_keys(), &NoHostCrypto).unwrap().kind(),
                key.kind()
            );

            // Another payload under the same signature.
            let [h, _, s]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
            let mut other = claims();
            other["sub"] = json!("admin");
            let tampered = format!("{h}.{}.{s}", b64(other.to_string().as_bytes()));
            assert_eq!(
                decode(&tampered).verify(&key, &NoHostCrypto),
                Err(JwtError::BadSignature),
                "{alg}"
            );

            // A flipped bit in the signature, first and last byte.
            let signature = decode(&token).signature().to_vec();
            for i in [0, signature.len() - 1] {
                let mut bad = signature.clone();
                bad[i] ^= 0x01;
                let result = with_signature(&token, &bad).verify(&key, &NoHostCrypto);
                assert!(result.is_err(), "{alg} byte {i}");
            }
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rfc_8037_ed25519_vector() {
        let key = key_for(Alg::EdDSA);
        let signature = unb64(RFC8037_SIGNATURE);
        verify_signature(
            Alg::EdDSA,
            &key,
            RFC8037_SIGNING_INPUT.as_bytes(),
            &signature,
            &NoHostCrypto,
        )
        .unwrap();
        assert_eq!(
            ed25519_signing().verifying_key().as_bytes().as_slice(),
            unb64(RFC8037_X)
        );
        assert_eq!(sign(Alg::EdDSA, RFC8037_SIGNING_INPUT.as_bytes()), signature);
        let mut other = RFC8037_SIGNING_INPUT.as_bytes().to_vec();
        other.push(b'x');
        assert_eq!(
            verify_signature(Alg::EdDSA, &key, &other, &signature, &NoHostCrypto),
            Err(JwtError::BadSignature)
        );
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rfc_7515_vectors_are_reproduced_by_the_test_signers() {
        // Deterministic algorithms: our signers must give the RFC's exact bytes.
        let a1 = decode(RFC7515_A1_TOKEN);
        assert_eq!(sign(Alg::HS256, a1.signing_input()), a1.signature());
        let a2 = decode(RFC7515_A2_TOKEN);
        assert_eq!(sign(Alg::RS256, a2.signing_input()), a2.signature());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn a_key_of_another_kind_is_never_used() {
        for alg in Alg::ALL {
            let token = decode(&token(alg, &claims()));
            for other in Alg::ALL.into_iter().filter(|other| other.key_kind() != alg.key_kind()) {
                assert_eq!(
                    token.verify(&key_for(other), &NoHostCrypto),
                    Err(JwtError::KeyMismatch),
                    "{alg} {other}"
                );
            }
        }
        // A key restricted by its JWK `alg` only checks that alg.
        let mut restricted = rsa_jwk();
        restricted["alg"] = json!("RS256");
        let set = Jwks::parse(json!({"keys": [restricted]}).to_string().as_bytes()).unwrap();
        decode(&token(Alg::RS256, &claims()))
            .verify(&set.keys()[0], &NoHostCrypto)
            .unwrap();
        let ps = decode(&token(Alg::PS256, &claims()));
        assert_eq!(ps.verify(&set.keys()[0], &NoHostCrypto), Err(JwtError::KeyMismatch));
        assert_eq!(ps.verify_jwks(&set, &NoHostCrypto).unwrap_err(), JwtError::KeyNotFound);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn hs256_signed_with_the_rsa_public_key_is_refused() {
        // The classic confusion: the attacker HMACs with the public key's bytes, hoping the
        // verifier uses "the key" as an HMAC secret.
        use hmac::Mac;
        let rsa = Jwks::parse(json!({"keys": [rsa_jwk()]}).to_string().as_bytes()).unwrap();
        let spki = rsa.keys()[0].spki_der().unwrap().to_vec();
        let n = unb64(RSA_N);
        let jwk_text = rsa_jwk().to_string().into_bytes();
        for secret in [spki, n, jwk_text] {
            let input = format!(
                "{}.{}",
                b64(br#"{"alg":"HS256"}"#),
                b64(claims().to_string().as_bytes())
            );
            let mac = Hmac::<Sha256>::new_from_slice(&secret)
                .unwrap()
                .chain_update(input.as_bytes())
                .finalize();
            let forged = decode(&format!("{input}.{}", b64(&mac.into_bytes())));
            assert_eq!(forged.verify(&rsa.keys()[0], &NoHostCrypto), Err(JwtError::KeyMismatch));
            assert_eq!(
                forged.verify_jwks(&rsa, &NoHostCrypto).unwrap_err(),
                JwtError::KeyNotFound
            );
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn ecdsa_scalars_out_of_range_never_reach_a_verifier() {
        let host = FakeCrypto::new(Some(true));
        let cases: [(Alg, &[u8]); 2] = [(Alg::ES256, &P256_ORDER), (Alg::ES384, &P384_ORDER)];
        for (alg, order) in cases {
            let size = order.len();
            let token = token(alg, &claims());
            let good = decode(&token).signature().to_vec();
            let (r, s) = good.split_at(size);
            let zero = vec![0u8; size];
            let ones = vec![0xffu8; size];
            let mut n_plus_1 = order.to_vec();
            *n_plus_1.last_mut().unwrap() += 1;
            let bad = [
                [&zero[..], &zero[..]].concat(), // "psychic signature"
                [&zero[..], s].concat(),
                [r, &zero[..]].concat(),
                [order, s].concat(),
                [r, order].concat(),
                [&n_plus_1[..], s].concat(),
                [r, &ones[..]].concat(),
            ];
            for signature in bad {
                let result = with_signature(&token, &signature).verify(&key_for(alg), &host);
                assert_eq!(
                    result,
                    Err(JwtError::BadSignatureEncoding("ECDSA r or s out of range")),
                    "{alg}"
                );
            }
            for len in [0, 1, size, 2 * size - 1, 2 * size + 1, 2 * size + 8] {
                let signature = vec![1u8; len.max(1)];
                let result = with_signature(&token, &signature).verify(&key_for(alg), &host);
                assert!(matches!(result, Err(JwtError::BadSignatureEncoding(_))), "{alg} {len}");
            }
            // A DER signature where raw r || s belongs is refused too.
            let der = ecdsa_der(&good, order).unwrap();
            let result = with_signature(&token, &der).verify(&key_for(alg), &host);
            assert_eq!(
                result,
                Err(JwtError::BadSignatureEncoding("ECDSA signature of the wrong length"))
            );
            // n - 1 is in range.
            let mut n_minus_1 = order.to_vec();
            *n_minus_1.last_mut().unwrap() -= 1;
            assert!(ecdsa_der(&[&n_minus_1[..], &n_minus_1[..]].concat(), order).is_ok());
        }
        assert!(host.calls().is_empty(), "the host saw an invalid signature");
        assert_eq!(P256_ORDER.as_slice(), hex_order::<p256::NistP256>());
        assert_eq!(P384_ORDER.as_slice(), hex_order::<p384::NistP384>());
    }

    /// The curve order as the curve crate knows it, to pin the constants above.
    fn hex_order<C: p256::elliptic_curve::Curve>() -> Vec<u8> {
        use p256::elliptic_curve::bigint::Encoding;
        let bytes = C::ORDER.to_be_bytes();
        bytes.as_ref().iter().skip_while(|&&b| b == 0).copied().collect()
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn wrong_signature_lengths() {
        for (alg, len) in [(Alg::RS256, 255), (Alg::PS256, 257), (Alg::EdDSA, 63), (Alg::EdDSA, 65)] {
            let token = token(alg, &claims());
            let result = with_signature(&token, &vec![1u8; len]).verify(&key_for(alg), &NoHostCrypto);
            assert!(matches!(result, Err(JwtError::BadSignatureEncoding(_))), "{alg} {len}");
        }
        for (alg, len) in [(Alg::HS256, 31), (Alg::HS256, 33), (Alg::HS512, 32)] {
            let token = token(alg, &claims());
            let result = with_signature(&token, &vec![1u8; len]).verify(&key_for(alg), &NoHostCrypto);
            assert_eq!(result, Err(JwtError::BadSignature), "{alg} {len}");
        }
        // HS256 truncated to a prefix of the right tag still fails.
        let token = token(Alg::HS256, &claims());
        let good = decode(&token).signature().to_vec();
        let result = with_signature(&token, &good[..16]).verify(&key_for(Alg::HS256), &NoHostCrypto);
        assert_eq!(result, Err(JwtError::BadSignature));
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn rsa_and_ecdsa_ask_the_host_first() {
        for alg in [Alg::RS256, Alg::RS384, Alg::RS512, Alg::ES256, Alg::ES384] {
            let key = key_for(alg);
            let token = token(alg, &claims());
            let jwt = decode(&token);

            // The host's "yes" is taken even for a signature pure Rust would refuse...
            let yes = FakeCrypto::new(Some(true));
            let mut wrong = jwt.signature().to_vec();
            wrong[5] ^= 1;
            with_signature(&token, &wrong).verify(&key, &yes).unwrap();
            // ...and its "no" even for a valid one.
            let no = FakeCrypto::new(Some(false));
            assert_eq!(jwt.verify(&key, &no), Err(JwtError::BadSignature), "{alg}");

            let calls = no.calls();
            assert_eq!(calls.len(), 1, "{alg}");
            let call = &calls[0];
            assert_eq!(Some(call.hash), alg.hash());
            assert_eq!(call.spki, key.spki_der().unwrap());
            assert_eq!(call.message, jwt.signing_input());
            match alg {
                Alg::ES256 => {
                    let der = p256::ecdsa::Signature::from_der(&call.signature).unwrap();
                    assert_eq!(der.to_bytes().as_slice(), jwt.signature());
                    assert_eq!(call.signature, der.to_der().as_bytes());
                }
                Alg::ES384 => {
                    let der = p384::ecdsa::Signature::from_der(&call.signature).unwrap();
                    assert_eq!(der.to_bytes().as_slice(), jwt.signature());
                    assert_eq!(call.signature, der.to_der().as_bytes());
                }
                _ => assert_eq!(call.signature, jwt.signature()),
            }

            // No answer from the host: checked in pure Rust, both ways.
            let absent = FakeCrypto::new(None);
            jwt.verify(&key, &absent).unwrap();
            assert_eq!(
                with_signature(&token, &wrong).verify(&key, &absent),
                Err(JwtError::BadSignature)
            );
            assert_eq!(absent.calls().len(), 2);
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn pss_eddsa_and_hmac_never_go_to_the_host() {
        for alg in [
            Alg::PS256,
            Alg::PS384,
            Alg::PS512,
            Alg::EdDSA,
            Alg::HS256,
            Alg::HS384,
            Alg::HS512,
        ] {
            let host = FakeCrypto::new(Some(false));
            let jwt = decode(&token(alg, &claims()));
            jwt.verify(&key_for(alg), &host).unwrap();
            let yes = FakeCrypto::new(Some(true));
            let mut wrong = jwt.signature().to_vec();
            wrong[3] ^= 1;
            let forged = with_signature(&token(alg, &claims()), &wrong);
            assert_eq!(forged.verify(&key_for(alg), &yes), Err(JwtError::BadSignature), "{alg}");
            assert!(host.calls().is_empty() && yes.calls().is_empty(), "{alg}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn der_encoding_of_scalars() {
        // Leading zeros are dropped; a set top bit gets a zero byte in front.
        let mut raw = vec![0u8; 64];
        raw[31] = 1; // r = 1
        raw[32] = 0x80; // s = 0x80 << 248
        let der = ecdsa_der(&raw, &P256_ORDER).unwrap();
        let mut expected = vec![0x30, 3 + 35, 0x02, 0x01, 0x01, 0x02, 0x21, 0x00, 0x80];
        expected.extend_from_slice(&[0; 31]);
        assert_eq!(der, expected);
        assert_eq!(
            p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes().as_slice(),
            raw
        );

        let mut out = Vec::new();
        der_length(&mut out, 0x7f);
        der_length(&mut out, 0x80);
        der_length(&mut out, 0x1234);
        assert_eq!(out, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn verify_jwks_tries_the_fitting_keys() {
        let second = p256::ecdsa::SigningKey::from_slice(&[7; 32]).unwrap();
        let point = second.verifying_key().to_encoded_point(false);
        let second_jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()), "kid": "two"});
        let mut first_jwk = p256_jwk();
        first_jwk["kid"] = json!("one");
        let set = Jwks::parse(
            json!({"keys": [first_jwk, second_jwk, rsa_jwk()]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();

        let input = format!("{}.{}", b64(br#"{"alg":"ES256"}"#), b64(b"{}"));
        let signature: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(&second, input.as_bytes());
        let token = decode(&format!("{input}.{}", b64(&signature.to_bytes())));
        assert_eq!(token.verify_jwks(&set, &NoHostCrypto).unwrap().kid(), Some("two"));

        let with_kid = |kid: &str| {
            let input = format!(
                "{}.{}",
                b64(json!({"alg": "ES256", "kid": kid}).to_string().as_bytes()),
                b64(b"{}")
            );
            let signature: p256::ecdsa::Signature = p256::ecdsa::signature::Signer::sign(&second, input.as_bytes());
            decode(&format!("{input}.{}", b64(&signature.to_bytes())))
        };
        assert_eq!(
            with_kid("two").verify_jwks(&set, &NoHostCrypto).unwrap().kid(),
            Some("two")
        );
        assert_eq!(
            with_kid("one").verify_jwks(&set, &NoHostCrypto).unwrap_err(),
            JwtError::BadSignature
        );
        assert_eq!(
            with_kid("three").verify_jwks(&set, &NoHostCrypto).unwrap_err(),
            JwtError::KeyNotFound
        );
    }
}
