//! Signature checks of compact JWS with the `ring` crate, independent of the
//! filters' own JOSE code: what tests use to check that a JWT verifies with
//! the server's JWKS.

use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde_json::Value;

use super::token::{b64url_decode, jws_header};

/// A base64url member of a JWK, decoded.
pub fn jwk_bytes(jwk: &Value, member: &str) -> Vec<u8> {
    b64url_decode(
        jwk[member]
            .as_str()
            .unwrap_or_else(|| panic!("JWK without {member}: {jwk}")),
    )
}

/// Verifies a compact JWS against the key with the header's kid in `jwks`,
/// using only the JWK members (n/e, crv/x/y, x), with the algorithm the
/// header names.
pub fn verify_jws(jwks: &Value, token: &str) -> Result<(), String> {
    let header = jws_header(token);
    verify_jws_as(jwks, token, header["alg"].as_str().ok_or("no alg")?)
}

/// [`verify_jws`] with algorithm `alg`, whatever the header says.
pub fn verify_jws_as(jwks: &Value, token: &str, alg: &str) -> Result<(), String> {
    let header = jws_header(token);
    let kid = header["kid"].as_str().ok_or("no kid")?;
    let jwk = jwks["keys"]
        .as_array()
        .ok_or("no keys")?
        .iter()
        .find(|k| k["kid"] == kid)
        .ok_or_else(|| format!("kid {kid} not in the JWKS"))?;
    let (signing_input, sig) = token.rsplit_once('.').ok_or("no dot")?;
    let sig = b64url_decode(sig);
    let msg = signing_input.as_bytes();
    let result = match (jwk["kty"].as_str(), alg) {
        (Some("RSA"), _) => {
            let params = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                "PS512" => &signature::RSA_PSS_2048_8192_SHA512,
                other => return Err(format!("RSA key, alg {other}")),
            };
            let key = RsaPublicKeyComponents {
                n: jwk_bytes(jwk, "n"),
                e: jwk_bytes(jwk, "e"),
            };
            key.verify(params, msg, &sig)
        }
        (Some("EC"), "ES256" | "ES384") => {
            let (crv, params) = if alg == "ES256" {
                ("P-256", &signature::ECDSA_P256_SHA256_FIXED)
            } else {
                ("P-384", &signature::ECDSA_P384_SHA384_FIXED)
            };
            assert_eq!(jwk["crv"], crv, "{jwk}");
            let mut point = vec![4u8];
            point.extend(jwk_bytes(jwk, "x"));
            point.extend(jwk_bytes(jwk, "y"));
            UnparsedPublicKey::new(params, point).verify(msg, &sig)
        }
        (Some("OKP"), "EdDSA") => {
            assert_eq!(jwk["crv"], "Ed25519", "{jwk}");
            UnparsedPublicKey::new(&signature::ED25519, jwk_bytes(jwk, "x")).verify(msg, &sig)
        }
        (kty, alg) => return Err(format!("kty {kty:?} with alg {alg}")),
    };
    result.map_err(|_| format!("bad {alg} signature for kid {kid}"))
}
