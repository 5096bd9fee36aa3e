//! Test keys, known-answer vectors and token builders (tests only).

use std::cell::RefCell;

use p256::ecdsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
use rsa::rand_core::{CryptoRng, RngCore};
use rsa::{BigUint, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Sha256, Sha384, Sha512};
use shared::{HashAlg, HostCrypto, Secret};

use crate::b64::{b64url_decode, b64url_encode};
use crate::{Alg, Jwk, Jwks};

// RFC 7515 appendix A.1 (HS256) ----------------------------------------------------------------
pub const RFC7515_A1_KEY: &str =
    "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
pub const RFC7515_A1_TOKEN: &str = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

// RFC 7515 appendix A.2 (RS256), with the full RSA key ------------------------------------------
pub const RFC7515_A2_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";
pub const RSA_N: &str = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
pub const RSA_E: &str = "AQAB";
const RSA_D: &str = "Eq5xpGnNCivDflJsRQBXHx1hdR1k6Ulwe2JZD50LpXyWPEAeP88vLNO97IjlA7_GQ5sLKMgvfTeXZx9SE-7YwVol2NXOoAJe46sui395IW_GO-pWJ1O0BkTGoVEn2bKVRUCgu-GjBVaYLU6f3l9kJfFNS3E0QbVdxzubSu3Mkqzjkn439X0M_V51gfpRLI9JYanrC4D4qAdGcopV_0ZHHzQlBjudU2QvXt4ehNYTCBr6XCLQUShb1juUO1ZdiYoFaFQT5Tw8bGUl_x_jTj3ccPDVZFD9pIuhLhBOneufuBiB4cS98l2SR_RQyGWSeWjnczT0QU91p1DhOVRuOopznQ";
const RSA_P: &str = "4BzEEOtIpmVdVEZNCqS7baC4crd0pqnRH_5IB3jw3bcxGn6QLvnEtfdUdiYrqBdss1l58BQ3KhooKeQTa9AB0Hw_Py5PJdTJNPY8cQn7ouZ2KKDcmnPGBY5t7yLc1QlQ5xHdwW1VhvKn-nXqhJTBgIPgtldC-KDV5z-y2XDwGUc";
const RSA_Q: &str = "uQPEfgmVtjL0Uyyx88GZFF1fOunH3-7cepKmtH4pxhtCoHqpWmT8YAmZxaewHgHAjLYsp1ZSe7zFYHj7C6ul7TjeLQeZD_YwD66t62wDmpe_HlB-TnBA-njbglfIsRLtXlnDzQkv5dTltRJ11BKBBypeeF6689rjcJIDEz9RWdc";

// RFC 7515 appendix A.3 (ES256) -----------------------------------------------------------------
pub const RFC7515_A3_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
const P256_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const P256_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
const P256_D: &str = "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI";

// RFC 8037 appendix A (Ed25519): A.1 key, A.4 signature -----------------------------------------
pub const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
pub const RFC8037_SIGNING_INPUT: &str = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
pub const RFC8037_SIGNATURE: &str =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";

/// 2026-01-01T00:00:00Z, the testkit's "now".
pub const NOW: u64 = 1_767_225_600;

pub fn b64(bytes: &[u8]) -> String {
    b64url_encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    b64url_decode(text.as_bytes()).unwrap()
}

fn big(text: &str) -> BigUint {
    BigUint::from_bytes_be(&unb64(text))
}

pub fn rsa_private() -> RsaPrivateKey {
    RsaPrivateKey::from_components(big(RSA_N), big(RSA_E), big(RSA_D), vec![big(RSA_P), big(RSA_Q)]).unwrap()
}

pub fn rsa_jwk() -> Value {
    json!({"kty": "RSA", "n": RSA_N, "e": RSA_E})
}

pub fn p256_signing() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&unb64(P256_D)).unwrap()
}

pub fn p256_jwk() -> Value {
    json!({"kty": "EC", "crv": "P-256", "x": P256_X, "y": P256_Y})
}

pub fn p384_signing() -> p384::ecdsa::SigningKey {
    p384::ecdsa::SigningKey::from_slice(&[0x42; 48]).unwrap()
}

pub fn p384_jwk() -> Value {
    let point = p384_signing().verifying_key().to_encoded_point(false);
    json!({"kty": "EC", "crv": "P-384", "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())})
}

pub fn ed25519_signing() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&unb64(RFC8037_D).try_into().unwrap())
}

pub fn ed25519_jwk() -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": RFC8037_X})
}

pub fn hmac_secret() -> Secret {
    Secret::new(unb64(RFC7515_A1_KEY))
}

