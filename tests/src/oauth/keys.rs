//! The fixture signing keys (`tests/fixtures/keys/`), compiled into the
//! harness: their JWKs, their public-key PEMs, and signing with them.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents};
use serde_json::{json, Value};

use super::token::b64url_encode;

/// One fixture key as committed: kid, PKCS#8 DER, SPKI PEM.
struct Fixture {
    kid: &'static str,
    pkcs8: &'static [u8],
    spki_pem: &'static str,
}

macro_rules! fixture {
    ($kid:literal) => {
        Fixture {
            kid: $kid,
            pkcs8: include_bytes!(concat!("../../fixtures/keys/", $kid, ".pk8.der")),
            spki_pem: include_str!(concat!("../../fixtures/keys/", $kid, ".spki.pem")),
        }
    };
}

/// Every fixture key, in a stable order.
const FIXTURES: &[Fixture] = &[
    fixture!("rsa-1"),
    fixture!("rsa-2"),
    fixture!("rsa-3"),
    fixture!("ec-1"),
    fixture!("ec-2"),
    fixture!("ec384-1"),
    fixture!("ed-1"),
    fixture!("ed-2"),
];

/// The kinds of fixture key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// RSA 2048: RS256/384/512, PS256/384/512.
    Rsa,
    /// EC P-256: ES256.
    P256,
    /// EC P-384: ES384.
    P384,
    /// Ed25519: EdDSA.
    Ed25519,
}

impl KeyType {
    /// The JWS algorithm the key signs with when the header's `alg` does not
    /// pick one of its valid algorithms.
    pub fn default_alg(self) -> &'static str {
        match self {
            KeyType::Rsa => "RS256",
            KeyType::P256 => "ES256",
            KeyType::P384 => "ES384",
            KeyType::Ed25519 => "EdDSA",
        }
    }
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair, KeyType),
    Ed(Ed25519KeyPair),
}

pub(crate) struct LoadedKey {
    kid: &'static str,
    spki_pem: &'static str,
    pair: Pair,
}

fn rng() -> &'static SystemRandom {
    static RNG: OnceLock<SystemRandom> = OnceLock::new();
    RNG.get_or_init(SystemRandom::new)
}

fn load(f: &Fixture) -> LoadedKey {
    let pair = if let Ok(k) = RsaKeyPair::from_pkcs8(f.pkcs8) {
        Pair::Rsa(k)
    } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, f.pkcs8, rng()) {
        Pair::Ec(k, KeyType::P256)
    } else if let Ok(k) = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, f.pkcs8, rng()) {
        Pair::Ec(k, KeyType::P384)
    } else if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(f.pkcs8) {
        // OpenSSL writes Ed25519 keys as PKCS#8 v1 (no public key), which the
        // checked constructor rejects.
        Pair::Ed(k)
    } else {
        panic!(
            "fixture key {}: tests/fixtures/keys/{}.pk8.der is not an RSA, P-256, P-384 or Ed25519 PKCS#8 key",
            f.kid, f.kid
        )
    };
    LoadedKey {
        kid: f.kid,
        spki_pem: f.spki_pem,
        pair,
    }
}

fn all() -> &'static BTreeMap<&'static str, LoadedKey> {
    static KEYS: OnceLock<BTreeMap<&'static str, LoadedKey>> = OnceLock::new();
    KEYS.get_or_init(|| FIXTURES.iter().map(|f| (f.kid, load(f))).collect())
}

/// The kids of every fixture key, in a stable order (RSA, P-256, P-384,
/// Ed25519).
pub fn fixture_kids() -> Vec<&'static str> {
    FIXTURES.iter().map(|f| f.kid).collect()
}

pub(crate) fn get(kid: &str) -> &'static LoadedKey {
    all().get(kid).unwrap_or_else(|| {
        panic!(
            "no fixture key with kid {kid:?}; the fixture keys are {:?}",
            fixture_kids()
        )
    })
}

/// The type of the fixture key `kid`.
///
/// # Panics
/// If there is no such fixture key.
pub fn key_type(kid: &str) -> KeyType {
    get(kid).key_type()
}

/// The public JWK (with `kid`, `alg`, `use: sig`) of fixture key `kid`.
///
/// # Panics
/// If there is no such fixture key.
pub fn fixture_jwk(kid: &str) -> Value {
    get(kid).jwk()
}

/// The SubjectPublicKeyInfo PEM of fixture key `kid`, as OpenSSL wrote it.
///
/// # Panics
/// If there is no such fixture key.
pub fn fixture_public_key_pem(kid: &str) -> String {
    get(kid).spki_pem.to_owned()
}

