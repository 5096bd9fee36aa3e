//! Compact-JWS parsing and signature checks (jose) on arbitrary bytes, against fixed keys.
//!
//! Input: the token, optionally followed by a newline and bytes that choose which signature bits
//! to flip (three bytes per flip: a little-endian position, then the bit), so that the fuzzer can
//! try every flip on a token that verifies.
//!
//! Invariants, besides "never panics":
//! - strict base64url: a token that decodes re-encodes to exactly the bytes it came from;
//! - the `alg` the token reports is the header's `alg`;
//! - a verifying key is one the token's `alg` may use;
//! - a token that verifies no longer does once one bit of its signature is flipped.

#![no_main]

use apisec_fuzz::{b64url, fixed_keys, ISSUER, MAX_TOKEN_BYTES, NOW_SECS};
use jose::{ClaimRules, Jwks, Jwt};
use libfuzzer_sys::fuzz_target;
use shared::NoHostCrypto;

thread_local! {
    static KEYS: Jwks = fixed_keys();
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(2, |b| *b == b'\n');
    let token = parts.next().unwrap_or_default();
    let flips = parts.next().unwrap_or_default();
    let Ok(jwt) = Jwt::decode(token, MAX_TOKEN_BYTES) else {
        return;
    };
    let signing_input = std::str::from_utf8(jwt.signing_input()).expect("base64url is ASCII");
    assert_eq!(
        format!("{signing_input}.{}", b64url(jwt.signature())).as_bytes(),
        token,
        "a decoded token re-encodes to its own bytes"
    );
    assert_eq!(
        jwt.header().get("alg").and_then(|alg| alg.as_str()),
        Some(jwt.alg().as_str())
    );
    assert!(signing_input.ends_with(jwt.payload_b64()));

    // The accessors the filters use, and the claim rules a provider would apply.
    let _ = (jwt.exp(), jwt.iat(), jwt.issuer(), jwt.subject(), jwt.typ_is("at+jwt"));
    let _ = jwt.scopes(&["scope", "scp"]);
    let rules = ClaimRules {
        issuer: Some(ISSUER.to_owned()),
        audiences: vec!["api".to_owned()],
        max_lifetime_secs: Some(86_400 * 365 * 100),
        required_claims: vec!["sub".to_owned()],
        require_exp: true,
        allowed_typ: Some(vec!["at+jwt".to_owned(), "JWT".to_owned()]),
        ..ClaimRules::default()
    };
    let _ = jwt.validate_claims(&rules, NOW_SECS * 1000);

    KEYS.with(|keys| {
        let Ok(key) = jwt.verify_jwks(keys, &NoHostCrypto) else {
            return;
        };
        assert!(key.usable_for(jwt.alg()));
        let signature = jwt.signature();
        let last = signature.len().saturating_sub(1);
        let chosen = flips.chunks_exact(3).take(8).map(|c| match c {
            [low, high, bit] => (usize::from(u16::from_le_bytes([*low, *high])), *bit % 8),
            _ => (0, 0),
        });
        for (position, bit) in [(0, 0), (signature.len() / 2, 3), (last, 7)].into_iter().chain(chosen) {
            let position = position % signature.len().max(1);
            let mut forged = signature.to_vec();
            let Some(byte) = forged.get_mut(position) else {
                continue;
            };
            *byte ^= 1 << bit;
            let token = format!("{signing_input}.{}", b64url(&forged));
            let forged = Jwt::decode(token.as_bytes(), MAX_TOKEN_BYTES).expect("only the signature changed");
            assert!(
                forged.verify_jwks(keys, &NoHostCrypto).is_err(),
                "a token verified with bit {bit} of signature byte {position} flipped"
            );
        }
    });
});
