//! JWKS documents (jose) from arbitrary bytes.
//!
//! Invariants, besides "never panics":
//! - every entry of `keys` is either kept or skipped with a reason, and there are at most
//!   `MAX_JWKS_KEYS` of them;
//! - a kept key is a usable one: no HMAC key comes from a JWKS, RSA moduli are within bounds,
//!   RSA and EC keys have their SubjectPublicKeyInfo, a key's own `alg` fits its kind;
//! - parse, serialize, parse: the document written back by a JSON library gives the same keys,
//!   unless a key named a member twice (skipped as written; written back, the last value stands).

#![no_main]

use jose::{Alg, Jwks, KeyKind, MAX_JWKS_KEYS, MAX_RSA_BITS, MIN_RSA_BITS};
use libfuzzer_sys::fuzz_target;

/// What identifies a parsed key: kind, `kid`, `alg`, SubjectPublicKeyInfo.
type KeySummary = (KeyKind, Option<String>, Option<Alg>, Option<Vec<u8>>);

fn summary(jwks: &Jwks) -> Vec<KeySummary> {
    jwks.keys()
        .iter()
        .map(|k| {
            (
                k.kind(),
                k.kid().map(str::to_owned),
                k.alg(),
                k.spki_der().map(<[u8]>::to_vec),
            )
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(jwks) = Jwks::parse(data) else {
        return;
    };
    let document: serde_json::Value = serde_json::from_slice(data).expect("a JWKS that parses is JSON");
    let entries = document
        .get("keys")
        .and_then(|keys| keys.as_array())
        .expect("a JWKS that parses has a keys array")
        .len();
    assert!(entries <= MAX_JWKS_KEYS);
    assert_eq!(jwks.len() + jwks.skipped(), entries);
    assert_eq!(jwks.skip_reasons().len(), jwks.skipped());

    for key in jwks.keys() {
        match key.kind() {
            KeyKind::Hmac => panic!("an HMAC key came from a JWKS"),
            KeyKind::Rsa => {
                let bits = key.rsa_bits().expect("an RSA key has a modulus");
                assert!((MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits), "{bits}-bit RSA key kept");
                assert!(key.spki_der().is_some());
            }
            KeyKind::EcP256 | KeyKind::EcP384 => assert!(key.spki_der().is_some()),
            KeyKind::Ed25519 => assert!(key.spki_der().is_none()),
        }
        if let Some(alg) = key.alg() {
            assert_eq!(alg.key_kind(), key.kind(), "a key whose own alg it cannot check");
        }
    }
    for alg in Alg::ALL {
        for kid in [None, Some("rsa-1"), Some("")] {
            assert!(jwks
                .candidates(kid, alg)
                .all(|key| key.usable_for(alg) && kid.is_none_or(|kid| key.kid() == Some(kid))));
        }
    }

    // A key that names a member twice is skipped; serde_json keeps the member's last value.
    if jwks.skip_reasons().contains(&"a member named twice") {
        return;
    }
    let written = serde_json::to_vec(&document).expect("a JSON value serializes");
    let again = Jwks::parse(&written).expect("the document written back parses");
    assert_eq!(summary(&again), summary(&jwks));
    assert_eq!(again.skip_reasons(), jwks.skip_reasons());
});