/// `{"keys": [...]}` with the JWKs of the given fixture keys, in that order.
///
/// # Panics
/// If one of them is not a fixture key.
pub fn jwks_for(kids: &[&str]) -> Value {
    json!({ "keys": kids.iter().map(|k| fixture_jwk(k)).collect::<Vec<_>>() })
}

/// [`jwks_for`]`(kids)` with `alg` removed from the RSA keys, so that one
/// RSA key verifies every RS* and PS* algorithm (e.g. for
/// [`ASYMMETRIC_ALGS`]); the other keys keep theirs.
///
/// # Panics
/// If one of them is not a fixture key.
pub fn jwks_without_rsa_alg(kids: &[&str]) -> Value {
    let keys: Vec<Value> = kids
        .iter()
        .map(|kid| {
            let mut jwk = fixture_jwk(kid);
            if key_type(kid) == KeyType::Rsa {
                if let Some(members) = jwk.as_object_mut() {
                    members.remove("alg");
                }
            }
            jwk
        })
        .collect();
    json!({ "keys": keys })
}

/// Every asymmetric JWS algorithm, each with a fixture key published at
/// start that signs it, as `(alg, kid)`: `rsa-1` for RS256/384/512 and
/// PS256/384/512, `ec-1` for ES256, `ec384-1` for ES384, `ed-1` for EdDSA.
/// A verifier accepts all of them with [`jwks_without_rsa_alg`] of those
/// four keys.
pub const ASYMMETRIC_ALGS: [(&str, &str); 9] = [
    ("RS256", "rsa-1"),
    ("RS384", "rsa-1"),
    ("RS512", "rsa-1"),
    ("PS256", "rsa-1"),
    ("PS384", "rsa-1"),
    ("PS512", "rsa-1"),
    ("ES256", "ec-1"),
    ("ES384", "ec384-1"),
    ("EdDSA", "ed-1"),
];

impl LoadedKey {
    pub(crate) fn key_type(&self) -> KeyType {
        match &self.pair {
            Pair::Rsa(_) => KeyType::Rsa,
            Pair::Ec(_, t) => *t,
            Pair::Ed(_) => KeyType::Ed25519,
        }
    }

    pub(crate) fn jwk(&self) -> Value {
        let alg = self.key_type().default_alg();
        match &self.pair {
            Pair::Rsa(k) => {
                let parts: RsaPublicKeyComponents<Vec<u8>> = k.public().into();
                json!({
                    "kty": "RSA",
                    "kid": self.kid,
                    "alg": alg,
                    "use": "sig",
                    "n": b64url_encode(&parts.n),
                    "e": b64url_encode(&parts.e),
                })
            }
            Pair::Ec(k, t) => {
                // Uncompressed point: 0x04 || x || y.
                let point = k.public_key().as_ref();
                let coords = point.get(1..).unwrap_or_default();
                let (x, y) = coords.split_at(coords.len() / 2);
                json!({
                    "kty": "EC",
                    "crv": if *t == KeyType::P256 { "P-256" } else { "P-384" },
                    "x": b64url_encode(x),
                    "y": b64url_encode(y),
                    "kid": self.kid,
                    "alg": alg,
                    "use": "sig",
                })
            }
            Pair::Ed(k) => json!({
                "kty": "OKP",
                "crv": "Ed25519",
                "x": b64url_encode(k.public_key().as_ref()),
                "kid": self.kid,
                "alg": alg,
                "use": "sig",
            }),
        }
    }

    /// Signs `msg`. For RSA keys `alg` (case-insensitive) picks RS256/384/512
    /// or PS256/384/512, anything else means RS256; EC and Ed25519 keys sign
    /// with their only algorithm whatever `alg` says.
    pub(crate) fn sign(&self, alg: &str, msg: &[u8]) -> Vec<u8> {
        match &self.pair {
            Pair::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = match alg.to_ascii_uppercase().as_str() {
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    "PS512" => &signature::RSA_PSS_SHA512,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0u8; k.public().modulus_len()];
                k.sign(padding, rng(), msg, &mut sig)
                    .unwrap_or_else(|e| panic!("RSA signing with {} failed: {e}", self.kid));
                sig
            }
            Pair::Ec(k, _) => k
                .sign(rng(), msg)
                .unwrap_or_else(|e| panic!("ECDSA signing with {} failed: {e}", self.kid))
                .as_ref()
                .to_vec(),
            Pair::Ed(k) => k.sign(msg).as_ref().to_vec(),
        }
    }
}

/// Fills `buf` with random bytes.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    use ring::rand::SecureRandom;
    rng()
        .fill(buf)
        .unwrap_or_else(|e| panic!("system random generator failed: {e}"));
}