/// One key per kind, none with a `kid`, and the RFC 7515 A.1 secret for every HS*.
pub fn all_keys() -> Jwks {
    let parsed = Jwks::parse(
        json!({"keys": [rsa_jwk(), p256_jwk(), p384_jwk(), ed25519_jwk()]})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    let mut keys = parsed.keys().to_vec();
    for alg in [Alg::HS256, Alg::HS384, Alg::HS512] {
        keys.push(Jwk::hmac(hmac_secret(), alg, None).unwrap());
    }
    Jwks::from_keys(keys)
}

/// The test key for `alg`.
pub fn key_for(alg: Alg) -> Jwk {
    all_keys().candidates(None, alg).next().unwrap().clone()
}

/// A deterministic "random" source for PSS salts: tests must be reproducible.
pub struct TestRng(pub u64);

impl RngCore for TestRng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            *byte = self.next_u64() as u8;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for TestRng {}

/// Signs `input` with the test key for `alg`, as a JWS signature (raw `r || s` for ECDSA).
pub fn sign(alg: Alg, input: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    use rsa::{pkcs1v15, pss};
    let rng = &mut TestRng(0x1234_5678_9abc_def0);
    let rsa = rsa_private();
    match alg {
        Alg::RS256 => pkcs1v15::SigningKey::<Sha256>::new(rsa).sign(input).to_vec(),
        Alg::RS384 => pkcs1v15::SigningKey::<Sha384>::new(rsa).sign(input).to_vec(),
        Alg::RS512 => pkcs1v15::SigningKey::<Sha512>::new(rsa).sign(input).to_vec(),
        Alg::PS256 => pss::SigningKey::<Sha256>::new(rsa).sign_with_rng(rng, input).to_vec(),
        Alg::PS384 => pss::SigningKey::<Sha384>::new(rsa).sign_with_rng(rng, input).to_vec(),
        Alg::PS512 => pss::SigningKey::<Sha512>::new(rsa).sign_with_rng(rng, input).to_vec(),
        Alg::ES256 => {
            let sig: p256::ecdsa::Signature = p256_signing().sign(input);
            sig.to_bytes().to_vec()
        }
        Alg::ES384 => {
            let sig: p384::ecdsa::Signature = p384_signing().sign(input);
            sig.to_bytes().to_vec()
        }
        Alg::EdDSA => ed25519_signing().sign(input).to_bytes().to_vec(),
        Alg::HS256 => hmac::Hmac::<Sha256>::new_from_slice(hmac_secret().expose())
            .unwrap()
            .chain_update(input)
            .finalize()
            .into_bytes()
            .to_vec(),
        Alg::HS384 => hmac::Hmac::<Sha384>::new_from_slice(hmac_secret().expose())
            .unwrap()
            .chain_update(input)
            .finalize()
            .into_bytes()
            .to_vec(),
        Alg::HS512 => hmac::Hmac::<Sha512>::new_from_slice(hmac_secret().expose())
            .unwrap()
            .chain_update(input)
            .finalize()
            .into_bytes()
            .to_vec(),
    }
}

/// A token from raw header and payload JSON text, signed with the test key for `alg`.
pub fn raw_token(alg: Alg, header: &str, payload: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = sign(alg, input.as_bytes());
    format!("{input}.{}", b64(&signature))
}

/// A token with header `{"alg": alg}` and these claims.
pub fn token(alg: Alg, claims: &Value) -> String {
    raw_token(alg, &json!({"alg": alg.as_str()}).to_string(), &claims.to_string())
}

/// A host that records every call and answers `answer`.
pub struct FakeCrypto {
    pub answer: Option<bool>,
    pub calls: RefCell<Vec<HostCall>>,
}

#[derive(Clone, Debug)]
pub struct HostCall {
    pub hash: HashAlg,
    pub spki: Vec<u8>,
    pub signature: Vec<u8>,
    pub message: Vec<u8>,
}

impl FakeCrypto {
    pub fn new(answer: Option<bool>) -> Self {
        Self {
            answer,
            calls: RefCell::new(Vec::new()),
        }
    }

    pub fn calls(&self) -> Vec<HostCall> {
        self.calls.borrow().clone()
    }
}

impl HostCrypto for FakeCrypto {
    fn verify(&self, hash: HashAlg, spki_der: &[u8], signature: &[u8], message: &[u8]) -> Option<bool> {
        self.calls.borrow_mut().push(HostCall {
            hash,
            spki: spki_der.to_vec(),
            signature: signature.to_vec(),
            message: message.to_vec(),
        });
        self.answer
    }
}
