//! The JWS algorithms this library implements (RFC 7518 section 3, RFC 8037 for `EdDSA`).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use shared::HashAlg;

use crate::jwk::KeyKind;

/// A JWS `alg`. `none` is not one: an unsecured token never verifies.
#[allow(clippy::upper_case_acronyms)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    /// Every algorithm, in a stable order.
    pub const ALL: [Alg; 12] = [
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
        Alg::HS256,
        Alg::HS384,
        Alg::HS512,
    ];

    /// The asymmetric algorithms: what a provider accepts unless configured otherwise. HMAC must
    /// be asked for explicitly, with a secret.
    pub const DEFAULT_ALLOWED: &'static [Alg] = &[
        Alg::RS256,
        Alg::RS384,
        Alg::RS512,
        Alg::PS256,
        Alg::PS384,
        Alg::PS512,
        Alg::ES256,
        Alg::ES384,
        Alg::EdDSA,
    ];

    /// The algorithm named exactly `name` (case-sensitive, as RFC 7515 requires): `"rs256"`,
    /// `"none"` and `"None"` are not algorithms.
    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|alg| alg.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
            Alg::HS256 => "HS256",
            Alg::HS384 => "HS384",
            Alg::HS512 => "HS512",
        }
    }

    /// HMAC: the key is a shared secret.
    pub fn is_symmetric(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }

    /// The only kind of key that can check this algorithm.
    pub fn key_kind(self) -> KeyKind {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => KeyKind::Rsa,
            Alg::ES256 => KeyKind::EcP256,
            Alg::ES384 => KeyKind::EcP384,
            Alg::EdDSA => KeyKind::Ed25519,
            Alg::HS256 | Alg::HS384 | Alg::HS512 => KeyKind::Hmac,
        }
    }

    /// The hash the signature is computed over (`EdDSA` hashes internally: `None`).
    pub fn hash(self) -> Option<HashAlg> {
        match self {
            Alg::RS256 | Alg::PS256 | Alg::ES256 | Alg::HS256 => Some(HashAlg::Sha256),
            Alg::RS384 | Alg::PS384 | Alg::ES384 | Alg::HS384 => Some(HashAlg::Sha384),
            Alg::RS512 | Alg::PS512 | Alg::HS512 => Some(HashAlg::Sha512),
            Alg::EdDSA => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Alg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AlgVisitor;

        impl Visitor<'_> for AlgVisitor {
            type Value = Alg;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JWS algorithm name (RS256, PS256, ES256, EdDSA, HS256, ...)")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Alg, E> {
                Alg::parse(value).ok_or_else(|| {
                    let names: Vec<&str> = Alg::ALL.iter().map(|alg| alg.as_str()).collect();
                    E::custom(format!(
                        "unknown JWS algorithm `{value}`, expected one of {}",
                        names.join(", ")
                    ))
                })
            }
        }

        deserializer.deserialize_str(AlgVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasm_bindgen_test::wasm_bindgen_test;

    #[wasm_bindgen_test(unsupported = test)]
    fn names_round_trip_and_are_case_sensitive() {
        for alg in Alg::ALL {
            assert_eq!(Alg::parse(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        for bad in [
            "none", "None", "NONE", "nOnE", "rs256", "Rs256", "RS256 ", " RS256", "eddsa", "ES512", "",
        ] {
            assert_eq!(Alg::parse(bad), None, "{bad:?}");
        }
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn default_allowed_is_the_asymmetric_set() {
        let expected: Vec<Alg> = Alg::ALL.into_iter().filter(|alg| !alg.is_symmetric()).collect();
        assert_eq!(Alg::DEFAULT_ALLOWED, expected.as_slice());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn deserializes_from_a_string() {
        let algs: Vec<Alg> = serde_json::from_str(r#"["RS256", "EdDSA", "HS512"]"#).unwrap();
        assert_eq!(algs, [Alg::RS256, Alg::EdDSA, Alg::HS512]);
        let err = serde_json::from_str::<Alg>(r#""none""#).unwrap_err().to_string();
        assert!(err.contains("unknown JWS algorithm `none`"), "{err}");
        assert!(serde_json::from_str::<Alg>("256").is_err());
    }

    #[wasm_bindgen_test(unsupported = test)]
    fn key_kinds_and_hashes() {
        assert_eq!(Alg::PS384.key_kind(), KeyKind::Rsa);
        assert_eq!(Alg::ES384.key_kind(), KeyKind::EcP384);
        assert_eq!(Alg::EdDSA.key_kind(), KeyKind::Ed25519);
        assert_eq!(Alg::HS256.key_kind(), KeyKind::Hmac);
        assert_eq!(Alg::RS512.hash(), Some(HashAlg::Sha512));
        assert_eq!(Alg::EdDSA.hash(), None);
    }
}
